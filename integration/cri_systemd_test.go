package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
	freruntime "github.com/fre-runtime/fre/runtime"
)

// What the pod's container asks for, as kubelet sends it: CRI has no pids
// field, a cgroup v2 limit comes as unified "pids.max"; kubelet also sends
// a limit for every huge page size, 0 unless the pod asks (sdResources).
const (
	sdMemory    = 64 << 20
	sdMemoryUpd = 128 << 20
	sdQuota     = 50000
	sdPeriod    = 100000
	sdShares    = 512
	sdPids      = "100"
)

// sdWant is the container's scope for that request, as both drivers make
// it: the quota is 50 ms of each 100 ms. CPUWeight is the handler's
// (checkWeight).
var sdWant = map[string]string{
	"MemoryMax":          strconv.Itoa(sdMemory),
	"CPUQuotaPerSecUSec": "500ms",
	"CPUQuotaPeriodUSec": "100ms",
	"TasksMax":           sdPids,
	"memory.max":         strconv.Itoa(sdMemory),
	"cpu.max":            fmt.Sprintf("%d %d", sdQuota, sdPeriod),
	"pids.max":           sdPids,
}

// linearWeight is runc 1.1 and 1.2's shares to cpu.weight conversion;
// runc 1.3 and FRE (cgroup.SharesToWeight) use a curve that maps 1024 to
// 100.
func linearWeight(shares uint64) uint64 { return 1 + (shares-2)*9999/262142 }

// scopeProps are the unit properties compared between the handlers:
// where the scope is, the fixed ones a driver sets, and the resources.
var scopeProps = []string{
	"LoadState", "ActiveState", "ControlGroup", "Slice", "Description",
	"Delegate", "DelegateControllers", "DefaultDependencies",
	"MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting",
	"MemoryMin", "MemoryLow", "MemoryHigh", "MemoryMax", "MemorySwapMax",
	"CPUWeight", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "TasksMax",
	"AllowedCPUs", "AllowedMemoryNodes", "IOWeight", "DevicePolicy", "DeviceAllow",
}

// scopeFiles are the scope's cgroup files compared ("-" when absent),
// and hugetlb.<size>.max for each huge page size.
var scopeFiles = []string{
	"cgroup.type", "cgroup.controllers", "cgroup.subtree_control",
	"memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.max", "memory.oom.group",
	"cpu.max", "cpu.weight", "cpu.idle", "pids.max", "cpuset.cpus", "cpuset.mems", "io.weight",
}

// freExtraDevices are the rules FRE's default device list has and this
// runc's has not (runtime/create_cgroup.go withDefaultDevices):
// /dev/net/tun, in upstream runc's AllowedDevices (1.1.5 and 1.3) but not
// sent by Debian's runc 1.1.5+ds1.
var freExtraDevices = map[string]bool{"/dev/char/10:200 rwm": true}

// knownDifference says why fre's value of key may differ from runc's
// where FRE chose so ("" where it should not differ): logged, not failed.
func knownDifference(key, runc, fre string) string {
	switch key {
	case "Description":
		return "FRE's unit description is cgroup/systemd.Description, runc's \"libcontainer container ID\""
	case "CPUWeight", "cpu.weight":
		if runc == strconv.FormatUint(linearWeight(sdShares), 10) && fre == strconv.FormatUint(cgroup.SharesToWeight(sdShares), 10) {
			return fmt.Sprintf("shares %d: this runc converts linearly, FRE with runc 1.3's curve (cgroup.SharesToWeight)", sdShares)
		}
	case "DeviceAllow":
		r := map[string]bool{}
		for _, e := range strings.Split(runc, "; ") {
			r[e] = true
		}
		var extra []string
		for _, e := range strings.Split(fre, "; ") {
			if !r[e] {
				extra = append(extra, e)
			}
			delete(r, e)
		}
		ok := len(r) == 0
		for _, e := range extra {
			ok = ok && freExtraDevices[e]
		}
		if ok {
			return fmt.Sprintf("FRE's default devices add %q to runc 1.1's", extra)
		}
	}
	return ""
}

// sdScope is one scope as a handler left it, with the pod's uid and ids
// replaced by placeholders so runc's and fre's compare.
type sdScope struct {
	props, files map[string]string
}

