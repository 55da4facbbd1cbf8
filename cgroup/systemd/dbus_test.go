package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

// requireUnified: the file checks read cgroup v2's files.
func requireUnified(t *testing.T) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("/sys/fs/cgroup is not cgroup v2")
	}
}

func connect(t *testing.T) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var seq atomic.Int32

// testPath is a unit of this test process's own in slice.
func testPath(t *testing.T, slice string) Path {
	t.Helper()
	p, err := ParseCgroupsPath(fmt.Sprintf("%s:fre-test:%d-%d", slice, os.Getpid(), seq.Add(1)), "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startScope starts the scope p with r's properties around a sleeper,
// stopped at the end of the test: the sleeper, and the properties.
func startScope(t *testing.T, c *Conn, p Path, r *specs.LinuxResources) (*exec.Cmd, []sd.Property) {
	t.Helper()
	cmd := testutil.Sleeper(t)
	props, err := Properties(r, true, c.Version())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartScope(ctxT(t), p, cmd.Process.Pid, props); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, c, p.Unit)
	return cmd, props
}

// stopAtCleanup stops unit at the end of the test (a test that failed
// half-way leaves nothing).
func stopAtCleanup(t *testing.T, c *Conn, unit string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := c.Stop(ctx, unit); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// poll calls f until it is true or the deadline passes.
func poll(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	if !testutil.Poll(d, f) {
		t.Fatalf("after %v: %s", d, what)
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSpace(string(b))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestScope(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	requireUnified(t)
	c := connect(t)
	t.Logf("systemd version %d", c.Version())
	if c.Version() < 244 {
		t.Fatalf("Version() = %d, want a systemd >= 244 here", c.Version())
	}
	p := testPath(t, "system.slice")
	shares := uint64(2048)
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(64 << 20)},
		Pids:   &specs.LinuxPids{Limit: i64(50)},
		CPU:    &specs.LinuxCPU{Shares: &shares, Cpus: "0"},
	}
	cmd, props := startScope(t, c, p, r)
	ctx := ctxT(t)

	weight := strconv.FormatUint(cgroup.SharesToWeight(shares), 10)
	got := testutil.SystemctlShow(t, p.Unit, "ActiveState", "ControlGroup", "Slice", "Delegate", "MemoryMax", "TasksMax", "CPUWeight", "AllowedCPUs", "DefaultDependencies", "Description")
	want := map[string]string{
		"ActiveState": "active", "ControlGroup": p.Dir, "Slice": "system.slice", "Delegate": "yes",
		"MemoryMax": "67108864", "TasksMax": "50", "CPUWeight": weight, "AllowedCPUs": "0", "DefaultDependencies": "no",
		"Description": Description,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("systemctl show %s: %s=%q, want %q", p.Unit, k, got[k], v)
		}
	}
	dir := "/sys/fs/cgroup" + p.Dir
	for f, v := range map[string]string{"memory.max": "67108864", "pids.max": "50", "cpu.weight": weight, "cpuset.cpus": "0"} {
		if g := readFile(dir + "/" + f); g != v {
			t.Errorf("%s/%s = %q, want %q", dir, f, g, v)
		}
	}
	if g, w := readFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)), "0::"+p.Dir; g != w {
		t.Errorf("the pid's cgroup: %q, want %q", g, w)
	}

	// An update: memory.max follows the unit's property.
	if err := c.SetProperties(ctx, p.Unit, []sd.Property{prop("MemoryMax", uint64(128<<20))}); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "memory.max not 134217728 after SetProperties", func() bool {
		return readFile(dir+"/memory.max") == "134217728"
	})
	if g := testutil.SystemctlShow(t, p.Unit, "MemoryMax")["MemoryMax"]; g != "134217728" {
		t.Errorf("MemoryMax after SetProperties: %q", g)
	}

	// The same unit again: ErrUnitExists, and the first is untouched.
	other := testutil.Sleeper(t)
	err := c.StartScope(ctx, p, other.Process.Pid, props)
	if !errors.Is(err, ErrUnitExists) {
		t.Errorf("second StartScope of %s: %v, want ErrUnitExists", p.Unit, err)
	}
	if g := testutil.SystemctlShow(t, p.Unit, "ActiveState")["ActiveState"]; g != "active" {
		t.Errorf("%s after the second StartScope: %s", p.Unit, g)
	}
	if g := readFile(fmt.Sprintf("/proc/%d/cgroup", other.Process.Pid)); g == "0::"+p.Dir {
		t.Errorf("the second StartScope's pid went into %s", p.Dir)
	}

	if err := c.Stop(ctx, p.Unit); err != nil {
		t.Fatal(err)
	}
	if g := testutil.SystemctlShow(t, p.Unit, "LoadState")["LoadState"]; g != "not-found" {
		t.Errorf("%s after Stop: LoadState %q", p.Unit, g)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Stop: %v", dir, err)
	}
	// Stopping what is gone is not an error.
	if err := c.Stop(ctx, p.Unit); err != nil {
		t.Errorf("Stop of a stopped unit: %v", err)
	}
}

