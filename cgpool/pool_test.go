package cgpool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fre-runtime/fre/cgroup"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func needV1(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	if md := cgroup.Mode(); md != cgroup.Legacy && md != cgroup.Hybrid {
		t.Skipf("the pool needs cgroup v1 (v2 cannot rename); host is %v", md)
	}
}

func testParent() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "/fre-test-pool-" + hex.EncodeToString(b)
}

// openTest opens a pool over a fresh parent cgroup and removes the parent,
// everything below it and the pool's counters at cleanup.
func openTest(t testing.TB, size int) (*Pool, string) {
	t.Helper()
	needV1(t)
	parent := testParent()
	p, err := Open(Config{StateDir: t.TempDir(), Size: size, Enabled: true, Parents: []string{parent}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		top, err := cgroup.New(parent)
		if err != nil {
			t.Error(err)
			return
		}
		top.Kill(syscall.SIGKILL)
		top.WaitEmpty(5 * time.Second)
		if err := top.Destroy(); err != nil {
			t.Errorf("cleanup %s: %v", parent, err)
		}
	})
	return p, parent
}

// children lists every directory below parent, per hierarchy.
func children(t testing.TB, parent string) map[string][]string {
	t.Helper()
	m, err := cgroup.New(parent)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for c, d := range m.Paths() {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				out[c] = append(out[c], e.Name())
			}
		}
	}
	return out
}

func idleCount(t testing.TB, p *Pool, parent string) int {
	t.Helper()
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Parents {
		if ps.Parent == parent {
			return ps.Idle
		}
	}
	return 0
}

func read(t testing.TB, m cgroup.Manager, ctrl, file string) string {
	t.Helper()
	b, err := os.ReadFile(m.Paths()[ctrl] + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }

func TestClaimHasNameAndLimitsReleaseResets(t *testing.T) {
	p, parent := openTest(t, 2)
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	if n := idleCount(t, p, parent); n != 2 {
		t.Fatalf("idle after Fill = %d, want 2", n)
	}
	want := path.Join(parent, "ctr1")
	m, hit, err := p.Claim(want)
	if err != nil || !hit {
		t.Fatalf("Claim = %v, hit %v", err, hit)
	}
	if m.Path() != want {
		t.Fatalf("claimed %q, want %q", m.Path(), want)
	}
	for c, d := range m.Paths() {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() || path.Base(d) != "ctr1" {
			t.Errorf("%s: %s missing: %v", c, d, err)
		}
	}
	if n := idleCount(t, p, parent); n != 1 {
		t.Errorf("idle after a hit = %d, want 1", n)
	}
	major, minor := int64(1), int64(3)
	r := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(64 << 20), Reservation: i64(16 << 20)},
		CPU:     &specs.LinuxCPU{Shares: u64(256), Quota: i64(10000), Period: u64(50000), Cpus: "0"},
		Pids:    &specs.LinuxPids{Limit: i64(5)},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"}},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	if v := read(t, m, "memory", "memory.limit_in_bytes"); v != "33554432" {
		t.Errorf("memory limit = %s", v)
	}
	if v := read(t, m, "pids", "pids.max"); v != "5" {
		t.Errorf("pids.max = %s", v)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	if err := p.Release(m); err != nil {
		t.Fatal(err)
	}
	for _, d := range paths {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after Release", d)
		}
	}
	// Claim both idle cgroups: whichever was ours, all limits are default.
	parentM, _ := cgroup.New(parent)
	for i := 0; i < 2; i++ {
		m, hit, err := p.Claim(path.Join(parent, fmt.Sprint("again", i)))
		if err != nil || !hit {
			t.Fatalf("Claim %d = %v, hit %v", i, err, hit)
		}
		for _, f := range [][3]string{
			{"memory", "memory.limit_in_bytes", ""}, {"memory", "memory.memsw.limit_in_bytes", ""},
			{"memory", "memory.soft_limit_in_bytes", ""}, {"cpu", "cpu.shares", "1024"},
			{"cpu", "cpu.cfs_quota_us", "-1"}, {"cpu", "cpu.cfs_period_us", "100000"},
			{"cpuset", "cpuset.cpus", ""}, {"pids", "pids.max", "max"}, {"devices", "devices.list", ""},
			{"freezer", "freezer.state", "THAWED"},
		} {
			want := f[2]
			if want == "" { // inherited or unlimited: what the parent shows
				want = read(t, parentM, f[0], f[1])
			}
			if got := read(t, m, f[0], f[1]); got != want {
				t.Errorf("claimed %s after release: %s = %q, want %q", m.Path(), f[1], got, want)
			}
		}
	}
	st, _ := p.Status()
	if st.Hits != 3 || st.Misses != 0 || st.Release != 1 || st.Claimed != 2 {
		t.Errorf("Status = %+v", st)
	}
}