// sdPod is one handler's observations: scopes by role, and the rest
// (exec output, shim count, cgroups outside systemd's tree) by name.
type sdPod struct {
	scopes map[string]sdScope
	facts  map[string]string
}

// TestCRISystemdPod is kubelet with the systemd cgroup driver through
// CRI: containerd's runc shim and the fre shim take SystemdCgroup from the
// same options table, so a node switches from runc to FRE by runtime_type
// alone. One containerd of its own has both handlers; one pod goes
// through each, runc first (the anchor), each checked against the
// request, then FRE's scopes are compared with runc's. Last, with
// containerd passing kubelet's huge page limits on (its
// disable_hugetlb_controller = false), one more pod each.
func TestCRISystemdPod(t *testing.T) {
	testutil.RequireSystemd(t)
	bd := binDir()
	for _, b := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(bd, b)); err != nil {
			sdSkipOrFail(t, "%s not found in %s (make containerd)", b, bd)
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		sdSkipOrFail(t, "no runc, the anchor: %v", err)
	}
	if st := testutil.SystemctlShow(t, "kubepods.slice", "ActiveState")["ActiveState"]; st != "inactive" {
		t.Skipf("kubepods.slice is %s: a kubelet's node, not a test's", st)
	}
	before := sdHostState()
	opts := fmt.Sprintf("  SystemdCgroup = true\n  BinaryName = %q", runc)
	c, err := newContainerd(t, bd, opts)
	if err != nil {
		t.Fatal(err)
	}
	made := &sdMade{}
	t.Cleanup(func() {
		if leaks := sdCleanup(c, before, made); len(leaks) > 0 {
			t.Errorf("left behind: %s", strings.Join(leaks, "; "))
		}
	})
	c.criImages(t)
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs := cri.NewRuntimeServiceClient(conn)

	// kubelet asks CRI for the driver; containerd answers from the
	// runc-typed options (it cannot read another runtime's).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if rc, err := rs.RuntimeConfig(ctx, &cri.RuntimeConfigRequest{}); err != nil {
		t.Errorf("RuntimeConfig: %v", err)
	} else if d := rc.GetLinux().GetCgroupDriver(); d != cri.CgroupDriver_SYSTEMD {
		t.Errorf("RuntimeConfig: cgroup driver %s, want SYSTEMD", d)
	}

	pods := map[string]*sdPod{}
	for _, h := range []string{"runc", "fre"} {
		t.Run(h, func(t *testing.T) { pods[h] = systemdPod(t, c, rs, h, made) })
	}
	if pods["runc"] != nil && pods["fre"] != nil {
		compareSystemdPods(t, pods["runc"], pods["fre"])
	} else {
		t.Error("no comparison: a handler's pod did not finish")
	}

	t.Run("hugepages", func(t *testing.T) {
		if len(hugePageSizes()) == 0 {
			t.Skip("no hugetlb controller or no huge page sizes")
		}
		// containerd drops huge page limits by default; a node that
		// gives pods huge pages turns that off.
		restartWithCRIOption(t, c, "disable_hugetlb_controller = false")
		for _, h := range []string{"runc", "fre"} {
			t.Run(h, func(t *testing.T) { hugepagePod(t, c, rs, h, made) })
		}
	})
}

// sdSkipOrFail skips, unless this is make test-systemd's guest or CI,
// where what the test needs must be there.
func sdSkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("FRE_TEST_SYSTEMD") == "1" {
		t.Fatalf(format, args...)
	}
	skipOrFail(t, format, args...)
}

// sdMade is what the pods made, by exact name, for the cleanup.
type sdMade struct {
	units, slices []string
}

// criPod is a pod of kubelet's with one container, started through a
// handler (startPod).
type criPod struct {
	shim             string
	uid, slice, sdir string // sdir: the pod slice's cgroup
	podID, id        string
	podUnit, unit    string
	norm             *strings.Replacer // ids and uid to placeholders
	removed          bool
}

// dir is a scope's cgroup, in the pod slice.
func (p *criPod) dir(unit string) string { return p.sdir + "/" + unit }

