package devfilter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that tries device operations
// (see childMain) instead of running tests.
const childEnv = "FRE_DEVFILTER_CHILD"

func TestMain(m *testing.M) {
	if ops := os.Getenv(childEnv); ops != "" {
		childMain(strings.Fields(ops))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childMain does each "op:path" (op r, w, rw: open; m<major>.<minor>:
// mknod a char device) and prints "op:path=ok" or the errno's name.
func childMain(ops []string) {
	for _, o := range ops {
		op, path, _ := strings.Cut(o, ":")
		var err error
		switch op {
		case "r", "w", "rw":
			flag := map[string]int{"r": unix.O_RDONLY, "w": unix.O_WRONLY, "rw": unix.O_RDWR}[op]
			var fd int
			if fd, err = unix.Open(path, flag|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		default:
			var maj, min uint32
			fmt.Sscanf(op, "m%d.%d", &maj, &min)
			err = unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(maj, min)))
		}
		res := "ok"
		if err != nil {
			res = unix.ErrnoName(err.(unix.Errno))
		}
		fmt.Printf("%s=%s\n", o, res)
	}
}

// cgroup2 is the cgroup2 mount: /sys/fs/cgroup on a v2 host, the empty
// /sys/fs/cgroup/unified of a hybrid one (device programs work there
// too). Tests skip without root or without one.
func cgroup2(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (bpf, mknod, cgroups)")
	}
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	t.Skip("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	return ""
}

// testCgroup makes a cgroup of its own for t, removed (by its path) at the
// end, and opens it.
func testCgroup(t testing.TB) (dir string, fd int) {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	dir = filepath.Join(cgroup2(t), fmt.Sprintf("fre-devfilter-test-%d-%s", os.Getpid(), name))
	if err := unix.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(dir); err != nil {
			t.Errorf("rmdir %s: %v", dir, err)
		}
	})
	fd, err := openCgroup(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return dir, fd
}

// inCgroup runs childMain's ops in a process born in the cgroup cgfd
// (CLONE_INTO_CGROUP) and returns each op's result.
func inCgroup(t *testing.T, cgfd int, ops ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(ops, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	res := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		res[k] = v
	}
	t.Logf("child: %v", res)
	return res
}

func expect(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}
}

// progs lists the device programs on cg: FRE's ids and the others' count.
func progs(t testing.TB, cg int) (fre []uint32, others int) {
	t.Helper()
	ids, err := query(cg)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	for _, id := range ids {
		fd, name, err := progByID(id)
		if err != nil {
			t.Fatalf("program %d: %v", id, err)
		}
		unix.Close(fd)
		if name == ProgName {
			fre = append(fre, id)
		} else {
			others++
		}
	}
	return fre, others
}

