package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

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

// A cgroup2 mounted over this host's v1 tree (a runtime in a container, a
// private mount namespace): statfs says unified, and fre-runc runs the
// container in the unified hierarchy instead of failing on the hidden v1
// directories. Its device rules hold there too.
func TestCgroup2OverV1Tree(t *testing.T) {
	if m := cgroup.Mode(); m != cgroup.Hybrid && m != cgroup.Legacy {
		t.Skipf("needs a v1 host to mount cgroup2 over; host is %v", m)
	}
	e := newEnv(t)
	cg := "/" + newID()
	b := bundle(t, "sh", "-c", "cat /proc/self/cgroup; head -c1 /dev/null && echo null-ok; mknod /dev/kmsgX c 1 11; ( exec 3<>/dev/kmsgX ) 2>/dev/null && echo kmsg-opened || echo kmsg-denied")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.CgroupsPath = cg
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_MKNOD")
		s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_MKNOD")
		s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_MKNOD")
		s.Root.Readonly = false
	})
	script := `mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`
	args := append([]string{"-m", "sh", "-c", script, "sh", e.bin}, e.args...)
	args = append(args, "run", "--bundle", b, newID())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("fre-runc under a cgroup2 over v1: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "0::"+cg) || !strings.Contains(s, "null-ok") || !strings.Contains(s, "kmsg-denied") {
		t.Fatalf("want the init in 0::%s, /dev/null readable, c 1:11 denied; got\n%s", cg, s)
	}
	if _, err := os.Stat(cgroup.UnifiedMountpoint() + cg); !os.IsNotExist(err) {
		t.Errorf("cgroup left in the unified hierarchy: %v", err)
	}
}

// kill takes signal 0 (is it there?); on a stopped container it says
// "container not running", and with --all it is no error (runc's
// kill.bats). Flags may follow the ID, as runc's parser takes them.
func TestKillSignalZeroAndFlagsAfterID(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	e.must("kill", id, "0")
	e.must("kill", id, "0", "--all")
	e.must("update", id, "--pids-limit", "50")
	e.must("kill", id, "KILL")
	e.waitStatus(id, specs.StateStopped)
	if _, errOut, code := e.run(nil, "kill", id, "0"); code == 0 || !strings.Contains(errOut, "not running") {
		t.Fatalf("kill 0 of a stopped container: exit %d, %q", code, errOut)
	}
	e.must("kill", "-a", id, "0")
	e.must("delete", id)
}

// A read-only /dev with /dev/pts and the other mounts below it: their
// targets and the device nodes are made before /dev goes read-only, as
// runc does.
func TestReadonlyDevWithMountsBelow(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "grep ' /dev ' /proc/self/mountinfo; ls /dev/pts/ptmx /dev/null >/dev/null && echo nodes-ok; touch /dev/x 2>/dev/null || echo dev-ro")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/dev" {
				s.Mounts[i].Options = append(s.Mounts[i].Options, "ro")
			}
		}
	})
	out := e.must("run", "--bundle", b, newID())
	if !strings.Contains(out, "nodes-ok") || !strings.Contains(out, "dev-ro") || !strings.Contains(strings.SplitN(out, "\n", 2)[0], " ro,") {
		t.Fatalf("want /dev read-only with its nodes and mounts in; got\n%s", out)
	}
}