// TestStopScope: StopScope returns with the stop job (the unit, stopped,
// is collected after), the cgroup goes, and a start of the same name at
// once waits for the collection instead of failing "exists". CollectMode
// is on the unit.
func TestStopScope(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	requireUnified(t)
	c := connect(t)
	ctx := ctxT(t)
	p := testPath(t, "system.slice")
	props, err := Properties(&specs.LinuxResources{}, true, c.Version())
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		cmd := testutil.Sleeper(t)
		if err := c.StartScope(ctx, p, cmd.Process.Pid, props); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		stopAtCleanup(t, c, p.Unit)
		if round == 0 {
			if g := testutil.SystemctlShow(t, p.Unit, "CollectMode")["CollectMode"]; g != "inactive-or-failed" {
				t.Errorf("CollectMode %q", g)
			}
		}
		if err := c.StopScope(ctx, p.Unit); err != nil {
			t.Fatalf("round %d: StopScope: %v", round, err)
		}
		cmd.Wait() // killed by the stop
		dir := "/sys/fs/cgroup" + p.Dir
		poll(t, 10*time.Second, dir+" still there after StopScope", func() bool {
			_, err := os.Stat(dir)
			return errors.Is(err, os.ErrNotExist)
		})
	}
	poll(t, 30*time.Second, p.Unit+" never collected after StopScope", func() bool {
		return testutil.SystemctlShow(t, p.Unit, "LoadState")["LoadState"] == "not-found"
	})
	// Stopping what is gone is not an error.
	if err := c.StopScope(ctx, p.Unit); err != nil {
		t.Errorf("StopScope of a gone unit: %v", err)
	}
}

// TestScopeFailed: a start systemd refuses is an error naming the unit,
// and leaves no unit behind.
func TestScopeFailed(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	c := connect(t)
	p := testPath(t, "system.slice")
	// A pid that does not exist: systemd refuses the scope.
	err := c.StartScope(ctxT(t), p, 1<<22+12345, nil)
	if err == nil {
		stopAtCleanup(t, c, p.Unit)
		t.Fatal("StartScope with no such pid: no error")
	}
	t.Logf("StartScope with no such pid: %v", err)
	if !strings.Contains(err.Error(), p.Unit) {
		t.Errorf("error %q does not name %s", err, p.Unit)
	}
	if g := testutil.SystemctlShow(t, p.Unit, "LoadState")["LoadState"]; g != "not-found" {
		t.Errorf("%s after a failed start: LoadState %q", p.Unit, g)
	}
}

// TestNestedSlice: kubelet's layout; systemd makes the slices it needs.
func TestNestedSlice(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	requireUnified(t)
	c := connect(t)
	pod := fmt.Sprintf("kubepods-besteffort-podfretest%d.slice", os.Getpid())
	p := testPath(t, pod)
	slices := []string{pod, "kubepods-besteffort.slice", "kubepods.slice"} // deepest first
	var ours []string
	for _, s := range slices {
		if testutil.SystemctlShow(t, s, "ActiveState")["ActiveState"] != "active" {
			ours = append(ours, s)
		}
	}
	t.Cleanup(func() {
		for _, s := range ours {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if err := c.Stop(ctx, s); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			cancel()
		}
	})
	cmd, _ := startScope(t, c, p, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}})
	ctx := ctxT(t)
	dir := "/sys/fs/cgroup" + p.Dir
	if !strings.HasPrefix(p.Dir, "/kubepods.slice/kubepods-besteffort.slice/"+pod+"/") {
		t.Fatalf("Dir %s", p.Dir)
	}
	if g := testutil.SystemctlShow(t, p.Unit, "ControlGroup")["ControlGroup"]; g != p.Dir {
		t.Errorf("ControlGroup %q, want %q", g, p.Dir)
	}
	if g, w := readFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)), "0::"+p.Dir; g != w {
		t.Errorf("the pid's cgroup: %q, want %q", g, w)
	}
	if g := readFile(dir + "/pids.max"); g != "20" {
		t.Errorf("%s/pids.max = %q", dir, g)
	}
	if err := c.Stop(ctx, p.Unit); err != nil {
		t.Fatal(err)
	}
	for _, s := range ours {
		if err := c.Stop(ctx, s); err != nil {
			t.Fatal(err)
		}
		sdir, _ := ExpandSlice(s)
		// systemd makes a slice of any name it is asked about, so
		// systemctl show loads it again: inactive, not not-found.
		if g := testutil.SystemctlShow(t, s, "ActiveState")["ActiveState"]; g != "inactive" {
			t.Errorf("%s after Stop: ActiveState %q", s, g)
		}
		if _, err := os.Stat("/sys/fs/cgroup" + sdir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/sys/fs/cgroup%s after Stop: %v", sdir, err)
		}
	}
	ours = nil
}