func TestApplyReal(t *testing.T) {
	dir, cg := testCgroup(t)
	nodes := t.TempDir()
	null, zero := filepath.Join(nodes, "null"), filepath.Join(nodes, "zero")
	for _, n := range []struct {
		path string
		min  uint32
	}{{null, 3}, {zero, 5}} {
		if err := unix.Mknod(n.path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, n.min))); err != nil {
			t.Fatalf("mknod %s: %v", n.path, err)
		}
	}

	// Someone else's program on the same cgroup, allowing everything:
	// FRE's changes leave it be.
	other, err := loadNamed(mustCompile(t, []specs.LinuxDeviceCgroup{dev(true, "a", nil, nil, "rwm")}), "not_fre")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	if err := attach(cg, other, -1); err != nil {
		t.Fatalf("attach another program: %v", err)
	}
	defer func() {
		if err := detach(cg, other); err != nil {
			t.Errorf("detach the other program: %v", err)
		}
	}()

	// New cgroup: c 1:3 through a wildcard, c 1:5 denied.
	rules := []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", i64(1), nil, "rwm"), dev(false, "c", i64(1), i64(5), "rwm")}
	if err := ApplyNew(dir, rules); err != nil {
		t.Fatal(err)
	}
	first, others := progs(t, cg)
	if len(first) != 1 || others != 1 {
		t.Fatalf("after ApplyNew: FRE programs %v, others %d; want 1 and 1", first, others)
	}
	expect(t, inCgroup(t, cg, "r:"+null, "rw:"+null, "r:"+zero, "w:"+zero, "m1.3:"+nodes+"/null2", "m1.5:"+nodes+"/zero2"), map[string]string{
		"r:" + null: "ok", "rw:" + null: "ok", "r:" + zero: "EPERM", "w:" + zero: "EPERM",
		"m1.3:" + nodes + "/null2": "ok", "m1.5:" + nodes + "/zero2": "EPERM",
	})

	// Update: only c 1:5, read and write. The program is replaced.
	if err := Apply(dir, []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(5), "rw")}); err != nil {
		t.Fatal(err)
	}
	second, others := progs(t, cg)
	if len(second) != 1 || second[0] == first[0] || others != 1 {
		t.Fatalf("after Apply: FRE programs %v (before %v), others %d; want one new and 1", second, first, others)
	}
	expect(t, inCgroup(t, cg, "r:"+null, "rw:"+zero, "m1.5:"+nodes+"/zero3"), map[string]string{
		"r:" + null: "EPERM", "rw:" + zero: "ok", "m1.5:" + nodes + "/zero3": "EPERM",
	})

	// Everything but writing c 1:5, which a read-write open asks too.
	if err := Apply(dir, []specs.LinuxDeviceCgroup{dev(true, "a", nil, nil, "rwm"), dev(false, "c", i64(1), i64(5), "w")}); err != nil {
		t.Fatal(err)
	}
	expect(t, inCgroup(t, cg, "rw:"+null, "r:"+zero, "rw:"+zero, "w:"+zero), map[string]string{
		"rw:" + null: "ok", "r:" + zero: "ok", "rw:" + zero: "EPERM", "w:" + zero: "EPERM",
	})

	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if fre, others := progs(t, cg); len(fre) != 0 || others != 1 {
		t.Fatalf("after Remove: FRE programs %v, others %d; want none and 1", fre, others)
	}
	expect(t, inCgroup(t, cg, "rw:"+null, "rw:"+zero), map[string]string{"rw:" + null: "ok", "rw:" + zero: "ok"})
	if err := Remove(dir); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestApplyAtomic: while updates replace FRE's program, a watcher never