// exec's own failures exit 255, as runc's do (a pid file in a missing
// directory, a paused container, a missing program); --ignore-paused
// runs a process in a paused container, which runs once it is resumed.
func TestExecFailuresAndIgnorePaused(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	if _, errOut, code := e.run(nil, "exec", "--pid-file", "/nonexistent/dir/pid", id, "true"); code != 255 {
		t.Errorf("pid file in a missing dir: exit %d (%q), want 255", code, errOut)
	}
	if _, errOut, code := e.run(nil, "exec", id, "/no/such/prog"); code != 255 {
		t.Errorf("missing program: exit %d (%q), want 255", code, errOut)
	}
	e.must("pause", id)
	if _, errOut, code := e.run(nil, "exec", id, "true"); code != 255 || !strings.Contains(errOut, "cannot exec in a paused container") {
		t.Errorf("exec in a paused container: exit %d (%q), want 255", code, errOut)
	}
	// As runc's cgroups.bats: the exec waits for the resume, then runs.
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, _, code := e.run(nil, "exec", "--ignore-paused", id, "echo", "ok")
		done <- result{out, code}
	}()
	select {
	case r := <-done:
		t.Fatalf("exec --ignore-paused returned while paused: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	e.must("resume", id)
	select {
	case r := <-done:
		if r.code != 0 || strings.TrimSpace(r.out) != "ok" {
			t.Fatalf("exec --ignore-paused after resume: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exec --ignore-paused still waiting 20s after resume")
	}
	e.must("delete", "--force", id)
}

// A second container in a cgroup that has processes is refused, as runc
// (1.2 on; 1.1 warned) does: run and create.
func TestCreateInNonEmptyCgroup(t *testing.T) {
	e := newEnv(t)
	cg := "/" + newID() + "-shared"
	b := bundle(t, "sleep", "60")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.CgroupsPath = cg })
	first := newID()
	e.must("run", "-d", "--bundle", b, first)
	for _, args := range [][]string{{"run", "-d"}, {"create"}} {
		_, errOut, code := e.run(nil, append(args, "--bundle", b, newID())...)
		if code == 0 || !strings.Contains(errOut, "container's cgroup is not empty") {
			t.Fatalf("%v into a cgroup in use: exit %d, stderr %q", args, code, errOut)
		}
	}
	if out := strings.Fields(e.must("list", "-q")); len(out) != 1 || out[0] != first {
		t.Fatalf("containers: %v, want only %s", out, first)
	}
	e.must("delete", "--force", first)
}

// update with a resources document that carries device rules (what
// containerd's runc shim sends: the spec's whole resources) changes the
// limits and leaves the device rules as create made them, as runc does.
func TestUpdateKeepsDeviceRules(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	res := `{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":11,"access":"rwm"}],"pids":{"limit":42}}`
	if _, errOut, code := e.run([]byte(res), "update", "-r", "-", id); code != 0 {
		t.Fatalf("update -r with devices: exit %d: %s", code, errOut)
	}
	if out, errOut, code := e.run(nil, "exec", id, "sh", "-c", "head -c1 /dev/zero | wc -c"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("/dev/zero after update: exit %d, %q %q", code, out, errOut)
	}
	e.must("delete", "--force", id)
}

// Device rules hold on every layout (v1's devices controller, v2's BPF
// program): with CAP_MKNOD a node the rules deny cannot be opened and one
// they allow can, for the init, for exec, and after an update; the rules
// are in place before the program's first instruction.
func TestDeviceRulesEnforced(t *testing.T) {
	e := newEnv(t)
	probe := `mknod /dev/kmsgX c 1 11 2>/dev/null; mknod /dev/nullX c 1 3 2>/dev/null; ` +
		`( exec 3<>/dev/kmsgX ) 2>/dev/null && echo kmsg-opened || echo kmsg-denied; ` +
		`( exec 3<>/dev/nullX ) 2>/dev/null && echo null-opened || echo null-denied`
	b := bundle(t, "sh", "-c", probe+"; sleep 60")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		for _, set := range []*[]string{&s.Process.Capabilities.Bounding, &s.Process.Capabilities.Effective, &s.Process.Capabilities.Permitted} {
			*set = append(*set, "CAP_MKNOD")
		}
		s.Root.Readonly = false
	})
	id := newID()
	e.must("create", "--bundle", b, id)
	e.must("start", id)
	check := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "kmsg-denied") || !strings.Contains(out, "null-opened") {
			t.Fatalf("%s: want c 1:11 denied and c 1:3 allowed; got %q", what, out)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readAll(e.lastOut), "null-") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	check("init", readAll(e.lastOut))
	check("exec", e.must("exec", id, "sh", "-c", probe))
	e.must("update", "--pids-limit", "99", id)
	check("exec after update", e.must("exec", id, "sh", "-c", probe))
	e.must("delete", "--force", id)
}

