package netns

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and mounts")
	}
}

// testDir returns a pool/pin directory that is purged (unpins, unmounts)
// before the temp dir is removed, and checked for leaks.
func testDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fre-netns")
	t.Cleanup(func() {
		if err := Purge(dir); err != nil {
			t.Errorf("Purge: %v", err)
		}
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", dir, m)
		}
	})
	return dir
}

// mountsUnder lists mount points at or below dir in /proc/self/mountinfo.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

type nsID struct{ dev, ino uint64 }

func statNS(t testing.TB, path string) nsID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return nsID{st.Dev, st.Ino}
}

// hostNetns also checks that every thread of this process is still in the
// process's netns: the creator thread must have died, not leaked back.
func checkHostThreads(t testing.TB) {
	t.Helper()
	host := statNS(t, "/proc/self/ns/net")
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		for _, task := range tasks {
			var st unix.Stat_t
			if unix.Stat("/proc/self/task/"+task.Name()+"/ns/net", &st) != nil {
				continue // thread exited meanwhile
			}
			if (nsID{st.Dev, st.Ino}) != host {
				bad = append(bad, task.Name())
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v are not in the host netns", bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopbackFlags enters the netns at path on a throw-away locked thread and
// returns lo's interface flags there.
func loopbackFlags(t testing.TB, path string) uint16 {
	t.Helper()
	type res struct {
		flags uint16
		err   error
	}
	c := make(chan res, 1)
	go func() {
		// Never unlocked, so the thread dies with the goroutine; restored
		// anyway in case it is the main thread, which is parked instead.
		// The result is sent only once the thread is back: the main
		// thread's netns is what /proc/self/ns/net shows, and the caller
		// compares that with the host's next.
		runtime.LockOSThread()
		flags, err := loopbackFlagsLocked(path)
		c <- res{flags: flags, err: err}
	}()
	r := <-c
	if r.err != nil {
		t.Fatalf("lo flags in %s: %v", path, r.err)
	}
	return r.flags
}

// loopbackFlagsLocked runs on a locked thread: it enters the netns at path,
// reads lo's flags and goes back to the thread's own netns before it
// returns.
func loopbackFlagsLocked(path string) (uint16, error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(orig)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return 0, fmt.Errorf("setns: %w", err)
	}
	defer unix.Setns(orig, unix.CLONE_NEWNET)
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, err
	}
	return ifr.Uint16(), nil
}

func checkFreshNetns(t testing.TB, path string) nsID {
	t.Helper()
	id := statNS(t, path)
	if id == statNS(t, "/proc/self/ns/net") {
		t.Fatalf("%s is the host's netns", path)
	}
	if f := loopbackFlags(t, path); f&unix.IFF_UP == 0 {
		t.Fatalf("lo is down in %s (flags %#x)", path, f)
	}
	return id
}

func checkGone(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists (err=%v)", path, err)
	}
	if m := mountsUnder(t, path); len(m) > 0 {
		t.Errorf("%s still mounted: %v", path, m)
	}
}

func TestNewRemove(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	host := statNS(t, "/proc/self/ns/net")

	path, err := New(dir, "fre-a")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "fre-a") {
		t.Fatalf("path = %s", path)
	}
	checkFreshNetns(t, path)
	if statNS(t, "/proc/self/ns/net") != host {
		t.Fatal("host netns changed")
	}
	checkHostThreads(t)

	if _, err := New(dir, "fre-a"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second New with the same name: %v, want ErrExist", err)
	}
	if statNS(t, path) == host {
		t.Fatal("failed New clobbered the pin")
	}

	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	checkGone(t, path)
	if err := Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestNewBadName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := New(t.TempDir(), name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("New(%q): %v, want ErrInvalidName", name, err)
		}
	}
}

func TestRemoveRefusesOtherMounts(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := Remove(dir); !errors.Is(err, ErrNotNetns) {
		t.Fatalf("Remove(dir) = %v, want ErrNotNetns", err)
	}
	// A symlink to a pin is refused, and the pin survives.
	pins := testDir(t)
	pin, err := New(pins, "fre-target")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(pin, link); err != nil {
		t.Fatal(err)
	}
	if err := Remove(link); !errors.Is(err, ErrNotNetns) {
		t.Fatalf("Remove(symlink) = %v, want ErrNotNetns", err)
	}
	checkFreshNetns(t, pin)
}
