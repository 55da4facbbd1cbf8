package main

// End-to-end tests of the fre-runc binary: each command, exit codes and
// signals, stdio, the console socket, hostname, mounts, read-only root,
// users, rlimits, the netns policy, bad input, the /proc/<pid>/exe
// overwrite attempt, and a leak check over the whole suite (TestMain).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/netns"
	"github.com/fre-runtime/fre/runtime/spawn"
)

var (
	freBin  string // the fre-runc under test
	idSeq   atomic.Int64
	rootDir string // every test's --root lives under it
)

func TestMain(m *testing.M) {
	// This test binary is package main, so pin.go pinned it to one CPU too;
	// the suite and the fre-runc processes it starts get every CPU back.
	if set, ok := spawn.StartAffinity(); ok {
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			if tid, err := strconv.Atoi(task.Name()); err == nil {
				unix.SchedSetaffinity(tid, &set)
			}
		}
	}
	// It turned transparent huge pages off for itself too; the fre-runc
	// processes it starts must see the host's setting, as from a shell.
	spawn.RestoreTHP()
	if os.Geteuid() != 0 {
		fmt.Println("cmd/fre-runc: end-to-end tests need root; skipping them")
		os.Exit(m.Run())
	}
	tmp, err := os.MkdirTemp("", "fre-cli-test")
	if err != nil {
		panic(err)
	}
	freBin = filepath.Join(tmp, "fre-runc")
	if err := testutil.GoBuild(freBin, "."); err != nil {
		fmt.Printf("build fre-runc: %v\n", err)
		os.Exit(1)
	}
	rootDir = filepath.Join(tmp, "roots")
	// The shared-layer store of the tests is theirs, not the host's.
	os.Setenv("FRE_STORE_ROOT", filepath.Join(tmp, "store"))
	// So are the pools (host-wide by default): each test's clean-up drains
	// them (tests run one at a time).
	os.Setenv("FRE_CGPOOL_DIR", filepath.Join(tmp, "cgpool"))
	os.Setenv("FRE_NETNS_POOL_DIR", filepath.Join(tmp, "netns-pool"))
	os.Setenv("FRE_CGPOOL_REGISTRY", filepath.Join(tmp, "cgpool-owners"))
	// A container in a user namespace runs as a mapped uid that must be
	// able to reach its root through the state dir.
	os.Chmod(tmp, 0o711)
	code := m.Run()
	if leaks := findLeaks(); len(leaks) > 0 {
		fmt.Printf("LEAK after the suite:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// findLeaks lists what the suite left behind: state dirs, cgroups and
// mounts of test containers, and their processes.
func findLeaks() []string {
	// Only this run's containers: another run of the suite may be going on.
	prefix := fmt.Sprintf("fre-t-%d-", os.Getpid())
	var leaks []string
	roots, _ := filepath.Glob(filepath.Join(rootDir, "*", prefix+"*"))
	leaks = append(leaks, roots...)
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "*")
	leaks = append(leaks, cgs...)
	cgs, _ = filepath.Glob("/sys/fs/cgroup/*/*/" + prefix + "*")
	leaks = append(leaks, cgs...)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		// This run's directory (its pools' mounts too), not another run's.
		if strings.Contains(l, filepath.Dir(rootDir)+"/") {
			leaks = append(leaks, "mount: "+l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "/"+prefix) {
			// A zombie is dead already: it waits for its parent (a killed
			// container's init: the host's PID 1) to reap it, and a
			// cgroup v2 line still names its (removed) cgroup until then.
			stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
				continue
			}
			leaks = append(leaks, fmt.Sprintf("process: %s in %q", filepath.Dir(p), strings.TrimSpace(string(b))))
		}
	}
	return leaks
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// env is one test's runtime root.
type env struct {
	t    *testing.T
	bin  string // fre-runc binary (default freBin)
	root string
	args []string // global flags

	lastCreateOut string // what the last created container wrote (see readAllAfterStart)
	lastOut       *os.File
}

func newEnv(t *testing.T, global ...string) *env {
	needRoot(t)
	root := filepath.Join(rootDir, strings.ReplaceAll(t.Name(), "/", "_"))
	e := &env{t: t, bin: freBin, root: root, args: append([]string{"--root", root}, global...)}
	t.Cleanup(func() {
		// Whatever a test left running is removed, and that is checked.
		out, _, _ := e.run(nil, "list", "-q")
		for _, id := range strings.Fields(out) {
			e.run(nil, "delete", "--force", id)
		}
		// Idle pooled cgroups are the pool's by design; a test leaves none.
		e.run(nil, "pool", "drain")
		os.RemoveAll(root)
	})
	return e
}

func newID() string { return fmt.Sprintf("fre-t-%d-%d", os.Getpid(), idSeq.Add(1)) }

// run runs fre-runc; stdin may be nil.
func (e *env) run(stdin []byte, args ...string) (stdout, stderr string, code int) {
	return e.runBin(e.bin, nil, stdin, args...)
}

// runBin is run with another fre-runc binary and extra environment.
func (e *env) runBin(bin string, env []string, stdin []byte, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(bin, append(append([]string{}, e.args...), args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	// Files, not pipes: a detached container keeps its stdio open, and a
	// pipe would make Run wait for it.
	o, er := tempFile(e.t), tempFile(e.t)
	cmd.Stdout, cmd.Stderr = o, er
	err := cmd.Run()
	defer o.Close()
	defer er.Close()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run fre-runc %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if len(args) > 0 && args[0] == "create" {
		e.lastOut = o // the container keeps writing to it
	}
	return readAll(o), readAll(er), code
}

// runDetached runs the bundle's container detached as id, its stdio a
// file the container keeps writing to (returned), and fails the test if
// the run does.
func (e *env) runDetached(bundle, id string) *os.File {
	e.t.Helper()
	out := tempFile(e.t)
	cmd := exec.Command(e.bin, append(append([]string{}, e.args...), "run", "--detach", "--bundle", bundle, id)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("run --detach: %v: %s", err, readAll(out))
	}
	return out
}

func tempFile(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readAll(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// must runs fre-runc and fails the test on a non-zero exit.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(nil, args...)
	if code != 0 {
		e.t.Fatalf("fre-runc %v: exit %d: %s%s", args, code, out, errOut)
	}
	return out
}

func (e *env) state(id string) specs.State {
	e.t.Helper()
	var s specs.State
	out := e.must("state", id)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("state %s: %v: %s", id, err, out)
	}
	return s
}

// waitStatus polls the state until it is want.
func (e *env) waitStatus(id string, want specs.ContainerState) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.state(id)
		if s.Status == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s: status %s, want %s", id, s.Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func bundle(t *testing.T, args ...string) string {
	return testutil.BusyboxBundle(t, "", args...)
}

// A program path that is not there inside the container's root: create
// fails (not the exec after start) with runc's message.
func TestRunMissingProgramPath(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "/no/such/program")
	_, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code == 0 || !strings.Contains(errOut, `exec: "/no/such/program": stat /no/such/program: no such file or directory`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunExitCodes(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
	} {
		b := bundle(t, "sh", "-c", tc.script)
		_, errOut, code := e.run(nil, "run", "--bundle", b, newID())
		if code != tc.want {
			t.Errorf("%q: exit %d, want %d (%s)", tc.script, code, tc.want, errOut)
		}
	}
}

// Runs back to back with a cgroup and device rules (runc's default spec
// denies all devices, then the defaults are allowed): the child sets up
// /dev while its parent works, so the rules must be complete before it
// runs. A race here shows as an occasional "mknod: operation not
// permitted".
func TestRunRepeatedlyWithDeviceRules(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	})
	for i := 0; i < 250; i++ {
		if _, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, errOut)
		}
	}
}