// ReleaseOnlyAt resets the controllers it is given and the freezer, and
// leaves the others (the runtime gives it what create set, when nothing
// else could write the cgroup).
func TestReleaseOnlyResetsTheNamedControllers(t *testing.T) {
	p, parent := openTest(t, 1)
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	m, hit, err := p.Claim(path.Join(parent, "ctr"))
	if err != nil || !hit {
		t.Fatalf("Claim = %v, hit %v", err, hit)
	}
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(32 << 20)}, Pids: &specs.LinuxPids{Limit: i64(7)}}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := p.ReleaseOnlyAt(m, cgroup.Controllers(&specs.LinuxResources{Memory: r.Memory}), -1); err != nil {
		t.Fatal(err)
	}
	m, hit, err = p.Claim(path.Join(parent, "again"))
	if err != nil || !hit {
		t.Fatalf("Claim = %v, hit %v", err, hit)
	}
	parentM, _ := cgroup.New(parent)
	if got, want := read(t, m, "memory", "memory.limit_in_bytes"), read(t, parentM, "memory", "memory.limit_in_bytes"); got != want {
		t.Errorf("memory.limit_in_bytes = %s, want %s (reset)", got, want)
	}
	if got := read(t, m, "freezer", "freezer.state"); got != "THAWED" {
		t.Errorf("freezer.state = %s, want THAWED", got)
	}
	if got := read(t, m, "pids", "pids.max"); got != "7" {
		t.Errorf("pids.max = %s, want 7 (not named, left alone)", got)
	}
	if err := p.Release(m); err != nil { // full: back to default for the next test
		t.Fatal(err)
	}
}

func TestReleaseKillsLeftProcess(t *testing.T) {
	p, parent := openTest(t, 1)
	m, hit, err := p.Claim(path.Join(parent, "ctr"))
	if err != nil || hit {
		t.Fatalf("Claim on an empty pool = %v, hit %v (want a miss)", err, hit)
	}
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	sub, _ := cgroup.New(path.Join(parent, "ctr", "nested"))
	if err := sub.Create(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(m); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("process left in a released cgroup ended with %v, want SIGKILL", err)
	}
	if n := idleCount(t, p, parent); n != 1 {
		t.Errorf("idle after release = %d, want 1", n)
	}
	st, _ := p.Status()
	if st.Misses != 1 || st.Release != 1 {
		t.Errorf("Status = %+v", st)
	}
}

// A cgroup whose container was OOM-killed is not pooled: the kernel's
// count of OOM kills cannot be reset, and the next container's OOM watch
// would report the old kill.
func TestOOMKilledCgroupIsNotPooled(t *testing.T) {
	p, parent := openTest(t, 1)
	m, _, err := p.Claim(path.Join(parent, "ctr"))
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(16 << 20)
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}); err != nil {
		t.Fatal(err)
	}
	// The shell joins the cgroup before it becomes tail, which keeps
	// reading /dev/zero for a newline that never comes.
	cmd := exec.Command("sh", "-c", "echo $$ > "+m.Paths()["memory"]+"/tasks && exec tail /dev/zero")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("tail /dev/zero under a 16 MiB limit still runs after 30 s")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("tail under a 16 MiB limit ended with %v, want SIGKILL", err)
	}
	if n, err := m.OOMKillCount(); err != nil || n == 0 {
		t.Fatalf("OOMKillCount = %d, %v; want > 0", n, err)
	}
	if err := p.Release(m); err != nil {
		t.Fatal(err)
	}
	if n := idleCount(t, p, parent); n != 0 {
		t.Errorf("idle after releasing an OOM-killed cgroup = %d, want 0", n)
	}
	if st, _ := p.Status(); st.Removed != 1 || st.Release != 0 {
		t.Errorf("Status = %+v, want it removed", st)
	}
	if kids := children(t, parent); len(kids) > 0 {
		t.Errorf("left under %s: %v", parent, kids)
	}
}