// startPod is kubelet with the systemd driver starting a pod through
// handler: the pod slice, RunPodSandbox with the slice as cgroup parent,
// a container with sdResources(sdMemory), StartContainer.
func startPod(ctx context.Context, t *testing.T, c *containerd, rs cri.RuntimeServiceClient, handler string, made *sdMade) *criPod {
	t.Helper()
	// A pod uid as kubelet's (a UUID); its slice name escapes the dashes.
	uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", os.Getpid(), time.Now().UnixNano()&(1<<48-1))
	p := &criPod{uid: uid,
		shim:  map[string]string{"runc": "containerd-shim-runc-v2", "fre": "containerd-shim-fre-v1"}[handler],
		slice: "kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"}
	p.sdir = "/kubepods.slice/kubepods-besteffort.slice/" + p.slice
	made.slices = append(made.slices, p.slice)
	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "sd-" + handler, Uid: uid, Namespace: "default"},
		Hostname:     "sd-" + handler,
		LogDirectory: filepath.Join(c.dir, "pod-logs-"+uid),
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: p.slice,
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_POD, Pid: cri.NamespaceMode_CONTAINER},
			},
		},
	}
	if err := os.MkdirAll(podCfg.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeletPodSlice(t, p.slice, p.sdir)
	rp, err := rs.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\ncontainerd log:\n%s", err, c.tail())
	}
	p.podID = rp.PodSandboxId
	p.podUnit = "cri-containerd-" + p.podID + ".scope"
	made.units = append(made.units, p.podUnit)
	t.Cleanup(func() {
		if !p.removed {
			rs.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: p.podID})
			rs.RemovePodSandbox(context.Background(), &cri.RemovePodSandboxRequest{PodSandboxId: p.podID})
		}
	})
	cr, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: p.podID,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "sleeper"},
			Image:    &cri.ImageSpec{Image: imageRef},
			Command:  []string{"sh", "-c", "echo started; exec sleep 1000"},
			LogPath:  "sleeper.log",
			Linux:    &cri.LinuxContainerConfig{Resources: sdResources(sdMemory)},
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v\ncontainerd log:\n%s", err, c.tail())
	}
	p.id = cr.ContainerId
	p.unit = "cri-containerd-" + p.id + ".scope"
	made.units = append(made.units, p.unit)
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: p.id}); err != nil {
		t.Fatalf("StartContainer: %v\ncontainerd log:\n%s", err, c.tail())
	}
	p.norm = strings.NewReplacer(p.podID, "<sandbox>", p.id, "<container>", strings.ReplaceAll(uid, "-", "_"), "<uid>")
	return p
}

// teardown is kubelet ending the pod: the container, the sandbox (each
// scope then gone, unit and cgroup), the shim exited, then the pod slice
// stopped: what a runtime left in kubelet's slice shows there, as systemd
// cannot remove a cgroup with children it does not know.
func (p *criPod) teardown(ctx context.Context, t *testing.T, c *containerd, rs cri.RuntimeServiceClient) {
	t.Helper()
	if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: p.id, Timeout: 2}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: p.id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	waitScopeGone(t, p.unit, p.dir(p.unit))
	if _, err := rs.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := rs.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	p.removed = true
	waitScopeGone(t, p.podUnit, p.dir(p.podUnit))
	waitFor(t, "the pod's "+p.shim+" to exit", time.Minute, func() (bool, error) {
		return len(testutil.ShimPids(p.shim, c.sock)) == 0, nil
	})
	if out, err := exec.Command("systemctl", "stop", p.slice).CombinedOutput(); err != nil {
		t.Errorf("systemctl stop %s: %v: %s", p.slice, err, out)
	}
	if !pollFor(time.Minute, func() bool { return !exists("/sys/fs/cgroup" + p.sdir) }) {
		t.Errorf("pod slice's cgroup %s left after the slice stopped: %s", p.sdir, lsCgroup(p.sdir))
	}
}