// overlayMapsAgree reports whether, for a file mapped from an overlay
// whose layers are all on dir's file system, /proc/self/maps shows the
// device stat shows.
func overlayMapsAgree(t *testing.T, dir string) bool {
	d, err := os.MkdirTemp(dir, "ovl-probe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(d)
	for _, s := range []string{"lower", "upper", "work", "mnt"} {
		os.Mkdir(filepath.Join(d, s), 0o755)
	}
	os.WriteFile(filepath.Join(d, "lower", "f"), make([]byte, 4096), 0o644)
	mnt := filepath.Join(d, "mnt")
	opts := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", d, d, d)
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		t.Skipf("overlay: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	f, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	maps, _ := os.ReadFile("/proc/self/maps")
	for _, l := range strings.Split(string(maps), "\n") {
		if fl := strings.Fields(l); len(fl) >= 6 && strings.HasSuffix(fl[5], "/f") && strings.Contains(fl[5], "ovl-probe-") {
			var major, minor uint64
			fmt.Sscanf(fl[3], "%x:%x", &major, &minor)
			return unix.Mkdev(uint32(major), uint32(minor)) == st.Dev
		}
	}
	return true
}

// With the state root and the store on different file systems (a tmpfs
// /run, a disk store), the overlay's upper and work dirs still go on the
// store's: then a mapped file's st_dev is the one /proc/<pid>/maps shows
// (programs such as V8 compare the two), and nothing is left behind.
func TestSharedRootfsOneDeviceForMapsAndStat(t *testing.T) {
	var shm, store unix.Stat_t
	if unix.Stat("/dev/shm", &shm) != nil || unix.Stat(filepath.Dir(os.Getenv("FRE_STORE_ROOT")), &store) != nil || shm.Dev == store.Dev {
		t.Skip("needs /dev/shm and the store on different file systems")
	}
	if !overlayMapsAgree(t, filepath.Dir(os.Getenv("FRE_STORE_ROOT"))) {
		t.Skip("this kernel's /proc/<pid>/maps names an overlay file's backing device (any overlay root, runc's too; newer kernels name the overlay's)")
	}
	root, err := os.MkdirTemp("/dev/shm", "fre-t-root-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before newEnv's clean-up, so it runs after it (the pool
	// drain there writes under the root).
	t.Cleanup(func() { os.RemoveAll(root) })
	e := newEnv(t)
	e.root, e.args = root, []string{"--root", root}
	b := bundle(t, "sh", "-c", "stat -c %d /bin/busybox; grep -m1 /bin/busybox /proc/self/maps")
	// A writable root on the store: an overlay (a read-only one has no
	// upper).
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Root.Readonly = false
		s.Annotations = map[string]string{"run.fre.rootfs": "shared"}
	})
	out := e.must("run", "--bundle", b, newID())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q", out)
	}
	fields := strings.Fields(lines[1])
	var major, minor uint64
	if len(fields) < 4 {
		t.Fatalf("maps line %q", lines[1])
	}
	if _, err := fmt.Sscanf(fields[3], "%x:%x", &major, &minor); err != nil {
		t.Fatalf("maps line %q: %v", lines[1], err)
	}
	if dev := strings.TrimSpace(lines[0]); dev != strconv.FormatUint(unix.Mkdev(uint32(major), uint32(minor)), 10) {
		t.Fatalf("stat says st_dev %s, /proc/self/maps says %s", dev, fields[3])
	}
	if left, _ := os.ReadDir(filepath.Join(os.Getenv("FRE_STORE_ROOT"), "scratch")); len(left) > 0 {
		t.Fatalf("scratch dirs left in the store: %v", left)
	}
}

// A container killed from outside: run exits 128+9.
func TestRunKilled(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	cmd := exec.Command(freBin, "--root", e.root, "run", "--bundle", b, id)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitExists(id)
	e.waitStatus(id, specs.StateRunning)
	e.must("kill", id, "KILL")
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
		t.Fatalf("run after SIGKILL: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
		t.Fatalf("run left its state: %v", err)
	}
}

// waitExists polls until the container's state can be read.
func (e *env) waitExists(id string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, code := e.run(nil, "state", id); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s never appeared", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunStdio(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "cat; echo to-stderr >&2")
	out, errOut, code := e.run([]byte("from-stdin\n"), "run", "--bundle", b, newID())
	if code != 0 || out != "from-stdin\n" || errOut != "to-stderr\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.must("create", "--bundle", b, "--pid-file", pidFile, id)
	s := e.state(id)
	if s.Status != specs.StateCreated || s.Pid <= 0 || s.ID != id || s.Bundle != b {
		t.Fatalf("after create: %+v", s)
	}
	pf, _ := os.ReadFile(pidFile)
	if strings.TrimSpace(string(pf)) != strconv.Itoa(s.Pid) {
		t.Fatalf("pid file %q, state pid %d", pf, s.Pid)
	}
	// The created init waits in fre-dmz, not in a copy of fre-runc. It says
	// it is set up just before it execs fre-dmz (non-dumpable until then),
	// so create may return a moment before that exec.
	exe := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", s.Pid)); strings.Contains(exe, "fre-dmz") {
			break
		}
	}
	if !strings.Contains(exe, "fre-dmz") {
		t.Errorf("created init's exe is %q", exe)
	}
	if out := e.must("list", "-q"); strings.TrimSpace(out) != id {
		t.Fatalf("list -q: %q", out)
	}
	var list []specs.State
	if err := json.Unmarshal([]byte(e.must("list", "--format", "json")), &list); err != nil || len(list) != 1 || list[0].Status != "created" {
		t.Fatalf("list json: %v %+v", err, list)
	}
	if table := e.must("list"); !strings.Contains(table, "ID") || !strings.Contains(table, id) || !strings.Contains(table, "created") {
		t.Fatalf("list table: %q", table)
	}
	e.must("start", id)
	if s := e.state(id); s.Status != specs.StateRunning {
		t.Fatalf("after start: %s", s.Status)
	}
	if _, _, code := e.run(nil, "start", id); code == 0 {
		t.Fatal("second start succeeded")
	}
	if _, errOut, code := e.run(nil, "delete", id); code == 0 || !strings.Contains(errOut, "not stopped") {
		t.Fatalf("delete of a running container: exit %d %q", code, errOut)
	}
	e.must("pause", id)
	e.waitStatus(id, "paused")
	e.must("resume", id)
	e.waitStatus(id, specs.StateRunning)
	e.must("kill", id, "KILL")
	e.waitStatus(id, specs.StateStopped)
	if _, _, code := e.run(nil, "kill", id); code == 0 {
		t.Fatal("kill of a stopped container succeeded")
	}
	e.must("delete", id)
	if _, errOut, code := e.run(nil, "state", id); code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("state after delete: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
		t.Fatalf("state dir left: %v", err)
	}
	e.must("delete", "--force", id) // deleting what is gone is fine with --force
}