func TestThousandCycles(t *testing.T) {
	p, parent := openTest(t, 4)
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i := 0; i < 1000; i++ {
		m, hit, err := p.Claim(path.Join(parent, "c"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if hit {
			hits++
		}
		if i%3 == 0 { // sometimes hold two at once
			m2, _, err := p.Claim(path.Join(parent, "x"+strconv.Itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Release(m2); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Release(m); err != nil {
			t.Fatal(err)
		}
	}
	if hits != 1000 {
		t.Errorf("hits = %d, want 1000", hits)
	}
	kids := children(t, parent)
	for c, names := range kids {
		if len(names) != 4 {
			t.Errorf("%s: %d cgroups under the parent, want the pool's 4: %v", c, len(names), names)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, idlePrefix) {
				t.Errorf("%s: stray cgroup %s", c, n)
			}
		}
	}
}

// The helper process for TestConcurrentClaimsAcrossProcesses: claims the
// cgroups named in FRE_CGPOOL_CLAIM once FRE_CGPOOL_GO exists, prints
// "hit"/"miss" per claim.
func TestMain(m *testing.M) {
	if names := os.Getenv("FRE_CGPOOL_CLAIM"); names != "" {
		os.Exit(claimHelper(names))
	}
	// The tests' pools record themselves in a registry of their own, not
	// the host's.
	reg, err := os.MkdirTemp("", "fre-cgpool-registry-")
	if err != nil {
		panic(err)
	}
	os.Setenv(RegistryEnv, reg)
	code := m.Run()
	os.RemoveAll(reg)
	os.Exit(code)
}

func claimHelper(names string) int {
	p, err := Open(Config{StateDir: os.Getenv("FRE_CGPOOL_STATE"), Enabled: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gofile := os.Getenv("FRE_CGPOOL_GO")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		if _, err := os.Stat(gofile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "no go file")
			return 1
		}
	}
	for _, n := range strings.Split(names, ",") {
		_, hit, err := p.Claim(n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(map[bool]string{true: "hit", false: "miss"}[hit])
	}
	return 0
}

func TestConcurrentClaimsAcrossProcesses(t *testing.T) {
	const idle, procs, each = 12, 16, 2
	p, parent := openTest(t, idle)
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	// Mark each idle cgroup in two hierarchies (pids and cpu) with the same
	// number: a claimed cgroup whose marks differ was assembled from two
	// idle ones, two with the same mark shared one.
	pm, _ := cgroup.New(parent)
	names, err := idleNames(p.idle, pm.Paths()["blkio"])
	if err != nil || len(names) != idle {
		t.Fatalf("idle = %v, %v", names, err)
	}
	for i, n := range names {
		im, _ := cgroup.New(path.Join(parent, n))
		mark := strconv.Itoa(100 + i)
		if err := os.WriteFile(im.Paths()["pids"]+"/pids.max", []byte(mark), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(im.Paths()["cpu"]+"/cpu.shares", []byte(mark), 0); err != nil {
			t.Fatal(err)
		}
	}
	gofile := t.TempDir() + "/go"
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < procs; i++ {
		var ns []string
		for j := 0; j < each; j++ {
			ns = append(ns, path.Join(parent, fmt.Sprintf("p%d-%d", i, j)))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FRE_CGPOOL_CLAIM="+strings.Join(ns, ","), "FRE_CGPOOL_STATE="+p.cfg.StateDir, "FRE_CGPOOL_GO="+gofile)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	if err := os.WriteFile(gofile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
		hits += strings.Count(outs[i].String(), "hit")
	}
	if hits != idle {
		t.Errorf("hits = %d, want %d (every idle cgroup claimed exactly once)", hits, idle)
	}
	seen := map[string]string{}
	for i := 0; i < procs; i++ {
		for j := 0; j < each; j++ {
			m, _ := cgroup.New(path.Join(parent, fmt.Sprintf("p%d-%d", i, j)))
			for _, d := range m.Paths() {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("claimed cgroup missing: %v", err)
				}
			}
			pm, cm := read(t, m, "pids", "pids.max"), read(t, m, "cpu", "cpu.shares")
			if pm == "max" && cm == "1024" {
				continue // a miss: created fresh
			}
			if pm != cm {
				t.Errorf("%s: pids mark %s, cpu mark %s: assembled from two idle cgroups", m.Path(), pm, cm)
			}
			if other, dup := seen[pm]; dup {
				t.Errorf("%s and %s share idle cgroup %s", other, m.Path(), pm)
			}
			seen[pm] = m.Path()
		}
	}
	if len(seen) != idle {
		t.Errorf("%d distinct idle cgroups claimed, want %d", len(seen), idle)
	}
	if n := idleCount(t, p, parent); n != 0 {
		t.Errorf("idle left = %d", n)
	}
	st, _ := p.Status()
	if st.Hits != idle || st.Misses != procs*each-idle {
		t.Errorf("Status hits %d misses %d, want %d %d", st.Hits, st.Misses, idle, procs*each-idle)
	}
}

func TestDisabledPool(t *testing.T) {
	needV1(t)
	parent := testParent()
	p, err := Open(Config{StateDir: t.TempDir(), Enabled: false})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Fill(parent, 1); !errors.Is(err, ErrDisabled) {
		t.Errorf("Fill on a disabled pool = %v", err)
	}
	m, hit, err := p.Claim(path.Join(parent, "c"))
	if err != nil || hit {
		t.Fatalf("Claim = %v, %v", err, hit)
	}
	if err := p.Release(m); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Paths() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left by a disabled pool", d)
		}
	}
	top, _ := cgroup.New(parent)
	top.Destroy()
}

func TestFillSweepsAndDrain(t *testing.T) {
	p, parent := openTest(t, 3)
	// A crash left a staging cgroup everywhere and an idle name missing
	// from the first hierarchy.
	stale, _ := cgroup.New(path.Join(parent, p.staging+"dead"))
	if err := stale.Create(); err != nil {
		t.Fatal(err)
	}
	orphan, _ := cgroup.New(path.Join(parent, p.idle+"orphan"))
	if err := orphan.Create(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(orphan.Paths()["blkio"]); err != nil {
		t.Fatal(err)
	}
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	for c, names := range children(t, parent) {
		if len(names) != 3 {
			t.Errorf("%s after Fill: %v, want 3 idle", c, names)
		}
		for _, n := range names {
			if n == p.idle+"orphan" || n == p.staging+"dead" {
				t.Errorf("%s: %s not swept", c, n)
			}
		}
	}
	if err := p.Drain(parent); err != nil {
		t.Fatal(err)
	}
	for c, names := range children(t, parent) {
		if len(names) != 0 {
			t.Errorf("%s after Drain: %v", c, names)
		}
	}
}

// A parent that is neither configured nor filled keeps no idle cgroups:
// whoever made it (kubelet, for a pod) must be able to remove it.
func TestUnpooledParentIsLeftRemovable(t *testing.T) {
	needV1(t)
	parent := testParent()
	p, err := Open(Config{StateDir: t.TempDir(), Size: 4, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m, _, err := p.Claim(path.Join(parent, "ctr"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Release(m); err != nil {
		t.Fatal(err)
	}
	top, _ := cgroup.New(parent)
	if err := top.Destroy(); err != nil {
		t.Fatalf("parent not removable after release: %v", err)
	}
	for _, d := range top.Paths() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s left: %v", d, err)
		}
	}
}

// Claims and releases at once, with releases sharing the parent's lock
// (releaseShared): no cgroup is ever held by two claimers, each released
// one goes back whole (or is removed), and the pool ends at its size with
// nothing stray and every idle cgroup reset.
func TestConcurrentClaimsAndReleases(t *testing.T) {
	const size, workers, cycles = 6, 12, 25
	p, parent := openTest(t, size)
	if err := p.Fill(parent, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < cycles; i++ {
				m, slot, err := p.ClaimSlot(path.Join(parent, fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					errs <- err
					return
				}
				// A mark only this claimer writes: read back changed, the
				// cgroup was someone else's too.
				mark := strconv.Itoa(1000 + w*cycles + i)
				f := m.Paths()["pids"] + "/pids.max"
				if err := os.WriteFile(f, []byte(mark), 0); err != nil {
					errs <- err
					return
				}
				runtime.Gosched()
				if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != mark {
					errs <- fmt.Errorf("worker %d: cgroup %s shared: pids.max %q, wrote %s", w, m.Path(), b, mark)
					return
				}
				if err := p.ReleaseAt(m, slot); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	kids := children(t, parent)
	var first []string
	for c, names := range kids {
		sort.Strings(names)
		if first == nil {
			first = names
		} else if strings.Join(names, " ") != strings.Join(first, " ") {
			t.Errorf("%s holds %v, another hierarchy %v: a slot is not whole", c, names, first)
		}
		if len(names) > size {
			t.Errorf("%s: %d idle cgroups, more than the pool's %d", c, len(names), size)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, idlePrefix) {
				t.Errorf("%s: stray cgroup %s", c, n)
			}
		}
	}
	pm, _ := cgroup.New(parent)
	for _, n := range first {
		if b, _ := os.ReadFile(pm.Paths()["pids"] + "/" + n + "/pids.max"); strings.TrimSpace(string(b)) != "max" {
			t.Errorf("idle %s: pids.max %q, want max (reset)", n, b)
		}
	}
}