// systemdPod is a pod through handler, checked at each step against the
// request: both inits in their scopes in the pod slice, the units active
// with the limits, the cgroup files the same, exec, stats, an update, and
// the teardown. It returns what it saw.
func systemdPod(t *testing.T, c *containerd, rs cri.RuntimeServiceClient, handler string, made *sdMade) *sdPod {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := startPod(ctx, t, c, rs, handler, made)
	pod := &sdPod{scopes: map[string]sdScope{}, facts: map[string]string{}}

	// Where the two inits are: a scope each, in kubelet's pod slice.
	sps, err := rs.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.podID, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	cst, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: p.id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	if cst.Status.State != cri.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state %s, want RUNNING", cst.Status.State)
	}
	for _, s := range []struct{ role, unit, info string }{
		{"sandbox", p.podUnit, sps.Info["info"]},
		{"container", p.unit, cst.Info["info"]},
	} {
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(s.info), &info); err != nil || info.Pid == 0 {
			t.Fatalf("%s status info: %v: %s", s.role, err, s.info)
		}
		dir := p.dir(s.unit)
		if got, err := cgroupOfPid(info.Pid); err != nil || got != dir {
			t.Errorf("%s init %d in cgroup %q (%v), want %s", s.role, info.Pid, got, err, dir)
		}
		sc := observeScope(t, s.unit, dir, p.norm)
		if pr := sc.props; pr["ActiveState"] != "active" || pr["ControlGroup"] != p.norm.Replace(dir) || pr["Slice"] != p.norm.Replace(p.slice) || pr["Delegate"] != "yes" {
			t.Errorf("%s %s: ActiveState %s, ControlGroup %s, Slice %s, Delegate %s; want active, %s, %s, yes",
				s.role, s.unit, pr["ActiveState"], pr["ControlGroup"], pr["Slice"], pr["Delegate"], dir, p.slice)
		}
		pod.scopes[s.role] = sc
	}
	// containerd gives a sandbox cpu shares 2: weight 1.
	if sb := pod.scopes["sandbox"]; sb.props["CPUWeight"] != "1" || sb.files["cpu.weight"] != "1" {
		t.Errorf("sandbox: CPUWeight %s, cpu.weight %s; want 1 (shares 2)", sb.props["CPUWeight"], sb.files["cpu.weight"])
	}
	want := maps.Clone(sdWant)
	checkScope(t, "container", pod.scopes["container"], want)
	checkWeight(t, handler, pod.scopes["container"])

	// An exec joins the container's scope, which is its cgroup
	// namespace's root (/sys/fs/cgroup there is the scope).
	ex, err := rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: p.id, Timeout: 60,
		Cmd: []string{"cat", "/proc/self/cgroup", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"}})
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	pod.facts["exec"] = fmt.Sprintf("exit %d: %q %q", ex.ExitCode, ex.Stdout, ex.Stderr)
	if want := fmt.Sprintf("0::/\n%d\n%s\n", sdMemory, sdPids); ex.ExitCode != 0 || string(ex.Stdout) != want {
		t.Errorf("ExecSync cat cgroup files: %s, want %q", pod.facts["exec"], want)
	}

	stats, err := rs.ContainerStats(ctx, &cri.ContainerStatsRequest{ContainerId: p.id})
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if s := stats.Stats; s.GetMemory().GetWorkingSetBytes() == nil || s.GetMemory().GetUsageBytes().GetValue() == 0 || s.GetCpu().GetUsageCoreNanoSeconds() == nil {
		t.Errorf("ContainerStats lacks memory or cpu: %v", stats)
	}
	pod.facts["shims of the pod"] = strconv.Itoa(len(testutil.ShimPids(p.shim, c.sock)))
	if n := pod.facts["shims of the pod"]; n != "1" {
		t.Errorf("%s %s shims for one pod, want 1", n, p.shim)
	}

	// kubelet sends the whole resources again, with the new memory limit.
	if _, err := rs.UpdateContainerResources(ctx, &cri.UpdateContainerResourcesRequest{ContainerId: p.id, Linux: sdResources(sdMemoryUpd)}); err != nil {
		t.Fatalf("UpdateContainerResources: %v\ncontainerd log:\n%s", err, c.tail())
	}
	sc := observeScope(t, p.unit, p.dir(p.unit), p.norm)
	pod.scopes["container after update"] = sc
	want["MemoryMax"], want["memory.max"] = strconv.Itoa(sdMemoryUpd), strconv.Itoa(sdMemoryUpd)
	checkScope(t, "container after update", sc, want)
	checkWeight(t, handler, sc)

	p.teardown(ctx, t, c, rs)
	pod.facts["cgroups outside systemd's tree"] = strings.Join(foreignCgroups(), " ")
	return pod
}