func TestKillSignals(t *testing.T) {
	e := newEnv(t)
	// The trap shows which signal arrived; a pid-1 shell needs a handler.
	b := bundle(t, "sh", "-c", "trap 'echo got-$SIG >> /tmp/sig; exit 3' USR1 HUP; SIG=x; while :; do sleep 0.01; done")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Root.Readonly = false })
	for _, sig := range []string{"USR1", "SIGHUP", "10"} {
		id := newID()
		e.must("run", "--detach", "--bundle", b, id)
		e.waitStatus(id, specs.StateRunning)
		e.must("kill", id, sig)
		e.waitStatus(id, specs.StateStopped)
		e.must("delete", id)
	}
	if _, errOut, code := e.run(nil, "kill", "nope", "NOSIG"); code == 0 || errOut == "" {
		t.Fatal("bad signal accepted")
	}
}

func TestDeleteForce(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	for _, start := range []bool{false, true} {
		id := newID()
		e.must("create", "--bundle", b, id)
		if start {
			e.must("start", id)
		}
		pid := e.state(id).Pid
		e.must("delete", "--force", id)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z") {
				t.Fatalf("init %d still alive after delete --force", pid)
			}
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory/" + id); !os.IsNotExist(err) {
			t.Fatalf("cgroup left after delete: %v", err)
		}
	}
}

func TestHostnameUserRlimits(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "hostname; id -u; id -g; id -G; ulimit -n; ulimit -Hn; umask")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Hostname = "fre-host"
		s.Process.User = specs.User{UID: 1234, GID: 2345, AdditionalGids: []uint32{3456, 4567}}
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}}
		u := uint32(0o027)
		s.Process.User.Umask = &u
	})
	out := e.must("run", "--bundle", b, newID())
	want := "fre-host\n1234\n2345\n2345 3456 4567\n321\n654\n0027\n"
	if out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestMountsAndReadonlyRoot(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "file"), []byte("host-data"), 0o644)
	rw := t.TempDir()
	b := bundle(t, "sh", "-c", `
cat /mnt/ro/file; echo
touch /mnt/ro/x 2>/dev/null && echo ro-writable
echo c > /mnt/rw/y && echo rw-ok
touch /newfile 2>/dev/null && echo root-writable
echo t > /tmp/t && echo tmp-ok
grep -q ' /tmp tmpfs ' /proc/mounts && echo tmp-tmpfs
cat /etc/hostfile
ls /dev/null /dev/zero /dev/urandom /dev/tty >/dev/null && echo devices-ok
[ -L /dev/fd ] && echo links-ok
[ -z "$(cat /proc/kcore)" ] && echo kcore-masked
echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo procsys-ro
`)
	os.WriteFile(filepath.Join(host, "hostfile"), []byte("single-file\n"), 0o644)
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: host, Options: []string{"rbind", "ro"}},
			specs.Mount{Destination: "/mnt/rw", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}},
			specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "size=1m"}},
			specs.Mount{Destination: "/etc/hostfile", Type: "bind", Source: filepath.Join(host, "hostfile"), Options: []string{"bind", "ro"}},
		)
	})
	out := e.must("run", "--bundle", b, newID())
	want := "host-data\nrw-ok\ntmp-ok\ntmp-tmpfs\nsingle-file\ndevices-ok\nlinks-ok\nkcore-masked\nprocsys-ro\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "y")); err != nil || string(b) != "c\n" {
		t.Fatalf("rw bind: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(host, "x")); err == nil {
		t.Fatal("write through a ro bind reached the host")
	}
}

// A symlink in the image must not send a mount outside the rootfs.
func TestMountDestinationSymlinkStaysInRoot(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir()
	b := bundle(t, "cat", "/proc/self/mountinfo")
	rootfs := filepath.Join(b, "rootfs")
	if err := os.Symlink(outside, filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/escape/sub", Type: "tmpfs", Source: "tmpfs"})
	})
	out := e.must("run", "--bundle", b, newID())
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("mount followed the symlink out of the rootfs: %v", ents)
	}
	// It landed inside: the symlink's target, resolved in the container's
	// root, is where the tmpfs is.
	if !strings.Contains(out, " "+filepath.Join(outside, "sub")+" ") {
		t.Fatalf("no mount at %s/sub inside the container:\n%s", outside, out)
	}
}

func hostNetns(t *testing.T) string {
	l, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNetnsPolicy(t *testing.T) {
	host := hostNetns(t)
	for _, tc := range []struct {
		policy     string
		annotation string
		sameAsHost bool
	}{
		{"host", "", true},
		{"new", "", false},
		{"", "", true}, // the default is host
		{"host", "new", false},
		{"new", "host", true},
	} {
		var e *env
		if tc.policy != "" {
			e = newEnv(t, "--netns-policy", tc.policy)
		} else {
			e = newEnv(t)
		}
		b := bundle(t, "readlink", "/proc/self/ns/net")
		if tc.annotation != "" {
			testutil.MutateSpec(t, b, func(s *specs.Spec) {
				s.Annotations = map[string]string{"run.fre.netns": tc.annotation}
			})
		}
		out := strings.TrimSpace(e.must("run", "--bundle", b, newID()))
		if (out == host) != tc.sameAsHost {
			t.Errorf("policy %q annotation %q: container netns %s, host %s", tc.policy, tc.annotation, out, host)
		}
	}
}

// The config file (--config): its settings apply, a flag overrides it,
// and a bad file is a clear error that names it, with nothing created.
func TestConfigFile(t *testing.T) {
	host := hostNetns(t)
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "fre.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		body, flag string
		sameAsHost bool
	}{
		{`{"netnsPolicy": "new", "cgroupPoolSize": 2}`, "", false},
		{`{"netnsPolicy": "new"}`, "host", true},
		{`{"cgroupPool": false, "rootfs": "plain"}`, "", true},
	} {
		args := []string{"--config", write(tc.body)}
		if tc.flag != "" {
			args = append(args, "--netns-policy", tc.flag)
		}
		e := newEnv(t, args...)
		b := bundle(t, "readlink", "/proc/self/ns/net")
		out := strings.TrimSpace(e.must("run", "--bundle", b, newID()))
		if (out == host) != tc.sameAsHost {
			t.Errorf("config %s flag %q: container netns %s, host %s", tc.body, tc.flag, out, host)
		}
	}
	for _, body := range []string{`{"netnsPolicy": "sometimes"}`, `{"cgroupPoolSize": "big"}`, `{`} {
		path := write(body)
		e := newEnv(t, "--config", path)
		id := newID()
		_, errOut, code := e.run(nil, "run", "--bundle", bundle(t, "true"), id)
		if code == 0 || !strings.Contains(errOut, "config file "+path) {
			t.Errorf("config %s: exit %d, stderr %q; want an error naming the file", body, code, errOut)
		}
		if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
			t.Errorf("config %s: state of %s left behind", body, id)
		}
	}
}