// --debug writes level=debug lines to stderr, or with --log to the log
// only (text or JSON); --version has runc's commit: and spec: lines.
func TestDebugLogAndVersion(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "true")
	_, errOut, code := e.run(nil, "--debug", "run", "--bundle", b, newID())
	if code != 0 || !strings.Contains(errOut, "level=debug") {
		t.Fatalf("--debug: exit %d, stderr %q", code, errOut)
	}
	// runc's own lines for the same steps (runc's debug.bats and
	// exec.bats look for them).
	for _, l := range []string{"nsexec container setup", "child process in init()", "init: closing the pipe to signal completion"} {
		if !strings.Contains(errOut, l) {
			t.Errorf("--debug run: no %q in %q", l, errOut)
		}
	}
	id := newID()
	e.must("run", "-d", "--bundle", bundle(t, "sleep", "60"), id)
	_, errOut, _ = e.run(nil, "--debug", "exec", id, "true")
	for _, l := range []string{"nsexec container setup", "child process in init()", "setns_init: about to exec"} {
		if !strings.Contains(errOut, l) {
			t.Errorf("--debug exec: no %q in %q", l, errOut)
		}
	}
	e.must("delete", "--force", id)
	for _, format := range []string{"text", "json"} {
		log := filepath.Join(t.TempDir(), "log")
		_, errOut, code := e.run(nil, "--log", log, "--log-format", format, "--debug", "run", "--bundle", b, newID())
		got, _ := os.ReadFile(log)
		want := "level=debug"
		if format == "json" {
			want = `"level":"debug"`
		}
		if code != 0 || strings.Contains(errOut, "debug") || !strings.Contains(string(got), want) {
			t.Fatalf("--log %s --debug: exit %d, stderr %q, log %q", format, code, errOut, got)
		}
	}
	out := e.must("--version")
	for _, l := range []string{"fre-runc version ", "\ncommit: ", "\nspec: "} {
		if !strings.Contains(out, l) {
			t.Fatalf("--version %q lacks %q", out, l)
		}
	}
}

// linux.resources.unified on a cgroup v1 host is runc's "invalid
// configuration", and nothing is left.
func TestUnifiedResourcesOnV1(t *testing.T) {
	if m := cgroup.Mode(); m != cgroup.Hybrid && m != cgroup.Legacy {
		t.Skipf("a v1 host's behaviour; host is %v", m)
	}
	e := newEnv(t)
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Unified: map[string]string{"memory.min": "131072"}}
	})
	_, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code == 0 || !strings.Contains(errOut, "invalid configuration") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
}

// -h/--help and `help CMD` print a command's help in runc's layout on
// stdout, for every command runc has, checkpoint and restore included
// (which say "not supported" when run).
func TestCommandHelp(t *testing.T) {
	e := newEnv(t)
	for _, cmd := range []string{"create", "start", "run", "state", "kill", "delete", "list", "exec", "ps",
		"pause", "resume", "update", "events", "spec", "features", "checkpoint", "restore"} {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			out, _, code := e.run(nil, args...)
			if code != 0 || !strings.Contains(out, "NAME:\n   fre-runc "+cmd+" - ") || !strings.Contains(out, "USAGE:\n") {
				t.Fatalf("%v: exit %d, stdout %q", args, code, out)
			}
		}
	}
	// The binary's own, in runc's layout (help.bats: NAME: first, then
	// "<name> - Open Container Initiative runtime").
	for _, h := range []string{"-h", "--help"} {
		if out, _, code := e.run(nil, h); code != 0 || !strings.HasPrefix(out, "NAME:\n   fre-runc - Open Container Initiative runtime") {
			t.Fatalf("%s: exit %d, stdout %q", h, code, out)
		}
	}
	if out, _, _ := e.run(nil, "kill", "--help"); !strings.Contains(out, "--all, -a") {
		t.Fatalf("kill --help lists no --all, -a: %q", out)
	}
	if _, errOut, code := e.run(nil, "checkpoint", "x"); code == 0 || !strings.Contains(errOut, "not supported") {
		t.Fatalf("checkpoint: exit %d, %q", code, errOut)
	}
}