// hugepagePod is a pod through handler with kubelet's huge page limits
// reaching the runtime: each size's hugetlb.<size>.max is 0 in the
// container's scope.
func hugepagePod(t *testing.T, c *containerd, rs cri.RuntimeServiceClient, handler string, made *sdMade) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := startPod(ctx, t, c, rs, handler, made)
	for _, size := range hugePageSizes() {
		f := "hugetlb." + size + ".max"
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", p.dir(p.unit), f))
		if got := strings.TrimSpace(string(b)); err != nil || got != "0" {
			t.Errorf("%s of the container's scope: %q (%v), want 0; the scope's controllers: %s", f, got, err, readTrim(filepath.Join("/sys/fs/cgroup", p.dir(p.unit), "cgroup.controllers")))
		}
	}
	p.teardown(ctx, t, c, rs)
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// restartWithCRIOption restarts containerd with line added to CRI's
// runtime table (its pods must be gone).
func restartWithCRIOption(t *testing.T, c *containerd, line string) {
	t.Helper()
	c.stop()
	b, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	const table = "[plugins.\"io.containerd.cri.v1.runtime\"]\n"
	cfg := strings.Replace(string(b), table, table+"  "+line+"\n", 1)
	if cfg == string(b) {
		t.Fatalf("no %s in %s", strings.TrimSpace(table), c.config)
	}
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

// sdResources is the container's request with memory limit mem, as
// kubelet makes it: with a huge page limit of 0 for every size.
func sdResources(mem int64) *cri.LinuxContainerResources {
	r := &cri.LinuxContainerResources{
		MemoryLimitInBytes: mem, CpuQuota: sdQuota, CpuPeriod: sdPeriod, CpuShares: sdShares,
		Unified: map[string]string{"pids.max": sdPids},
	}
	for _, size := range hugePageSizes() {
		r.HugepageLimits = append(r.HugepageLimits, &cri.HugepageLimit{PageSize: size, Limit: 0})
	}
	return r
}

// hugePageSizes are the kernel's huge page sizes as kubelet names them
// (libcontainer's HugePageSizes: hugepages-2048kB is "2MB"), where cgroup
// v2 has the hugetlb controller (containerd drops the limits otherwise).
func hugePageSizes() []string {
	ctrls, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if !slices.Contains(strings.Fields(string(ctrls)), "hugetlb") {
		return nil
	}
	var sizes []string
	ents, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	for _, e := range ents {
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB"), 10, 64)
		if err != nil {
			continue
		}
		switch {
		case kb%(1<<20) == 0:
			sizes = append(sizes, fmt.Sprintf("%dGB", kb>>20))
		case kb%(1<<10) == 0:
			sizes = append(sizes, fmt.Sprintf("%dMB", kb>>10))
		default:
			sizes = append(sizes, fmt.Sprintf("%dKB", kb))
		}
	}
	return sizes
}

// kubeletPodSlice makes the pod's slice as kubelet's systemd cgroup
// manager (libcontainer's) does before RunPodSandbox: the slice unit
// started, then every controller of the root enabled in
// cgroup.subtree_control at each level above the pod slice
// (libcontainer's fs2.CreateCgroupPath): systemd itself enables only
// those it manages, not hugetlb, rdma or misc. Enabling is not undone
// (runc does the same).
func kubeletPodSlice(t *testing.T, slice, sliceDir string) {
	t.Helper()
	if out, err := exec.Command("systemctl", "start", slice).CombinedOutput(); err != nil {
		t.Fatalf("systemctl start %s: %v: %s", slice, err, out)
	}
	ctrls, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		t.Fatal(err)
	}
	dir := "/sys/fs/cgroup"
	for _, e := range append([]string{""}, strings.Split(filepath.Dir(sliceDir), "/")[1:]...) {
		dir = filepath.Join(dir, e)
		for _, c := range strings.Fields(string(ctrls)) {
			// One by one, as libcontainer falls back to: a controller
			// the kernel refuses here is left out.
			os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0)
		}
	}
}