// runc's default spec mounts the container's cgroups read-only: on cgroup
// v1 a tmpfs with a bind of the container's cgroup per hierarchy. Each of
// those mounts is ro, nosuid, nodev and noexec, and nothing below can be
// written or made.
func TestCgroupMountReadonly(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", `grep ' /sys/fs/cgroup' /proc/self/mountinfo; `+
		`echo 1 > /sys/fs/cgroup/pids/pids.max && echo WROTE; mkdir /sys/fs/cgroup/pids/sub && echo MADE; `+
		`echo 1 > /sys/fs/cgroup/pids.max && echo WROTE; mkdir /sys/fs/cgroup/sub && echo MADE; `+
		`touch /sys/fs/cgroup/x && echo TOUCHED; echo done`)
	out := e.must("run", "--bundle", b, newID())
	if !strings.HasSuffix(strings.TrimSpace(out), "done") || strings.Contains(out, "WROTE") ||
		strings.Contains(out, "MADE") || strings.Contains(out, "TOUCHED") {
		t.Fatalf("the cgroup mount was writable:\n%s", out)
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasPrefix(f[4], "/sys/fs/cgroup") {
			continue
		}
		n++
		opts := "," + f[5] + ","
		for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
			if !strings.Contains(opts, ","+o+",") {
				t.Errorf("%s mounted %s, want %s", f[4], f[5], o)
			}
		}
	}
	// v1: a tmpfs and a bind per hierarchy; v2: the one cgroup2 bind.
	if want := 2; n < want && cgroup.Mode() != cgroup.Unified || n < 1 {
		t.Fatalf("cgroup mounts seen inside: %d\n%s", n, out)
	}
}

func TestNetnsPath(t *testing.T) {
	e := newEnv(t, "--netns-policy", "host")
	dir := t.TempDir()
	p, err := netns.New(dir, "fre-t-ns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Remove(p); netns.Purge(dir) })
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	b := bundle(t, "readlink", "/proc/self/ns/net")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				s.Linux.Namespaces[i].Path = p
			}
		}
	})
	out := strings.TrimSpace(e.must("run", "--bundle", b, newID()))
	if want := fmt.Sprintf("net:[%d]", st.Ino); out != want {
		t.Fatalf("container netns %s, want %s", out, want)
	}
}

func TestConsoleSocket(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "tty; echo hello-tty")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 120}
	})
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	id := newID()
	e.must("create", "--bundle", b, "--console-socket", sock, id)
	master := <-got
	if master == nil {
		t.Fatal("no pty master received")
	}
	defer master.Close()
	ws, err := unix.IoctlGetWinsize(int(master.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Row != 40 || ws.Col != 120 {
		t.Errorf("console size %+v %v", ws, err)
	}
	e.must("start", id)
	var out bytes.Buffer
	buf := make([]byte, 1024)
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), "hello-tty") {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(out.String(), "/dev/pts/0") || !strings.Contains(out.String(), "hello-tty") {
		t.Fatalf("terminal output %q", out.String())
	}
	e.waitStatus(id, specs.StateStopped)
	e.must("delete", id)
	// terminal without a console socket is refused for create.
	if _, errOut, code := e.run(nil, "create", "--bundle", b, newID()); code == 0 || !strings.Contains(errOut, "console") {
		t.Fatalf("terminal without console socket: exit %d %q", code, errOut)
	}
}

func TestPreserveFDsAndNoLeakedFDs(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("preserved")
	w.Close()
	defer r.Close()
	cmd := exec.Command(freBin, "--root", e.root, "run", "--preserve-fds", "1", "--bundle", b, newID())
	cmd.ExtraFiles = []*os.File{r}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// 0-2, 3 (preserved), and the fd ls itself opens for /proc/self/fd.
	if got := string(out); got != "0 1 2 3 4 preserved" {
		t.Fatalf("fds and data %q", got)
	}
	// Without --preserve-fds the extra fd must not reach the container.
	b2 := bundle(t, "sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '")
	cmd = exec.Command(freBin, "--root", e.root, "run", "--bundle", b2, newID())
	cmd.ExtraFiles = []*os.File{r}
	out, err = cmd.CombinedOutput()
	if err != nil || string(out) != "0 1 2 3 " {
		t.Fatalf("fds without preserve: %q %v", out, err)
	}
}

func TestCwdIsInsideRoot(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "pwd")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Process.Cwd = "/proc/self/fd/7" })
	if out, _, code := e.run(nil, "run", "--bundle", b, newID()); code == 0 && !strings.HasPrefix(out, "/") {
		t.Fatalf("cwd outside the root: %q", out)
	}
	b = bundle(t, "pwd")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Process.Cwd = "/new/dir" })
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Root.Readonly = false })
	if out, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code == 0 || out != "" {
		// A missing cwd is an error, as with runc.
		t.Logf("missing cwd: exit %d %q %q", code, out, errOut)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	good := bundle(t, "true")
	cases := []struct {
		name   string
		id     string
		mutate func(dir string)
		want   string
	}{
		{"missing config", "", func(d string) { os.Remove(filepath.Join(d, "config.json")) }, "config.json"},
		{"malformed config", "", func(d string) { os.WriteFile(filepath.Join(d, "config.json"), []byte("{not json"), 0o644) }, "malformed"},
		{"unsupported version", "", mut(func(s *specs.Spec) { s.Version = "2.0.0" }), "ociVersion"},
		{"unknown namespace", "", mut(func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}), "linux.namespaces"},
		{"missing rootfs", "", mut(func(s *specs.Spec) { s.Root.Path = "no-such-rootfs" }), "root.path"},
		{"empty args", "", mut(func(s *specs.Spec) { s.Process.Args = nil }), "process.args"},
		{"relative cwd", "", mut(func(s *specs.Spec) { s.Process.Cwd = "relative" }), "process.cwd"},
		{"empty id", "-", nil, "invalid container ID"},
		{"id with slash", "a/b", nil, "invalid container ID"},
		{"id dotdot", "..", nil, "invalid container ID"},
		{"id too long", strings.Repeat("x", 1025), nil, "invalid container ID"},
		{"missing program", "", mut(func(s *specs.Spec) { s.Process.Args = []string{"no-such-program"} }), "executable file not found"},
		{"apparmor unavailable", "", mut(func(s *specs.Spec) { s.Process.ApparmorProfile = "fre-test" }), "AppArmor"},
		{"bad rlimit", "", mut(func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} }), "process.rlimits"},
		{"hostname without uts", "", mut(func(s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type != specs.UTSNamespace {
					ns = append(ns, n)
				}
			}
			s.Linux.Namespaces = ns
		}), "hostname"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyBundle(t, good, dir)
			if tc.mutate != nil {
				tc.mutate(dir)
			}
			id := tc.id
			switch id {
			case "":
				id = newID()
			case "-":
				id = ""
			}
			_, errOut, code := e.run(nil, "create", "--bundle", dir, id)
			if code == 0 {
				t.Fatalf("create succeeded")
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("error %q does not mention %q", errOut, tc.want)
			}
			if tc.id == "" {
				ents, _ := os.ReadDir(e.root)
				for _, ent := range ents {
					// The pools are the runtime's, not the container's.
					if n := ent.Name(); n != "cgpool" && n != "netns-pool" {
						t.Fatalf("left state behind: %v", ents)
					}
				}
			}
		})
	}
	// An ID in use is refused and the first container is untouched.
	id := newID()
	b := bundle(t, "sleep", "60")
	e.must("create", "--bundle", b, id)
	if _, errOut, code := e.run(nil, "create", "--bundle", b, id); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate id: exit %d %q", code, errOut)
	}
	if s := e.state(id); s.Status != specs.StateCreated {
		t.Fatalf("first container after duplicate create: %s", s.Status)
	}
	e.must("delete", "--force", id)
}