// Without a mount namespace the container's root is its rootfs by chroot,
// as runc does (runtime-tools' linux_ns_itype): its program is looked up,
// at create, there.
func TestNoMountNamespaceChroots(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "/marker-prog")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		var keep []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.MountNamespace {
				keep = append(keep, n)
			}
		}
		s.Linux.Namespaces = keep
		s.Mounts = nil
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		s.Annotations = map[string]string{"run.fre.rootfs": "plain"}
	})
	script := "#!/bin/sh\n[ -e /marker-prog ] && [ ! -e " + b + " ] && echo in-rootfs\n"
	if err := os.WriteFile(filepath.Join(b, "rootfs", "marker-prog"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out := e.must("run", "--bundle", b, newID()); strings.TrimSpace(out) != "in-rootfs" {
		t.Fatalf("output %q, want in-rootfs", out)
	}
}

// A plain-directory bundle's container runs on the bundle's live rootfs
// by default, as runc's does (issue 18's item 8): what a createRuntime
// hook copies into rootfs/lib is there, a file added to rootfs after
// start is seen, and the container's writes land in the bundle. The
// shared store is opt-in for such a bundle (storeEnv's tests).
func TestPlainBundleIsLive(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "600")
	rfs := filepath.Join(b, "rootfs")
	lib := filepath.Join(t.TempDir(), "libfre-hook.so.1")
	if err := os.WriteFile(lib, []byte("a library a hook put there\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Root.Readonly = false
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh",
			Args: []string{"sh", "-c", "mkdir -p " + rfs + "/lib && cp " + lib + " " + rfs + "/lib/"}}}}
	})
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	if out := e.must("exec", id, "cat", "/lib/libfre-hook.so.1"); out != "a library a hook put there\n" {
		t.Errorf("the hook's library in the container: %q", out)
	}
	if err := os.WriteFile(filepath.Join(rfs, "added-after-start"), []byte("later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.must("exec", id, "cat", "/added-after-start"); out != "later\n" {
		t.Errorf("a file added to the bundle after start: %q", out)
	}
	e.must("exec", id, "sh", "-c", "echo written > /written-inside")
	if got, err := os.ReadFile(filepath.Join(rfs, "written-inside")); err != nil || string(got) != "written\n" {
		t.Errorf("the container's write in the bundle: %q, %v", got, err)
	}
	if m := rootfsJSON(t, e, id); m != nil {
		t.Errorf("state's rootfs_store %v, want none (the bundle's rootfs)", m)
	}
	e.must("delete", "--force", id)
}

// Recursive read-only binds (rro: mount_setattr with AT_RECURSIVE, as
// runc does): the bind and the mounts below it are read-only, where "ro"
// alone leaves a submount writable; features lists the option.
func TestRecursiveReadOnlyBind(t *testing.T) {
	e := newEnv(t)
	vol := t.TempDir()
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	run := func(opt string) string {
		b := bundle(t, "sh", "-c", "touch /vol/a 2>/dev/null && echo top-rw || echo top-ro; touch /vol/sub/b 2>/dev/null && echo sub-rw || echo sub-ro")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", opt}})
		})
		return e.must("run", "--bundle", b, newID())
	}
	if out := run("ro"); !strings.Contains(out, "top-ro") || !strings.Contains(out, "sub-rw") {
		t.Fatalf("ro: want the top read-only and the submount writable (not recursive); got\n%s", out)
	}
	if out := run("rro"); !strings.Contains(out, "top-ro") || !strings.Contains(out, "sub-ro") {
		t.Fatalf("rro: want both read-only; got\n%s", out)
	}
	if out := e.must("features"); !strings.Contains(out, `"rro"`) {
		t.Fatalf("features do not list rro:\n%s", out)
	}
	// The host's own mounts are untouched.
	if err := os.WriteFile(filepath.Join(sub, "host"), nil, 0o644); err != nil {
		t.Fatalf("the host's submount: %v", err)
	}
}

