package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment of the helper process used by TestPoolTwoProcesses.
const (
	helperEnv      = "FRE_NETNS_TEST_TAKE_DIR"
	helperCountEnv = "FRE_NETNS_TEST_TAKE_COUNT"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helperTake(dir))
	}
	os.Exit(m.Run())
}

// helperTake waits for stdin to close (the start barrier, so that all
// helpers take at once), then takes $FRE_NETNS_TEST_TAKE_COUNT namespaces
// and prints one path per line. It leaves them pinned for the parent.
func helperTake(dir string) int {
	n, _ := strconv.Atoi(os.Getenv(helperCountEnv))
	io.Copy(io.Discard, os.Stdin)
	p := NewPool(dir, 0)
	for range n {
		path, _, err := p.Take()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(path)
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stats(t *testing.T, p *Pool) Stats {
	t.Helper()
	s, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkOnlyDir fails if anything but the pool directory's own bind mount is
// mounted under dir, or any entry is left.
func checkEmptyPool(t *testing.T, dir string) {
	t.Helper()
	for _, m := range mountsUnder(t, dir) {
		if m != dir {
			t.Errorf("mount left: %s", m)
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return // unmounted and removed with its last pin
	}
	for _, sub := range []string{idleDir, usedDir, stagingDir} {
		names, err := readNames(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		if len(names) > 0 {
			t.Errorf("%s/ not empty: %v", sub, names)
		}
	}
}

func TestPoolTakeRelease(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p := NewPool(dir, 3)
	if err := p.Fill(3); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, p); s != (Stats{Idle: 3}) {
		t.Fatalf("after Fill: %+v", s)
	}
	checkHostThreads(t)

	seen := map[nsID]string{}
	var paths []string
	for i := range 4 {
		path, pooled, err := p.Take()
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 3; pooled != want {
			t.Errorf("Take %d: pooled=%v, want %v", i, pooled, want)
		}
		id := checkFreshNetns(t, path)
		if prev, dup := seen[id]; dup {
			t.Fatalf("%s and %s are the same netns", prev, path)
		}
		seen[id] = path
		paths = append(paths, path)
	}
	if s := stats(t, p); s != (Stats{Used: 4}) {
		t.Fatalf("after 4 Takes: %+v", s)
	}
	for _, path := range paths {
		p.Release(path)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		checkGone(t, path)
		checkGone(t, filepath.Dir(path))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkEmptyPool(t, dir)
	if _, _, err := p.Take(); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Take after Close: %v", err)
	}
}

func TestPoolCloseDrains(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p := NewPool(dir, 4)
	if err := p.Fill(4); err != nil {
		t.Fatal(err)
	}
	// A second process's view of the same directory.
	other := NewPool(dir, 4)
	path, pooled, err := other.Take()
	if err != nil || !pooled {
		t.Fatalf("Take from a second Pool: %v pooled=%v", err, pooled)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// The handed-out one survives Close.
	checkFreshNetns(t, path)
	if s := stats(t, other); s != (Stats{Used: 1}) {
		t.Fatalf("after Close: %+v", s)
	}
	other.Release(path)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	checkEmptyPool(t, dir)
}

func TestPoolRun(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p := NewPool(dir, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		checkEmptyPool(t, dir)
	}()

	waitFor(t, "pool to fill", func() bool { return stats(t, p).Idle == 2 })
	path, pooled, err := p.Take()
	if err != nil || !pooled {
		t.Fatalf("Take: %v pooled=%v", err, pooled)
	}
	p.Release(path)
	waitFor(t, "pool to refill", func() bool { s := stats(t, p); return s.Idle == 2 && s.Used == 0 })
}

func TestPoolSweepsStaleStaging(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p := NewPool(dir, 1)
	done, err := p.use()
	if err != nil {
		t.Fatal(err)
	}
	done()
	// What a filler that crashed mid-way leaves behind.
	entry, err := newEntry(p.staging)
	if err != nil {
		t.Fatal(err)
	}
	if err := create(filepath.Join(entry, pinName)); err != nil {
		t.Fatal(err)
	}
	if err := p.Fill(1); err != nil {
		t.Fatal(err)
	}
	checkGone(t, entry)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkEmptyPool(t, dir)
}

func TestPoolReleaseForeignPath(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	path, err := New(dir, "fre-foreign")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(filepath.Join(dir, "pool"), 0)
	p.Release(path)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, path)
}

// Several processes take from one directory at once, more than it holds:
// no namespace is handed out twice.
func TestPoolTwoProcesses(t *testing.T) {
	requireRoot(t)
	const procs, each, filled = 4, 12, 30
	dir := testDir(t)
	p := NewPool(dir, filled)
	if err := p.Fill(filled); err != nil {
		t.Fatal(err)
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		paths []string
		gates []io.Closer
	)
	for range procs {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, helperCountEnv+"="+strconv.Itoa(each))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		gates = append(gates, stdin)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				paths = append(paths, strings.TrimSpace(sc.Text()))
				mu.Unlock()
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("helper: %v", err)
			}
		}()
	}
	for _, g := range gates {
		g.Close()
	}
	wg.Wait()
	// Release whatever was printed, even if the checks below fail.
	defer func() {
		for _, path := range paths {
			p.Release(path)
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		checkEmptyPool(t, dir)
	}()

	if len(paths) != procs*each {
		t.Fatalf("got %d namespaces, want %d", len(paths), procs*each)
	}
	host := statNS(t, "/proc/self/ns/net")
	seen := map[nsID]string{}
	for _, path := range paths {
		id := statNS(t, path)
		if id == host {
			t.Fatalf("%s is the host's netns", path)
		}
		if prev, dup := seen[id]; dup {
			t.Fatalf("%s and %s are the same netns", prev, path)
		}
		seen[id] = path
	}
	if s := stats(t, p); s != (Stats{Used: procs * each}) {
		t.Fatalf("stats: %+v", s)
	}
}

// A pool that is not kept warm holds no mount once its last pin is gone:
// the release of the last one unmounts the tmpfs and removes the
// directory, and the next Take (of any process) sets it up again.
func TestPoolUnmountsWithItsLastPin(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p1, p2 := NewPool(dir, 0), NewPool(dir, 0) // two processes, in effect
	a, _, err := p1.Take()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := p2.Take()
	if err != nil {
		t.Fatal(err)
	}
	p1.Release(a)
	if err := p1.Wait(); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) != 2 || m[0] != dir {
		t.Fatalf("with one pin left: mounts %v, want the pool's and the pin's", m)
	}
	p2.Release(b)
	if err := p2.Wait(); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Fatalf("after the last pin: mounts %v", m)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pool dir after the last pin: %v", err)
	}
	// p1 had set the directory up before: it notices it is gone.
	c, _, err := p1.Take()
	if err != nil {
		t.Fatal(err)
	}
	checkFreshNetns(t, c)
	if s := stats(t, p2); s.Used != 1 {
		t.Fatalf("stats from the other pool: %+v", s)
	}
	p1.Release(c)
	if err := p1.Wait(); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Fatalf("after the last pin again: mounts %v", m)
	}
	// A pool kept warm keeps its mount: that is its bound.
	p3 := NewPool(dir, 1)
	if err := p3.Fill(1); err != nil {
		t.Fatal(err)
	}
	d, _, err := p3.Take()
	if err != nil {
		t.Fatal(err)
	}
	if err := p3.Fill(1); err != nil {
		t.Fatal(err)
	}
	p3.Release(d)
	if err := p3.Wait(); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, p3); s.Idle != 1 || s.Used != 0 {
		t.Fatalf("warm pool: %+v", s)
	}
	if err := p3.Close(); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Fatalf("after Close drained it: mounts %v", m)
	}
}