func mut(fn func(*specs.Spec)) func(string) {
	return func(dir string) {
		s, err := testutil.ReadSpec(dir)
		if err != nil {
			panic(err)
		}
		fn(s)
		if err := testutil.WriteSpec(dir, s); err != nil {
			panic(err)
		}
	}
}

// copyBundle copies config.json and links the rootfs (read-only use).
func copyBundle(t *testing.T, from, to string) {
	b, err := os.ReadFile(filepath.Join(from, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(to, "config.json"), b, 0o644)
	os.Symlink(filepath.Join(from, "rootfs"), filepath.Join(to, "rootfs"))
}

func fileSum(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestExeOverwrite is the CVE-2019-5736 class: the container must not be
// able to write the host's fre-runc through /proc/<pid>/exe.
func TestExeOverwrite(t *testing.T) {
	e := newEnv(t)
	// Run a copy, so a failure cannot break the other tests' binary.
	bin := filepath.Join(t.TempDir(), "fre-runc")
	copyFileT(t, freBin, bin, 0o755)
	before := fileSum(t, bin)
	// Busybox sh: a failed redirection on a plain command does not end
	// the shell, so the loop goes on after each refusal.
	attack := `
for p in /proc/[0-9]*; do
  exe=$(readlink $p/exe 2>/dev/null)
  case "$exe" in *fre*) echo "saw $p $exe" >> /log/seen;; esac
  if echo pwned 2>/dev/null >> $p/exe; then echo "wrote $p/exe ($exe)" >> /log/seen; fi
done`
	logDir := t.TempDir()
	logMount := specs.Mount{Destination: "/log", Type: "bind", Source: logDir, Options: []string{"rbind", "rw"}}
	// 1. From the container's init.
	b := bundle(t, "sh", "-c", attack)
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Mounts = append(s.Mounts, logMount) })
	copyEnv := *e
	copyEnv.bin = bin
	e = &copyEnv
	e.must("run", "--bundle", b, newID())
	// 2. From another process of the container, while fre-runc creates and
	// starts processes in its pid namespace, some of them with the
	// entrypoint "#!/proc/self/exe" (the kernel would run the runtime's
	// own binary as the container's program).
	b3 := bundle(t, "sh", "-c", "while :; do "+attack+"\ndone")
	testutil.MutateSpec(t, b3, func(s *specs.Spec) { s.Mounts = append(s.Mounts, logMount) })
	attacker := newID()
	e.must("run", "--detach", "--bundle", b3, attacker)
	pid := e.state(attacker).Pid
	b2 := bundle(t, "/evil")
	os.WriteFile(filepath.Join(b2, "rootfs", "evil"), []byte("#!/proc/self/exe\n"), 0o755)
	testutil.MutateSpec(t, b2, func(s *specs.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace {
				s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/pid", pid)
			}
		}
	})
	for i := 0; i < 20; i++ {
		victim := newID()
		e.must("create", "--bundle", b2, victim)
		e.run(nil, "start", victim)
		e.must("delete", "--force", victim)
		// run has no start to wait for: a static ELF is exec'd without
		// fre-dmz, anything else (this script) still through it.
		victim = newID()
		e.run(nil, "run", "--bundle", b2, victim)
		e.run(nil, "delete", "--force", victim)
	}
	e.must("delete", "--force", attacker)
	seen, _ := os.ReadFile(filepath.Join(logDir, "seen"))
	t.Logf("what the attacker saw:\n%s", seen)
	if strings.Contains(string(seen), "wrote") {
		t.Fatalf("the container wrote a runtime binary:\n%s", seen)
	}
	if !strings.Contains(string(seen), "saw") {
		t.Fatal("the attacker never saw a runtime process: the test proved nothing")
	}
	if after := fileSum(t, bin); after != before {
		t.Fatal("the container wrote the host's fre-runc binary")
	}
}

func copyFileT(t *testing.T, from, to string, mode os.FileMode) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSpecAndFeatures(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.must("spec", "--bundle", dir)
	s, err := testutil.ReadSpec(dir)
	if err != nil || s.Process == nil || s.Root.Path != "rootfs" {
		t.Fatalf("spec: %v %+v", err, s)
	}
	if _, _, code := e.run(nil, "spec", "--bundle", dir); code == 0 {
		t.Fatal("spec overwrote config.json")
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(e.must("features")), &f); err != nil || f["ociVersionMax"] == nil {
		t.Fatalf("features: %v %v", err, f)
	}
}

func TestLogJSON(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(t.TempDir(), "log.json")
	_, _, code := e.run(nil, "--log", log, "--log-format", "json", "state", "nope")
	if code == 0 {
		t.Fatal("state of a missing container succeeded")
	}
	b, _ := os.ReadFile(log)
	var line struct{ Level, Msg string }
	if err := json.Unmarshal(bytes.TrimSpace(b), &line); err != nil || line.Level != "error" || !strings.Contains(line.Msg, "does not exist") {
		t.Fatalf("json log %q: %v", b, err)
	}
}

func TestSeccomp(t *testing.T) {
	e := newEnv(t)
	profile := func(action specs.LinuxSeccompAction, errno *uint) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: action, ErrnoRet: errno}},
		}
	}
	enospc := uint(28)
	for _, tc := range []struct {
		name       string
		profile    *specs.LinuxSeccomp
		noNewPrivs bool
		wantOut    string
		wantCode   int
	}{
		{"errno with no_new_privs", profile(specs.ActErrno, &enospc), true, "No space left on device", 1},
		{"errno without no_new_privs", profile(specs.ActErrno, nil), false, "Operation not permitted", 1},
		{"kill", profile(specs.ActKillProcess, nil), true, "", 128 + 31},
	} {
		b := bundle(t, "sh", "-c", "echo before; mkdir /tmp/x 2>&1; echo after-$?")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Linux.Seccomp = tc.profile
			s.Process.NoNewPrivileges = tc.noNewPrivs
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		})
		out, errOut, code := e.run(nil, "run", "--bundle", b, newID())
		if !strings.HasPrefix(out, "before\n") || !strings.Contains(out, tc.wantOut) {
			t.Errorf("%s: output %q (stderr %q)", tc.name, out, errOut)
		}
		// The kill action kills whichever process made the call: the
		// shell (exit 159) or the mkdir it forked (after-159).
		if tc.wantCode == 128+31 && code != tc.wantCode && !strings.Contains(out, "after-159") {
			t.Errorf("%s: exit %d, output %q: not killed by SIGSYS", tc.name, code, out)
		}
		if tc.wantCode != 128+31 && !strings.Contains(out, "after-1") {
			t.Errorf("%s: mkdir did not fail: %q", tc.name, out)
		}
	}
	// Without no_new_privs the filter goes in before the child's last
	// steps, which must not need what a profile may refuse: here all of
	// the socket receive calls (the child's sync with fre-runc).
	nb := bundle(t, "sh", "-c", "echo started")
	testutil.MutateSpec(t, nb, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = false
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"recvfrom", "recvmsg", "recvmmsg", "read"}, Action: specs.ActErrno}}}
		// read too: sh must not need it for echo, and fre-dmz reads
		// the exec fifo only on create/start, not on run.
	})
	if out, errOut, code := e.run(nil, "run", "--bundle", nb, newID()); code != 0 || out != "started\n" {
		t.Errorf("profile refusing recv: exit %d, output %q, stderr %q", code, out, errOut)
	}
	// A profile FRE cannot compile is a clear error.
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	})
	if _, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code == 0 || !strings.Contains(errOut, "seccomp") {
		t.Fatalf("bad profile: exit %d %q", code, errOut)
	}
}