// exec --cgroup (runc's): the process goes into an existing sub-cgroup of
// the container's, in every controller or in the ones named; a missing
// one fails the exec (255).
func TestExecSubCgroup(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	cgPath := "/" + newID()
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.CgroupsPath = cgPath })
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	defer e.must("delete", "--force", id) // removes the sub-cgroups with the container's
	made := 0
	roots := []string{"/sys/fs/cgroup"}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, en := range ents {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", en.Name()))
	}
	for _, r := range roots {
		if fi, err := os.Stat(filepath.Join(r, cgPath)); err == nil && fi.IsDir() {
			sub := filepath.Join(r, cgPath, "sub")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			// A v1 cpuset cgroup takes no process until it has cpus and
			// mems (its maker's job, for runc too).
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(r, cgPath, f)); err == nil && filepath.Base(r) == "cpuset" {
					os.WriteFile(filepath.Join(sub, f), v, 0o644)
				}
			}
			made++
		}
	}
	if made == 0 {
		t.Fatalf("no cgroup %s in any hierarchy", cgPath)
	}
	// The lines of /proc/self/cgroup for memory and pids (v1), or v2's.
	lines := func(out string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.SplitN(l, ":", 3)
			if len(f) != 3 {
				continue
			}
			for _, c := range strings.Split(f[1], ",") {
				m[c] = f[2]
			}
		}
		return m
	}
	all := lines(e.must("exec", "--cgroup", "sub", id, "cat", "/proc/self/cgroup"))
	if cgroup.Mode() == cgroup.Unified {
		if !strings.HasSuffix(all[""], "/sub") {
			t.Fatalf("exec --cgroup sub: in %q, want .../sub", all[""])
		}
	} else {
		for _, c := range []string{"memory", "pids"} {
			if !strings.HasSuffix(all[c], "/sub") {
				t.Errorf("exec --cgroup sub: %s cgroup %q, want .../sub", c, all[c])
			}
		}
		one := lines(e.must("exec", "--cgroup", "memory:sub", id, "cat", "/proc/self/cgroup"))
		if !strings.HasSuffix(one["memory"], "/sub") || strings.HasSuffix(one["pids"], "/sub") {
			t.Errorf("exec --cgroup memory:sub: memory %q, pids %q; want only memory's in sub", one["memory"], one["pids"])
		}
	}
	// runc's words (exec.bats): a missing sub-cgroup, one above the
	// container's, a controller it does not have.
	unknown := "unknown controller "
	if cgroup.Mode() == cgroup.Unified {
		unknown = "controller names are not allowed" // runc's v2 words
	}
	for _, c := range []struct{ arg, want string }{
		{"nosuch", "/nosuch/cgroup.procs: no such file "},
		{"..", " .. is not a sub cgroup path"},
		{"whaaat:/", unknown},
	} {
		if _, errOut, code := e.run(nil, "exec", "--cgroup", c.arg, id, "true"); code != 255 || !strings.Contains(errOut, c.want) {
			t.Errorf("exec --cgroup %s: exit %d (%q), want 255 and %q", c.arg, code, errOut, c.want)
		}
	}
}

// exec -t without -d and without a console socket: fre-runc makes the pty
// and relays it (runc's foreground tty); the pty is the process's user's,
// and the process's consoleSize is its size. With -d it is refused, as
// runc refuses it.
func TestExecForegroundTTY(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	defer e.must("delete", "--force", id)
	out := e.must("exec", "-t", "--user", "1000:1000", id, "sh", "-c", "tty; stat -c %u:%g $(tty)")
	// The owner is the process's user; the group stays devpts' gid=5 (tty),
	// as runc's tty.bats has it.
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "1000:5") {
		t.Errorf("exec -t: %q, want a pty of the process's uid and the tty group", out)
	}
	proc := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(proc, []byte(`{"terminal": true, "consoleSize": {"height": 41, "width": 101}, "user": {"uid": 0, "gid": 0},
		"cwd": "/", "env": ["PATH=/bin:/usr/bin"], "args": ["stty", "size"]}`), 0o644)
	if out := e.must("exec", "--process", proc, id); !strings.Contains(out, "41 101") {
		t.Errorf("exec with consoleSize 41x101: stty size %q", out)
	}
	if _, _, code := e.run(nil, "exec", "-t", id, "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec -t exit code %d, want 7", code)
	}
	if _, errOut, code := e.run(nil, "exec", "-t", "-d", id, "true"); code == 0 || !strings.Contains(errOut, "console socket") {
		t.Errorf("exec -t -d without a console socket: exit %d (%q), want runc's refusal", code, errOut)
	}
}

// On a hybrid host (v1 controllers, a cgroup2 at /sys/fs/cgroup/unified)
// the init and every exec are in the container's cgroup in the unified
// hierarchy too, as runc puts them ("0::/<path>", the last line of
// /proc/<pid>/cgroup; runc's "cgroup v1+hybrid joins correct cgroup"),
// and delete removes it. Twice, so that the second run claims its v1
// cgroup from the pool.
func TestHybridJoinsUnified(t *testing.T) {
	if cgroup.Mode() != cgroup.Hybrid {
		t.Skip("not a hybrid cgroup host")
	}
	e := newEnv(t)
	cg := "/" + newID() + "-hybrid"
	unified := cgroup.HybridDir(cg)
	b := bundle(t, "sleep", "60")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.CgroupsPath = cg })
	last := func(s string) string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		return l[len(l)-1]
	}
	for round := 0; round < 2; round++ {
		id := newID()
		e.must("run", "-d", "--bundle", b, id)
		pid := e.state(id).Pid
		procCg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatal(err)
		}
		if got := last(string(procCg)); got != "0::"+cg {
			t.Fatalf("round %d: init's unified cgroup %q, want 0::%s", round, got, cg)
		}
		// The exec's own view: a host cgroup namespace in runc's spec.
		if got := last(e.must("exec", id, "cat", "/proc/self/cgroup")); got != "0::"+cg {
			t.Fatalf("round %d: exec's unified cgroup %q, want 0::%s", round, got, cg)
		}
		e.must("delete", "--force", id)
		if _, err := os.Stat(unified); !os.IsNotExist(err) {
			t.Fatalf("round %d: %s after delete: %v", round, unified, err)
		}
	}
}