// sees the cgroup with no program or two.
func TestApplyAtomic(t *testing.T) {
	dir, cg := testCgroup(t)
	if err := ApplyNew(dir, runcDefault); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	seen := make(chan error, 1)
	go func() {
		var n int
		for n = 0; !done.Load(); n++ {
			ids, err := query(cg)
			if err == nil && len(ids) != 1 {
				err = fmt.Errorf("%d programs attached", len(ids))
			}
			if err != nil {
				seen <- err
				return
			}
		}
		t.Logf("%d queries during the updates", n)
		seen <- nil
	}()
	for i := 0; i < 200; i++ {
		if err := Apply(dir, runcDefault[:1+i%len(runcDefault)]); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	if err := <-seen; err != nil {
		t.Errorf("during updates: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
}

// TestSwapFallback: without BPF_F_REPLACE the new program is attached
// before the old one goes, and one is left.
func TestSwapFallback(t *testing.T) {
	dir, cg := testCgroup(t)
	if err := ApplyNew(dir, runcDefault); err != nil {
		t.Fatal(err)
	}
	before, _ := progs(t, cg)
	prog, err := Load(mustCompile(t, runcDefault[:3]))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(prog)
	if err := swap(dir, cg, prog, false); err != nil {
		t.Fatal(err)
	}
	after, others := progs(t, cg)
	if len(after) != 1 || after[0] == before[0] || others != 0 {
		t.Errorf("after the fallback: %v (before %v), others %d", after, before, others)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
}

func TestApplyErrors(t *testing.T) {
	cgroup2(t)
	missing := filepath.Join(t.TempDir(), "gone")
	if err := Remove(missing); err != nil {
		t.Errorf("Remove of a missing cgroup: %v", err)
	}
	var pe *PathError
	if err := ApplyNew(missing, nil); !errors.As(err, &pe) || pe.Op != "open" || !errors.Is(err, unix.ENOENT) {
		t.Errorf("ApplyNew on a missing cgroup: %v", err)
	}
	if err := Apply(t.TempDir(), nil); !errors.As(err, &pe) || pe.Op != "query" {
		t.Errorf("Apply on a plain directory: %v, want a query error", err)
	}
	if err := ApplyNew(t.TempDir(), nil); !errors.As(err, &pe) || pe.Op != "attach" {
		t.Errorf("ApplyNew on a plain directory: %v, want an attach error", err)
	}
	if err := Apply(t.TempDir(), []specs.LinuxDeviceCgroup{dev(true, "x", nil, nil, "")}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("Apply of a bad rule: %v", err)
	}
	// R0 is never set: the verifier says so.
	_, err := Load([]Insn{{Code: opExit}})
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(le.Log, "R0") {
		t.Errorf("Load of a bad program: %v, want a LoadError with the verifier's log", err)
	}
}

// TestVerifierCost: the kernel's verifier goes through each instruction
// once or twice (its states prune), so a load costs in proportion to the
// rules, not their square.
func TestVerifierCost(t *testing.T) {
	cgroup2(t)
	many := []specs.LinuxDeviceCgroup{denyAll}
	for i := int64(0); i < 300; i++ {
		many = append(many, dev(i%3 != 0, []string{"b", "c", "a"}[i%3], i64(i%7), i64(i), []string{"rwm", "rw", "m"}[i%3/2]))
	}
	fre := append([]specs.LinuxDeviceCgroup{denyAll, dev(true, "c", nil, nil, "m"), dev(true, "b", nil, nil, "m")}, runcDefault[1:]...)
	for _, c := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
	}{{"runc default", runcDefault}, {"FRE default", fre}, {"300 rules", many}} {
		insns := mustCompile(t, c.rules)
		log := make([]byte, 1<<16)
		fd, err := load(encode(insns), len(insns), ProgName, log, 4) // BPF_LOG_STATS
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		unix.Close(fd)
		var processed int
		if i := strings.Index(string(log), "processed "); i >= 0 {
			fmt.Sscanf(string(log[i:]), "processed %d", &processed)
		}
		t.Logf("%s: %d instructions, verifier processed %d", c.name, len(insns), processed)
		if processed == 0 || processed > 3*len(insns) {
			t.Errorf("%s: the verifier processed %d instructions of %d\n%s", c.name, processed, len(insns), bytes.TrimRight(log, "\x00"))
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	cgroup2(b)
	insns, err := Compile(runcDefault)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		fd, err := Load(insns)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}

// BenchmarkApply: new is the start path (ApplyNew on a cgroup made
// outside the timer), update the replacement of FRE's program.
func BenchmarkApply(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		base := filepath.Join(cgroup2(b), fmt.Sprintf("fre-devfilter-bench-%d", os.Getpid()))
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			dir := fmt.Sprintf("%s-%d", base, i)
			if err := unix.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err := ApplyNew(dir, runcDefault)
			b.StopTimer()
			if rerr := unix.Rmdir(dir); rerr != nil {
				b.Errorf("rmdir %s: %v", dir, rerr)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("update", func(b *testing.B) {
		dir, _ := testCgroup(b)
		if err := ApplyNew(dir, runcDefault); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := Apply(dir, runcDefault); err != nil {
				b.Fatal(err)
			}
		}
		if err := Remove(dir); err != nil {
			b.Fatal(err)
		}
	})
}