func TestExecPsUpdateEvents(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Hostname = "fre-exec" })
	id := newID()
	e.must("run", "--detach", "--bundle", b, id)
	init := e.state(id).Pid
	// exec joins the init's namespaces: same hostname, pid namespace
	// (sleep is pid 1), and it reports the exit code.
	out := e.must("exec", id, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "fre-exec" || lines[1] != "sleep 60 " || lines[2] == "1" {
		t.Fatalf("exec output %q", out)
	}
	if _, _, code := e.run(nil, "exec", id, "sh", "-c", "exit 5"); code != 5 {
		t.Fatalf("exec exit code %d, want 5", code)
	}
	if _, _, code := e.run(nil, "exec", "--user", "1000:1000", id, "sh", "-c", "[ $(id -u) = 1000 ] && [ $(id -g) = 1000 ]"); code != 0 {
		t.Fatalf("exec --user: exit %d", code)
	}
	pf := filepath.Join(t.TempDir(), "exec.pid")
	e.must("exec", "--detach", "--pid-file", pf, id, "sleep", "30")
	var pids []int
	if err := json.Unmarshal([]byte(e.must("ps", "--format", "json", id)), &pids); err != nil || len(pids) != 2 {
		t.Fatalf("ps json: %v %v", pids, err)
	}
	if table := e.must("ps", id); !strings.Contains(table, "PID") || !strings.Contains(table, strconv.Itoa(init)) {
		t.Fatalf("ps table %q", table)
	}
	e.must("update", "--memory", "104857600", "--pids-limit", "77", id)
	var ev struct {
		Type string
		Data struct {
			Memory struct{ Usage struct{ Limit uint64 } }
			Pids   struct{ Current, Limit uint64 }
		}
	}
	if err := json.Unmarshal([]byte(e.must("events", "--stats", id)), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "stats" || ev.Data.Memory.Usage.Limit != 104857600 || ev.Data.Pids.Limit != 77 || ev.Data.Pids.Current != 2 {
		t.Fatalf("events --stats after update: %+v", ev)
	}
	e.must("delete", "--force", id)
	// update changed limits create had not set: the cgroup went back into
	// the pool with every limit reset.
	e.checkIdleCgroups(map[string]string{"pids/pids.max": "max", "memory/memory.limit_in_bytes": ""})

	// Limits set at create only: delete resets them (and only them).
	b2 := bundle(t, "true")
	testutil.MutateSpec(t, b2, func(s *specs.Spec) {
		lim := int64(48 << 20)
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim}}
	})
	e.must("run", "--bundle", b2, newID())
	e.checkIdleCgroups(map[string]string{"memory/memory.limit_in_bytes": ""})
}

// checkIdleCgroups checks that every idle cgroup in the root's pool under
// the hierarchy root has files[ctrl/file] = value ("" = the parent's).
func (e *env) checkIdleCgroups(files map[string]string) {
	e.t.Helper()
	if cgroup.Mode() == cgroup.Unified {
		return // no idle cgroups on v2: cgroup2 cannot rename
	}
	sum := sha256.Sum256([]byte(os.Getenv("FRE_CGPOOL_DIR")))
	prefix := ".fre-pool-" + hex.EncodeToString(sum[:4]) + "-"
	for f, want := range files {
		if want == "" {
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", filepath.Dir(f), filepath.Base(f)))
			if err != nil {
				e.t.Fatal(err)
			}
			want = strings.TrimSpace(string(b))
		}
		idle, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", filepath.Dir(f), prefix+"*", filepath.Base(f)))
		if len(idle) == 0 {
			e.t.Fatalf("no idle cgroup %s%s* in the pool", filepath.Dir(f)+"/", prefix)
		}
		for _, p := range idle {
			b, err := os.ReadFile(p)
			if err != nil {
				e.t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != want {
				e.t.Errorf("idle %s = %q, want %q", p, got, want)
			}
		}
	}
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	logDir := t.TempDir()
	log := filepath.Join(logDir, "hooks")
	// Runtime-namespace hooks use the host's shell. createContainer runs
	// in the container's namespaces before pivot_root (host paths, the
	// container's pid namespace: pid 2 after the init), startContainer in
	// the container's root (its hostname is set by then).
	host := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `read -r s; echo "` + name + ` $(echo "$s" | grep -o '"status":"[a-z]*"')" >> ` + log}}
	}
	b := bundle(t, "true")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/log", Type: "bind", Source: logDir, Options: []string{"rbind", "rw"}})
		s.Hooks = &specs.Hooks{
			CreateRuntime:   []specs.Hook{host("createRuntime")},
			CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo createContainer pid-$$ >> " + log}}},
			StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo startContainer $(hostname) >> /log/hooks"}}},
			Poststart:       []specs.Hook{host("poststart")},
			Poststop:        []specs.Hook{host("poststop")},
		}
	})
	id := newID()
	e.must("create", "--bundle", b, id)
	e.must("start", id)
	e.waitStatus(id, specs.StateStopped)
	e.must("delete", id)
	got, _ := os.ReadFile(log)
	want := "createRuntime \"status\":\"creating\"\ncreateContainer pid-2\nstartContainer runc\npoststart \"status\":\"running\"\npoststop \"status\":\"stopped\"\n"
	if string(got) != want {
		t.Fatalf("hooks ran as\n%s\nwant\n%s", got, want)
	}

	// A failing createRuntime hook fails create and leaves nothing.
	b2 := bundle(t, "true")
	testutil.MutateSpec(t, b2, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	})
	id2 := newID()
	if _, errOut, code := e.run(nil, "create", "--bundle", b2, id2); code == 0 || !strings.Contains(errOut, "createRuntime hook") {
		t.Fatalf("failing hook: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.root, id2)); !os.IsNotExist(err) {
		t.Fatalf("state left after a failed hook: %v", err)
	}
	// A hook that runs too long is killed at its timeout.
	one := 1
	testutil.MutateSpec(t, b2, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}}
	})
	start := time.Now()
	if _, errOut, code := e.run(nil, "run", "--bundle", b2, newID()); code == 0 || !strings.Contains(errOut, "timed out") {
		t.Fatalf("hook timeout: exit %d %q", code, errOut)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("hook timeout not enforced")
	}
}

// Policy pool: each container gets its own pre-made netns (not the
// host's), and it is gone after delete.
func TestNetnsPoolPolicy(t *testing.T) {
	e := newEnv(t, "--netns-policy", "pool")
	host := hostNetns(t)
	b := bundle(t, "sh", "-c", "readlink /proc/self/ns/net; ip link show lo 2>/dev/null | grep -q UP && echo lo-up; sleep 60")
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 3; i++ {
		id := newID()
		e.must("create", "--bundle", b, id)
		ids = append(ids, id)
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", e.state(id).Pid))
		if err != nil {
			t.Fatal(err)
		}
		if ns == host || seen[ns] {
			t.Fatalf("container %d: netns %s (host %s, seen %v)", i, ns, host, seen)
		}
		seen[ns] = true
	}
	for _, id := range ids {
		e.must("delete", "--force", id)
	}
	// The pins are gone: no nsfs mount of ours is left.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, filepath.Join(os.Getenv("FRE_NETNS_POOL_DIR"), "used")) {
			t.Fatalf("pooled netns still pinned after delete: %s", l)
		}
	}
}