// checkWeight checks the container's CPUWeight and cpu.weight for shares
// sdShares: FRE's curve; runc's conversion of its version (linear before
// runc 1.3).
func checkWeight(t *testing.T, handler string, sc sdScope) {
	t.Helper()
	curve := strconv.FormatUint(cgroup.SharesToWeight(sdShares), 10)
	ok := map[string]bool{curve: true}
	if handler == "runc" {
		ok[strconv.FormatUint(linearWeight(sdShares), 10)] = true
	}
	if w := sc.props["CPUWeight"]; !ok[w] || sc.files["cpu.weight"] != w {
		t.Errorf("%s container: CPUWeight %s, cpu.weight %s for shares %d; want one of %v, the same in both",
			handler, w, sc.files["cpu.weight"], sdShares, slices.Sorted(maps.Keys(ok)))
	}
}

// checkScope checks a scope's properties and files against want (keys
// are either).
func checkScope(t *testing.T, role string, sc sdScope, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, ok := sc.props[k]
		if !ok {
			got = sc.files[k]
		}
		if got != want[k] {
			t.Errorf("%s: %s is %q, want %q", role, k, got, want[k])
		}
	}
}

// compareSystemdPods reports every property, file and fact where fre's
// pod differs from runc's, the known differences as logs.
func compareSystemdPods(t *testing.T, runc, fre *sdPod) {
	t.Helper()
	diff := func(what string, r, f map[string]string) {
		keys := map[string]bool{}
		for k := range r {
			keys[k] = true
		}
		for k := range f {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for _, k := range sorted {
			if r[k] == f[k] {
				continue
			}
			if why := knownDifference(k, r[k], f[k]); why != "" {
				t.Logf("fre differs from runc by design: %s %s: runc %q, fre %q (%s)", what, k, r[k], f[k], why)
				continue
			}
			t.Errorf("fre differs from runc: %s %s: runc %q, fre %q", what, k, r[k], f[k])
		}
	}
	for role, rs := range runc.scopes {
		fs := fre.scopes[role]
		diff(role+" unit", rs.props, fs.props)
		diff(role+" cgroup", rs.files, fs.files)
	}
	diff("pod", runc.facts, fre.facts)
}

// observeScope reads a scope's unit properties and cgroup files.
func observeScope(t *testing.T, unit, dir string, norm *strings.Replacer) sdScope {
	t.Helper()
	sc := sdScope{props: map[string]string{}, files: map[string]string{}}
	for k, v := range testutil.SystemctlShow(t, unit, scopeProps...) {
		sc.props[k] = norm.Replace(v)
	}
	sc.props["DeviceAllow"] = normDeviceAllow(sc.props["DeviceAllow"])
	files := slices.Clone(scopeFiles)
	for _, size := range hugePageSizes() {
		files = append(files, "hugetlb."+size+".max")
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", dir, f))
		v := strings.TrimSpace(string(b))
		if err != nil {
			v = "-"
		}
		sc.files[f] = v
	}
	return sc
}

// normDeviceAllow sorts DeviceAllow's entries and names device groups
// by major, as /proc/devices has them: runc writes "char-pts", FRE
// "char-136", the same rule.
func normDeviceAllow(v string) string {
	if v == "" {
		return v
	}
	majors := map[string]string{}
	b, _ := os.ReadFile("/proc/devices")
	typ := ""
	for _, l := range strings.Split(string(b), "\n") {
		switch f := strings.Fields(l); {
		case l == "Character devices:":
			typ = "char"
		case l == "Block devices:":
			typ = "block"
		case len(f) == 2:
			majors[typ+"-"+f[1]] = typ + "-" + f[0]
		}
	}
	entries := strings.Split(v, "; ")
	for i, e := range entries {
		dev, access, _ := strings.Cut(e, " ")
		if m, ok := majors[dev]; ok {
			entries[i] = m + " " + access
		}
	}
	slices.Sort(entries)
	return strings.Join(entries, "; ")
}

// waitScopeGone waits until the unit is unloaded and its cgroup removed.
func waitScopeGone(t *testing.T, unit, dir string) {
	t.Helper()
	gone := func() bool { return unitLoadState(unit) == "not-found" && !exists("/sys/fs/cgroup"+dir) }
	if !pollFor(time.Minute, gone) {
		out, _ := exec.Command("systemctl", "show", unit, "-p", "LoadState,ActiveState,Result").CombinedOutput()
		t.Errorf("%s after its container went: %s; cgroup: %s", unit, strings.Join(strings.Fields(string(out)), " "), lsCgroup(dir))
	}
}

// unitLoadState is the unit's LoadState ("" when systemctl fails).
func unitLoadState(unit string) string {
	out, _ := exec.Command("systemctl", "show", "-p", "LoadState", "--value", unit).Output()
	return strings.TrimSpace(string(out))
}

// cgroupOfPid is the process's cgroup v2 path.
func cgroupOfPid(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line in %q", b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lsCgroup names a cgroup's child cgroups and processes, for failures.
func lsCgroup(dir string) string {
	d := filepath.Join("/sys/fs/cgroup", dir)
	if !exists(d) {
		return "gone"
	}
	var kids []string
	filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.IsDir() && p != d {
			kids = append(kids, strings.TrimPrefix(p, d+"/"))
		}
		return nil
	})
	procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	return fmt.Sprintf("present, children %v, procs %q", kids, strings.TrimSpace(string(procs)))
}