// In a new user namespace the container's root (uid 100000 on the host)
// may not enter the bind sources' directories (mode 0700, the host's
// root's): the runtime opens them first, as runc does (its mount fds),
// for run, for exec into the container, and for a bind right before a
// cgroup v1 mount with no cgroup namespace (runc's userns.bats).
func TestUserNamespaceBindSources(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "stat -c %n /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt /tmp/mount-3/foo.txt")
	srcs := t.TempDir() // 0700, root's
	var mounts []specs.Mount
	for i, name := range []string{"inaccessible-1", "inaccessible-2", "accessible"} {
		dir := filepath.Join(srcs, name, "dir")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "foo.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if name != "accessible" {
			os.Chmod(filepath.Join(srcs, name), 0o700)
		}
		mounts = append(mounts, specs.Mount{Source: dir, Destination: fmt.Sprintf("/tmp/mount-%d", i+1), Options: []string{"bind"}})
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65534}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65534}}
		// The third right before /sys/fs/cgroup, with no cgroup namespace.
		var ms []specs.Mount
		for _, m := range s.Mounts {
			if m.Destination == "/sys/fs/cgroup" {
				ms = append(ms, mounts[2])
			}
			ms = append(ms, m)
		}
		s.Mounts = append(ms, mounts[:2]...)
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.CgroupNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
	})
	// The mapped root must be able to reach the bundle, as with runc.
	os.Chmod(b, 0o755)
	os.Chmod(filepath.Dir(b), 0o711)
	want := "/tmp/mount-1/foo.txt\n/tmp/mount-2/foo.txt\n/tmp/mount-3/foo.txt"
	if out, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "60"} })
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	if out := e.must("exec", id, "stat", "-c", "%n", "/tmp/mount-1/foo.txt", "/tmp/mount-2/foo.txt", "/tmp/mount-3/foo.txt"); strings.TrimSpace(out) != want {
		t.Fatalf("exec: %q", out)
	}
	if cgroup.Mode() != cgroup.Unified {
		// Real cgroupfs: its tasks files are there.
		e.must("exec", id, "sh", "-c", "cat /sys/fs/cgroup/pids/tasks /sys/fs/cgroup/memory/tasks >/dev/null")
	}
	e.must("delete", "--force", id)
}

// A rootfs that is a mount of the host's (containerd's snapshot, mounted
// by its shim) in a new user namespace: the namespace's copy of it is
// locked, so the runtime binds it onto itself there before pivot_root,
// as runc does (containerd's TestUserNamespaces with the host's root
// mapped: "pivot_root: invalid argument" before).
func TestUserNamespaceRootfsMount(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "exit 7")
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 20}, {ContainerID: 20, HostID: 2000, Size: 65535}}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
	})
	rootfs := filepath.Join(b, "rootfs")
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(rootfs, unix.MNT_DETACH) })
	if _, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code != 7 {
		t.Fatalf("run: exit %d, stderr %q", code, errOut)
	}
}

// A createContainer hook starts in the container's mount namespace with
// the rootfs as its directory (runc's init is there when it runs them):
// a relative path reaches the container's files, never the host's /
// (runc's hooks.bats binds a library into ./lib).
func TestCreateContainerHookCwd(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "cat", "/hook-cwd")
	mark := "fre-hook-cwd-" + newID()
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/sh",
			Args: []string{"sh", "-c", "pwd > ./hook-cwd; touch ./" + mark}}}}
	})
	out, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if _, err := os.Stat("/" + mark); err == nil {
		os.Remove("/" + mark)
		t.Fatalf("the hook wrote into the host's /")
	}
	if code != 0 || strings.TrimSpace(out) != filepath.Join(b, "rootfs") {
		t.Fatalf("exit %d, hook's cwd %q (want %s), stderr %q", code, out, filepath.Join(b, "rootfs"), errOut)
	}
	if _, err := os.Stat(filepath.Join(b, "rootfs", mark)); err != nil {
		t.Fatalf("the hook's relative file: %v", err)
	}
}