// run with process.terminal and no console socket: fre-runc holds the pty.
func TestRunForegroundTerminal(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "tty; echo hi; exit 4")
	testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Process.Terminal = true })
	out, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code != 4 || !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "hi") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestUserNamespace(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "id -u; cat /proc/self/uid_map | tr -s ' '; touch /tmp/x && stat -c %u /tmp/x; { [ -e /sys/fs/cgroup/memory ] || [ -e /sys/fs/cgroup/cgroup.procs ]; } && echo cgroup-ok; ls /sys/class >/dev/null && echo sysfs-ok")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	})
	// The mapped root must be able to reach the bundle, as with runc.
	os.Chmod(b, 0o755)
	os.Chmod(filepath.Dir(b), 0o711)
	id := newID()
	e.must("create", "--bundle", b, id)
	pid := e.state(id).Pid
	st, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Seen from the host the init runs as the mapped uid.
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 200000 {
		t.Errorf("init's uid on the host %d, want 200000", uid)
	}
	out := readAllAfterStart(t, e, id)
	if want := "0\n 0 200000 65536\n0\ncgroup-ok\nsysfs-ok\n"; out != want {
		t.Fatalf("got %q want %q", out, want)
	}
}

// readAllAfterStart starts a created container whose stdout is a file and
// returns what it wrote once it stopped.
func readAllAfterStart(t *testing.T, e *env, id string) string {
	t.Helper()
	e.must("start", id)
	e.waitStatus(id, specs.StateStopped)
	e.must("delete", id)
	return readAll(e.lastOut)
}

func TestPersonalityTimeNamespaceScheduler(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "uname -m; cut -d. -f1 /proc/uptime; grep policy /proc/self/sched | tr -d ' '")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 10 * 365 * 86400}}
		s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch}
		s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
	})
	out := strings.Fields(e.must("run", "--bundle", b, newID()))
	if len(out) != 3 || out[0] != "i686" || out[2] != "policy:3" {
		t.Fatalf("output %q", out)
	}
	if up, _ := strconv.Atoi(out[1]); up < 10*365*86400 {
		t.Fatalf("boottime offset not applied: uptime %d", up)
	}
	// Intel RDT is refused clearly.
	b2 := bundle(t, "true")
	testutil.MutateSpec(t, b2, func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} })
	if _, errOut, code := e.run(nil, "run", "--bundle", b2, newID()); code == 0 || !strings.Contains(errOut, "linux.intelRdt") {
		t.Fatalf("intelRdt: exit %d %q", code, errOut)
	}
}

// Sysctls are written before /proc/sys turns read-only; net.* ones need a
// netns of the container's own, so they are refused under policy host.
func TestSysctl(t *testing.T) {
	e := newEnv(t, "--netns-policy", "new")
	b := bundle(t, "sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1234"}
	})
	if out := e.must("run", "--bundle", b, newID()); out != "80\n1234\n" {
		t.Fatalf("sysctls %q", out)
	}
	host := newEnv(t, "--netns-policy", "host")
	if _, errOut, code := host.run(nil, "run", "--bundle", b, newID()); code == 0 || !strings.Contains(errOut, "net.ipv4.ip_unprivileged_port_start") {
		t.Fatalf("net sysctl under host policy: exit %d %q", code, errOut)
	}
}

// A capability the spec leaves out is really gone.
func TestDroppedCapability(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		caps []string
		want string
	}{
		{[]string{"CAP_KILL"}, "denied"},
		{[]string{"CAP_KILL", "CAP_SYS_ADMIN"}, "mounted"},
	} {
		b := bundle(t, "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo denied")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: tc.caps, Effective: tc.caps, Permitted: tc.caps}
			s.Root.Readonly = false
		})
		os.MkdirAll(filepath.Join(b, "rootfs", "mnt"), 0o755)
		if out := strings.TrimSpace(e.must("run", "--bundle", b, newID())); out != tc.want {
			t.Errorf("caps %v: %s, want %s", tc.caps, out, tc.want)
		}
	}
}

// no_new_privs: a setuid-root program run by uid 1000 keeps euid 1000.
func TestNoNewPrivsBlocksSetuid(t *testing.T) {
	e := newEnv(t)
	// A test guest has no compiler: hack/test-v2.sh builds it on the host.
	bin := filepath.Join(os.Getenv("FRE_PREBUILT_DIR"), "euid")
	if os.Getenv("FRE_PREBUILT_DIR") == "" {
		bin = filepath.Join(t.TempDir(), "euid")
		if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, "testdata/euid.c").CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v %s", err, out)
		}
	}
	for _, tc := range []struct {
		nnp  bool
		want string
	}{{false, "0"}, {true, "1000"}} {
		b := bundle(t, "/euid")
		copyFileT(t, bin, filepath.Join(b, "rootfs", "euid"), 0o755)
		if err := syscall.Chmod(filepath.Join(b, "rootfs", "euid"), 0o4755); err != nil {
			t.Fatal(err)
		}
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000}
			s.Process.NoNewPrivileges = tc.nnp
		})
		if out := strings.TrimSpace(e.must("run", "--bundle", b, newID())); out != tc.want {
			t.Errorf("noNewPrivileges %v: euid %s, want %s", tc.nnp, out, tc.want)
		}
	}
}

func TestRootfsPropagation(t *testing.T) {
	e := newEnv(t)
	for _, prop := range []string{"shared", "rprivate", "rslave"} {
		b := bundle(t, "sh", "-c", "head -1 /proc/self/mountinfo")
		testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.RootfsPropagation = prop })
		out := e.must("run", "--bundle", b, newID())
		if shared := strings.Contains(out, " shared:"); shared != (prop == "shared") {
			t.Errorf("rootfsPropagation %s: root mount %q", prop, out)
		}
	}
}

// seccompAgent listens at sock for one listener fd and answers each
// notification with answer(syscall number): an errno (0 with cont: let
// the call go on, SECCOMP_USER_NOTIF_FLAG_CONTINUE). The process state it
// got comes on the channel.
func seccompAgent(t *testing.T, sock string, answer func(nr int32) (errno int32, cont bool)) <-chan specs.ContainerProcessState {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan specs.ContainerProcessState, 1)
	go func() {
		defer close(got)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var st specs.ContainerProcessState
		if json.Unmarshal(buf[:n], &st) != nil {
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) == 0 {
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		got <- st
		fd := fds[0]
		defer unix.Close(fd)
		for {
			var req [80]byte // struct seccomp_notif: id, pid, flags, seccomp_data (nr first)
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
				return // the container is gone
			}
			errNo, cont := answer(int32(binary.NativeEndian.Uint32(req[16:20])))
			var resp [24]byte // struct seccomp_notif_resp: id, val, error, flags
			copy(resp[0:8], req[0:8])
			binary.NativeEndian.PutUint32(resp[16:20], uint32(-errNo))
			if cont {
				binary.NativeEndian.PutUint32(resp[20:24], 1) // SECCOMP_USER_NOTIF_FLAG_CONTINUE
			}
			unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp[0])))
		}
	}()
	return got
}