// TestConnectPrivate: without a system bus, root reaches systemd's own
// socket (go-systemd's NewWithContext does the same); jobs' signals come
// there unasked. Where neither is there, the error says so.
func TestConnectPrivate(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/fre-test-bus")
	ctx := ctxT(t)
	c, err := Connect(ctx)
	if _, serr := os.Stat(privateSocket); serr != nil || os.Geteuid() != 0 {
		if err == nil {
			c.Close()
			t.Fatal("Connect with no bus: no error")
		}
		t.Logf("Connect with no bus: %v", err)
		if !strings.Contains(err.Error(), "systemd") || !strings.Contains(err.Error(), "/nonexistent/fre-test-bus") {
			t.Errorf("error %q: want it to say systemd and the bus address", err)
		}
		return
	}
	testutil.RequireSystemdAnyCgroup(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // after stopAtCleanup's Stop
	if c.Version() < 0 {
		t.Errorf("Version() = %d over the private socket", c.Version())
	}
	p := testPath(t, "system.slice")
	cmd := testutil.Sleeper(t)
	if err := c.StartScope(ctx, p, cmd.Process.Pid, nil); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, c, p.Unit)
	if err := c.Stop(ctx, p.Unit); err != nil {
		t.Fatal(err)
	}
}

// TestConnectDeadline: a context that has ended makes no connection.
func TestConnectDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Connect(ctx); err == nil {
		c.Close()
		t.Fatal("Connect with an ended context: no error")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Connect with an ended context: %v, want context.Canceled", err)
	}
}

// TestConnAfterConnectCtx: the connection outlives Connect's context
// (godbus's WithContext would close it with the context).
func TestConnAfterConnectCtx(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := Connect(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := testPath(t, "system.slice")
	if err := c.Stop(ctxT(t), p.Unit); err != nil {
		t.Fatalf("a call after Connect's context ended: %v", err)
	}
}

// TestCost measures the start path's D-Bus cost: Connect, and StartScope
// then Stop, over 20 runs each, against go-systemd's Conn doing the same
// (what runc does). The numbers are in Conn's comment.
func TestCost(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	const n = 20
	ctx := ctxT(t)
	mean := func(d time.Duration) time.Duration { return d / n }

	var tConnect, gsConnect time.Duration
	for range n {
		t0 := time.Now()
		c, err := Connect(ctx)
		tConnect += time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		t0 = time.Now()
		g, err := sd.NewSystemConnectionContext(context.Background())
		gsConnect += time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
	}

	c := connect(t)
	var start, stop, stopJob time.Duration
	for i := range n {
		p := testPath(t, "system.slice")
		cmd := testutil.Sleeper(t)
		props, err := Properties(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(100)}}, true, c.Version())
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := c.StartScope(ctx, p, cmd.Process.Pid, props); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if i%2 == 1 {
			// The stop job alone (then Stop waits for the unload).
			if err := c.retry(ctx, func(b *bus) error { _, err := b.job(ctx, "StopUnit", p.Unit, "replace"); return err }); err != nil {
				t.Fatal(err)
			}
			stopJob += time.Since(t1)
		}
		if err := c.Stop(ctx, p.Unit); err != nil {
			t.Fatal(err)
		}
		start += t1.Sub(t0)
		stop += time.Since(t1)
	}

	g, err := sd.NewSystemConnectionContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var gsStart, gsStop time.Duration
	for range n {
		p := testPath(t, "system.slice")
		cmd := testutil.Sleeper(t)
		props, err := Properties(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(100)}}, true, c.Version())
		if err != nil {
			t.Fatal(err)
		}
		props = append(props, sd.PropSlice(p.Slice), prop("PIDs", []uint32{uint32(cmd.Process.Pid)}))
		ch := make(chan string, 1)
		t0 := time.Now()
		if _, err := g.StartTransientUnitContext(ctx, p.Unit, "replace", props, ch); err != nil {
			t.Fatal(err)
		}
		if r := <-ch; r != "done" {
			t.Fatalf("go-systemd start %s: %s", p.Unit, r)
		}
		t1 := time.Now()
		if _, err := g.StopUnitContext(ctx, p.Unit, "replace", ch); err != nil {
			t.Fatal(err)
		}
		if r := <-ch; r != "done" {
			t.Fatalf("go-systemd stop %s: %s", p.Unit, r)
		}
		gsStart += t1.Sub(t0)
		gsStop += time.Since(t1)
		stopAtCleanup(t, c, p.Unit) // gone already; in case of a failure
	}
	t.Logf("cost (mean of %d): Connect %v, StartScope %v, Stop (until unloaded) %v (its stop job %v); go-systemd: NewSystemConnection %v, StartTransientUnit+job %v, StopUnit+job %v",
		n, mean(tConnect), mean(start), mean(stop), stopJob/(n/2), mean(gsConnect), mean(gsStart), mean(gsStop))
}