// foreignCgroups are the top-level cgroups systemd has no unit for (a
// unit's cgroup is named after it): under the systemd driver, a runtime
// makes none.
func foreignCgroups() []string {
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".slice") && !strings.HasSuffix(e.Name(), ".scope") && !strings.HasSuffix(e.Name(), ".service") {
			out = append(out, e.Name())
		}
	}
	return out
}

// sdHost is what the host had before the test: what is not the test's
// to remove.
type sdHost struct {
	criCgroup, freRoot, runcRoot bool
	sockets                      map[string]bool
}

func sdHostState() sdHost {
	h := sdHost{
		criCgroup: exists(filepath.Join("/sys/fs/cgroup", criNamespace)),
		freRoot:   exists(filepath.Join(filepath.Dir(freRoot), criNamespace)),
		runcRoot:  exists(filepath.Join("/run/containerd/runc", criNamespace)),
		sockets:   map[string]bool{},
	}
	ents, _ := os.ReadDir(shimSocketDir)
	for _, e := range ents {
		h.sockets[e.Name()] = true
	}
	return h
}

// sdCleanup stops this test's containerd and removes what it and its
// pods made: shims (by pid), mounts, the scope units and slices by their
// exact names, the runtimes' k8s.io state and fre's pool when the host had
// none before, and containerd's dir. It returns what had to be killed or
// could not be removed.
func sdCleanup(c *containerd, before sdHost, made *sdMade) (leaks []string) {
	c.stop()
	for _, shim := range []string{"containerd-shim-fre-v1", "containerd-shim-runc-v2"} {
		for _, pid := range testutil.ShimPids(shim, c.sock) {
			leaks = append(leaks, fmt.Sprintf("%s %d", shim, pid))
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	unmountUnder(c.dir)
	for _, u := range made.units {
		if st := unitLoadState(u); st != "not-found" && st != "" {
			leaks = append(leaks, fmt.Sprintf("unit %s (%s)", u, st))
			exec.Command("systemctl", "stop", u).Run()
		}
	}
	// The pod slices, then the QoS slices kubelet would have made (the
	// test skips where kubepods.slice was active before).
	stop := append(slices.Clone(made.slices), "kubepods-besteffort.slice", "kubepods.slice")
	exec.Command("systemctl", append([]string{"stop"}, stop...)...).Run()
	if !before.freRoot {
		root := filepath.Join(filepath.Dir(freRoot), criNamespace)
		if rt, err := freruntime.New(root, freruntime.Options{CgroupPoolDir: c.cgpoolDir()}); err == nil {
			if p, err := rt.CgroupPool(); err == nil {
				if err := p.Drain(""); err != nil {
					leaks = append(leaks, fmt.Sprintf("drain the pool of %s: %v", root, err))
				}
			}
			rt.Close()
		}
		os.RemoveAll(root)
	}
	if !before.criCgroup {
		leaks = append(leaks, testutil.RemoveCgroupTree(criNamespace)...)
	}
	if !before.runcRoot {
		os.RemoveAll(filepath.Join("/run/containerd/runc", criNamespace))
	}
	ents, _ := os.ReadDir(shimSocketDir)
	for _, e := range ents {
		if !before.sockets[e.Name()] {
			leaks = append(leaks, "shim socket "+filepath.Join(shimSocketDir, e.Name()))
			os.Remove(filepath.Join(shimSocketDir, e.Name()))
		}
	}
	os.RemoveAll(c.dir)
	return leaks
}
