package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

// Behaviours runc's own integration suite holds, each with runc's outcome.

// A created container (its init waiting for start in fre-dmz, the init of
// its own pid namespace) dies of a signal whose default action ends a
// process, as runc's does; one that does not end a process leaves it
// created and startable.
func TestKillCreated(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	for _, sig := range []string{"TERM", "KILL", "HUP", "USR1"} {
		id := newID()
		e.must("create", "--bundle", b, id)
		e.must("kill", id, sig)
		e.waitStatus(id, specs.StateStopped)
		e.must("delete", id)
	}
	id := newID()
	e.must("create", "--bundle", b, id)
	e.must("kill", id, "WINCH")
	if s := e.state(id).Status; s != specs.StateCreated {
		t.Fatalf("after SIGWINCH: status %s, want created", s)
	}
	e.must("start", id)
	if s := e.state(id).Status; s != specs.StateRunning {
		t.Fatalf("after start: status %s, want running", s)
	}
	e.must("delete", "--force", id)
}

// freezerDir is where a cgroup's freezer state lives on this host, and
// the file and the value that freeze it.
func freezerDir(t *testing.T, cgroupsPath string) (dir, file, frozen string) {
	switch cgroup.Mode() {
	case cgroup.Unified:
		return "/sys/fs/cgroup" + cgroupsPath, "cgroup.freeze", "1"
	case cgroup.Legacy, cgroup.Hybrid:
		return "/sys/fs/cgroup/freezer" + cgroupsPath, "freezer.state", "FROZEN"
	}
	t.Skip("no cgroup filesystem")
	return
}

// run -d and create into a cgroup that is already frozen are refused with
// runc's error (the init would stop for good as it joined), and nothing is
// left behind.
func TestCreateInFrozenCgroup(t *testing.T) {
	e := newEnv(t)
	cgPath := "/" + newID() + "-frozen"
	dir, file, frozen := freezerDir(t, cgPath)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		thawed := "0"
		if frozen == "FROZEN" {
			thawed = "THAWED"
		}
		os.WriteFile(filepath.Join(dir, file), []byte(thawed), 0o644)
		os.Remove(dir)
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(frozen), 0o644); err != nil {
		t.Fatal(err)
	}
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.CgroupsPath = cgPath })
	for _, args := range [][]string{{"run", "-d"}, {"create"}} {
		id := newID()
		done := make(chan struct{})
		var errOut string
		var code int
		go func() {
			defer close(done)
			_, errOut, code = e.run(nil, append(args, "--bundle", b, id)...)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			os.WriteFile(filepath.Join(dir, file), []byte("THAWED"), 0o644)
			<-done
			t.Fatalf("%v into a frozen cgroup: still waiting after 20s", args)
		}
		if code != 1 || !strings.Contains(errOut, "container's cgroup unexpectedly frozen") {
			t.Fatalf("%v into a frozen cgroup: exit %d, stderr %q", args, code, errOut)
		}
		if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
			t.Fatalf("%v: containers left: %q", args, out)
		}
	}
}

// A rootfs whose /proc or /sys is a symlink (or not a directory) is
// refused, as runc does: the kernel's files go on an ordinary directory,
// never where the image's link points. Nothing is made at the link's
// target.
func TestSpecialMountOnSymlinkRefused(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ dir, fs, link string }{
		{"proc", "proc", "/symlink"},
		{"sys", "sysfs", "/symlink"},
		{"proc", "proc", "/etc"},
	} {
		for _, store := range []string{"plain", "shared"} {
			b := bundle(t, "true")
			testutil.MutateSpec(t, b, func(s *specs.Spec) {
				s.Annotations = map[string]string{"run.fre.rootfs": store}
			})
			p := filepath.Join(b, "rootfs", c.dir)
			os.RemoveAll(p)
			if err := os.Symlink(c.link, p); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := e.run(nil, "run", "-d", "--bundle", b, newID())
			want := `filesystem "` + c.fs + `" must be mounted on ordinary directory`
			if code != 1 || !strings.Contains(errOut, want) {
				t.Fatalf("/%s -> %s (%s): exit %d, stderr %q, want %q", c.dir, c.link, store, code, errOut, want)
			}
			if c.link == "/symlink" {
				if _, err := os.Lstat(filepath.Join(b, "rootfs/symlink")); !os.IsNotExist(err) {
					t.Fatalf("the link's target was made: %v", err)
				}
			}
		}
	}
	if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
}

// A startContainer hook runs under the container's seccomp filter, as
// runc runs it (from its init, after the filter is in).
func TestStartContainerHookUnderSeccomp(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = false
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActKill}},
		}
		s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "mkdir /dev/shm/hook-dir"}}}}
	})
	_, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code == 0 || !strings.Contains(errOut, "bad system call") {
		t.Fatalf("exit %d, stderr %q: want the hook killed by its filter", code, errOut)
	}
	// Without the filter's rule the same hook runs.
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.Seccomp.Syscalls[0].Names = []string{"kcmp"} })
	if _, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