// SCMP_ACT_NOTIFY: the listener fd reaches the agent at listenerPath with
// the container's state, and the agent's answer is what the syscall gets.
func TestSeccompNotify(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	got := seccompAgent(t, sock, func(int32) (int32, bool) { return int32(unix.ENOSPC), false })
	b := bundle(t, "sh", "-c", "mkdir /tmp/x 2>&1; echo after-$?")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			ListenerPath:     sock,
			ListenerMetadata: "fre-test",
			Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
		}
	})
	id := newID()
	out, errOut, code := e.run(nil, "run", "--bundle", b, id)
	st, ok := <-got
	if !ok {
		t.Fatal("the agent got no listener")
	}
	if st.Metadata != "fre-test" || st.State.ID != id || len(st.Fds) != 1 || st.Fds[0] != "seccompFd" || st.Pid <= 0 {
		t.Errorf("process state sent to the agent: %+v", st)
	}
	if code != 0 || !strings.Contains(out, "No space left on device") || !strings.Contains(out, "after-1") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// The syscalls the runtime itself makes between the filter and the exec
// (close, read, openat, execve) may be notified too: the agent must have
// the listener before the init goes on, or the init waits for an answer
// no one can give (runc's "important syscalls" cases, which hung). With
// and without no_new_privs.
func TestSeccompNotifyImportantSyscalls(t *testing.T) {
	for _, nnp := range []bool{false, true} {
		t.Run(fmt.Sprintf("noNewPrivileges=%v", nnp), func(t *testing.T) {
			e := newEnv(t)
			b := bundle(t, "sleep", "60")
			run := func(args ...string) {
				t.Helper()
				sock := filepath.Join(t.TempDir(), "agent.sock")
				got := seccompAgent(t, sock, func(int32) (int32, bool) { return 0, true })
				testutil.MutateSpec(t, b, func(s *specs.Spec) {
					s.Process.NoNewPrivileges = nnp
					s.Linux.Seccomp = &specs.LinuxSeccomp{
						DefaultAction: specs.ActAllow,
						ListenerPath:  sock,
						Syscalls: []specs.LinuxSyscall{{Names: []string{"execve", "openat", "open", "read", "close"},
							Action: specs.ActNotify}},
					}
				})
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, freBin, append([]string{"--root", e.root}, args...)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v: %v (%v): %s", args, err, ctx.Err(), out)
				}
				if _, ok := <-got; !ok {
					t.Fatalf("%v: the agent got no listener", args)
				}
			}
			testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Process.Args = []string{"/bin/true"} })
			run("run", "--bundle", b, newID())
		})
	}
}

// exec --tty hands the process a pty through the console socket.
func TestExecTTY(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "60")
	id := newID()
	e.must("run", "--detach", "--bundle", b, id)
	sock := filepath.Join(t.TempDir(), "exec-console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	master := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			master <- nil
			return
		}
		defer c.Close()
		f, _ := c.File()
		m, err := recvFd(f)
		f.Close()
		if err != nil {
			m = nil
		}
		master <- m
	}()
	e.must("exec", "--tty", "--console-socket", sock, "--detach", id, "sh", "-c", "tty; echo exec-tty-ok")
	m := <-master
	if m == nil {
		t.Fatal("no pty master received")
	}
	defer m.Close()
	var out bytes.Buffer
	buf := make([]byte, 512)
	m.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), "exec-tty-ok") {
		n, err := m.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "exec-tty-ok") {
		t.Fatalf("exec tty output %q", out.String())
	}
	e.must("delete", "--force", id)
}

// events reports an OOM kill inside the container.
func TestEventsOOM(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", "sleep 1; tail /dev/zero; sleep 60")
	limit := int64(32 << 20)
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	})
	id := newID()
	e.must("run", "--detach", "--bundle", b, id)
	cmd := exec.Command(freBin, "--root", e.root, "events", "--interval", "100ms", id)
	out := tempFile(t)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readAll(out), `"type":"oom"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no oom event; events printed %q", readAll(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.must("delete", "--force", id)
	cmd.Wait()
}

// fre-runc pins itself to one CPU for its own start (pin.go); what it starts
// (the container's init, an exec'd process, a hook) gets every CPU it was
// given, as under runc.
func TestCPUAffinityNotInherited(t *testing.T) {
	own, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, l := range strings.Split(string(own), "\n") {
		if strings.HasPrefix(l, "Cpus_allowed_list:") {
			want = strings.TrimSpace(strings.TrimPrefix(l, "Cpus_allowed_list:"))
		}
	}
	if !strings.ContainsAny(want, "-,") {
		t.Skipf("one CPU (%q): nothing to pin", want)
	}
	e := newEnv(t)
	logDir := t.TempDir()
	hookLog := filepath.Join(logDir, "hook")
	const show = "sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status"
	b := bundle(t, "sh", "-c", show+"; sleep 60")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", show + " > " + hookLog}}}}
	})
	id := newID()
	out := e.runDetached(b, id)
	defer e.run(nil, "delete", "--force", id)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readAll(out), "\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := strings.TrimSpace(readAll(out)); got != want {
		t.Errorf("container init's CPUs %q, want %q", got, want)
	}
	if got := strings.TrimSpace(e.must("exec", id, "sh", "-c", show)); got != want {
		t.Errorf("exec'd process's CPUs %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(hookLog); strings.TrimSpace(string(got)) != want {
		t.Errorf("hook's CPUs %q, want %q", got, want)
	}
}

// A signal to a foreground run reaches the container's init (fre-runc
// waits in waitid with its signal goroutine behind it; see sysmon.Normal).
func TestRunForwardsSignals(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sh", "-c", `trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done`)
	id := newID()
	out := tempFile(t)
	cmd := exec.Command(e.bin, append(append([]string{}, e.args...), "run", "--bundle", b, id)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.run(nil, "delete", "--force", id)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readAll(out), "ready") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("container never ready: %q", readAll(out))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 {
			t.Fatalf("run after SIGTERM: %v (%s)", err, readAll(out))
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("SIGTERM to run was not forwarded")
	}
}

// run execs a static program directly, anything else through fre-dmz; the
// program sees the same thing either way: its arguments, no signal blocked
// or caught, only stdio open.
func TestDirectExecAndDmzAgree(t *testing.T) {
	e := newEnv(t)
	const probe = `grep -E '^Sig(Blk|Ign|Cgt)' /proc/self/status; ls /proc/self/fd | tr '\n' ' '`
	// sh (busybox, static): direct; the same through a script: fre-dmz.
	direct := bundle(t, "sh", "-c", probe)
	viaDmz := bundle(t, "/probe.sh")
	if err := os.WriteFile(filepath.Join(viaDmz, "rootfs", "probe.sh"), []byte("#!/bin/sh\n"+probe+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	outDirect, errOut, code := e.run(nil, "run", "--bundle", direct, newID())
	if code != 0 {
		t.Fatalf("direct: exit %d: %s", code, errOut)
	}
	outDmz, errOut, code := e.run(nil, "run", "--bundle", viaDmz, newID())
	if code != 0 {
		t.Fatalf("through fre-dmz: exit %d: %s", code, errOut)
	}
	if outDirect != outDmz {
		t.Fatalf("direct exec:\n%s\nthrough fre-dmz:\n%s", outDirect, outDmz)
	}
	if !strings.Contains(outDirect, "SigBlk:\t0000000000000000") || !strings.Contains(outDirect, "SigCgt:\t0000000000000000") {
		t.Fatalf("the program starts with signals blocked or caught:\n%s", outDirect)
	}
}