// --no-pivot keeps the host's mounts in the container's namespace behind
// the chroot; the host's full procfs among them would let the container
// mount a fresh, unmasked proc (mount_too_revealing looks at the
// namespace). Those are unmounted before the move, so that mount is
// refused, as with runc (no_pivot.bats, CVE-2023-27561).
func TestNoPivotHidesHostProc(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "unshare", "-mrpf", "sh", "-euxc", "mount -t proc none /proc && echo h > /proc/sysrq-trigger")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SETFCAP")
		s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_SETFCAP")
	})
	out, errOut, code := e.run(nil, "run", "--no-pivot", "--bundle", b, newID())
	if code != 1 || !strings.Contains(out+errOut, "mount: permission denied") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the proc mount refused", code, out, errOut)
	}
}

// update as runc's update.bats drives it: --cpu-share (runc's name), and
// --memory -1 under a memory+swap limit (swap goes unlimited with it).
func TestUpdateRuncFlags(t *testing.T) {
	if cgroup.Mode() == cgroup.Unified {
		t.Skip("memory+swap is v1's")
	}
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "-d", "--bundle", b, id)
	defer e.must("delete", "--force", id)
	e.must("update", id, "--cpu-share", "200")
	e.must("update", id, "--memory", "67108864", "--memory-swap", "96468992")
	if _, errOut, code := e.run(nil, "update", id, "--memory", "-1"); code != 0 {
		t.Fatalf("update --memory -1 under a swap limit: exit %d, %q", code, errOut)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(cg), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
			for file, want := range map[string]string{"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712"} {
				got, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", f[2], file))
				if err == nil && strings.TrimSpace(string(got)) != want {
					t.Errorf("%s: %s, want unlimited", file, got)
				}
			}
		}
	}
}

// SCMP_ACT_NOTIFY on write is refused (the runtime's own reports are
// writes under the filter), and a missing agent is runc's error.
func TestSeccompNotifyRefusals(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"write"}, "SCMP_ACT_NOTIFY cannot be used for the write syscall"},
		{[]string{"mkdir"}, "failed to connect with seccomp agent"},
	} {
		b := bundle(t, "true")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: filepath.Join(t.TempDir(), "none.sock"),
				Syscalls: []specs.LinuxSyscall{{Names: c.names, Action: specs.ActNotify}}}
		})
		if _, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("notify %v: exit %d, %q; want %q", c.names, code, errOut, c.want)
		}
	}
}

// fre-runc starts with transparent huge pages off for itself (pin.go), and
// the setting is inherited across fork and execve: what it starts must get
// the host's setting back, as under runc: the container's init, a process
// exec'd into it, a hook run from fre-runc (prestart) and one started in
// the container's namespaces (createContainer).
func TestStartedProcessesKeepHostTHP(t *testing.T) {
	// This test binary has fre-runc's constructor too (TestMain undoes
	// it): compare with the process that started it.
	parent, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", os.Getppid()))
	if err != nil || !strings.Contains(string(parent), "THP_enabled:\t1") {
		t.Skip("the test's parent has no THP_enabled: 1 to compare with")
	}
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "cat /hook-thp; grep THP_enabled /proc/self/status; sleep 60")
	hostHook := filepath.Join(t.TempDir(), "prestart-thp")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateContainer: []specs.Hook{{Path: "/bin/sh",
				Args: []string{"sh", "-c", "grep THP_enabled /proc/self/status > ./hook-thp"}}},
			Prestart: []specs.Hook{{Path: "/bin/sh",
				Args: []string{"sh", "-c", "grep THP_enabled /proc/self/status > " + hostHook}}},
		}
	})
	id := newID()
	out := e.runDetached(b, id)
	defer e.must("delete", "--force", id)
	want := "THP_enabled:\t1"
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(readAll(out), want) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := readAll(out); strings.Count(got, want) != 2 {
		t.Fatalf("createContainer hook and init: %q, want %q twice", got, want)
	}
	if got, _ := os.ReadFile(hostHook); strings.TrimSpace(string(got)) != want {
		t.Fatalf("prestart hook: %q, want %q", got, want)
	}
	if got := e.must("exec", id, "grep", "THP_enabled", "/proc/self/status"); strings.TrimSpace(got) != want {
		t.Fatalf("exec: %q, want %q", got, want)
	}
}
