package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup/devfilter"
)

// fakeV2 makes a cgroup2-like tree in a temporary directory: the root and
// "/pod" carry cgroup.controllers, and the leaf "/pod/ctr" the control
// files of the enabled controllers (tmpfs cannot make them appear on
// mkdir as cgroupfs does). Writes truncate, as on cgroupfs.
func fakeV2(t *testing.T, files map[string]string) (root string, m *v2) {
	t.Helper()
	old := writeFlags
	writeFlags |= unix.O_TRUNC
	t.Cleanup(func() { writeFlags = old })
	fakeDevices(t)
	root = t.TempDir()
	put := func(dir string, kv map[string]string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctl := map[string]string{"cgroup.controllers": "cpuset cpu io memory hugetlb pids", "cgroup.subtree_control": ""}
	put(root, ctl)
	put(filepath.Join(root, "pod"), ctl)
	leaf := map[string]string{"cgroup.procs": "", "cgroup.controllers": "cpuset cpu io memory hugetlb pids", "cgroup.subtree_control": ""}
	for k, v := range files {
		leaf[k] = v
	}
	put(filepath.Join(root, "pod", "ctr"), leaf)
	mgr, err := NewV2(root, "pod/ctr")
	if err != nil {
		t.Fatal(err)
	}
	return root, mgr.(*v2)
}

// devCalls records the device filter calls of the fake tests.
var devCalls []string

// fakeDevices stands in for the device filter, which needs a real cgroup:
// it records each call and checks the rules with devfilter.Compile.
func fakeDevices(t *testing.T) {
	devCalls = nil
	a, n, r := devicesApply, devicesApplyNew, devicesRemove
	t.Cleanup(func() { devicesApply, devicesApplyNew, devicesRemove = a, n, r })
	record := func(op string) func(string, []specs.LinuxDeviceCgroup) error {
		return func(dir string, rules []specs.LinuxDeviceCgroup) error {
			devCalls = append(devCalls, fmt.Sprintf("%s %s %d", op, dir, len(rules)))
			_, err := devfilter.Compile(rules)
			return err
		}
	}
	devicesApply, devicesApplyNew = record("apply"), record("new")
	devicesRemove = func(dir string) error {
		devCalls = append(devCalls, "remove "+dir)
		return nil
	}
}

func readT(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }
func boolp(v bool) *bool   { return &v }

var v2Files = map[string]string{
	"memory.max": "max", "memory.low": "0", "memory.swap.max": "max", "memory.high": "max", "memory.min": "0",
	"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
	"cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "io.weight": "default 100", "io.max": "",
	"hugetlb.2MB.max": "max", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0",
}

func TestV2CreateEnablesControllers(t *testing.T) {
	root, _ := fakeV2(t, nil)
	if err := os.RemoveAll(filepath.Join(root, "pod", "ctr")); err != nil {
		t.Fatal(err)
	}
	m, _ := NewV2(root, "/pod/ctr")
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "pod", "ctr")); err != nil || !fi.IsDir() {
		t.Fatalf("leaf not made: %v", err)
	}
	want := "+cpuset +cpu +io +memory +hugetlb +pids"
	for _, d := range []string{root, filepath.Join(root, "pod")} {
		if got := readT(t, filepath.Join(d, "cgroup.subtree_control")); got != want {
			t.Errorf("%s/cgroup.subtree_control = %q, want %q", d, got, want)
		}
	}
	// Idempotent, and an existing cgroup costs no reads or writes.
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, filepath.Join(root, "cgroup.subtree_control")); got != "untouched" {
		t.Errorf("second Create rewrote the root: %q", got)
	}
	if p := m.Paths(); len(p) != 1 || p[""] != filepath.Join(root, "pod", "ctr") {
		t.Errorf("Paths() = %v", p)
	}
}

func TestV2Set(t *testing.T) {
	root, m := fakeV2(t, v2Files)
	dir := filepath.Join(root, "pod", "ctr")
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(256 << 20), Reservation: i64(128 << 20), Swap: i64(384 << 20)},
		CPU:    &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Period: u64(100000), Cpus: "0-1", Mems: "0", Burst: u64(1000), Idle: i64(1)},
		Pids:   &specs.LinuxPids{Limit: i64(64)},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                u16(500),
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Devices:        []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Unified:        map[string]string{"memory.high": "300000000"},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"memory.max":      "268435456",
		"memory.low":      "134217728",
		"memory.swap.max": "134217728", // memory+swap 384M - memory 256M
		"memory.high":     "300000000",
		"cpu.weight":      "100",
		"cpu.max":         "50000 100000",
		"cpu.max.burst":   "1000",
		"cpu.idle":        "1",
		"cpuset.cpus":     "0-1",
		"cpuset.mems":     "0",
		"pids.max":        "64",
		"io.weight":       "default 4950",
		"io.max":          "8:0 rbps=1048576",
		"hugetlb.2MB.max": "4194304",
	} {
		if got := readT(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if want := []string{"apply " + dir + " 1"}; !reflect.DeepEqual(devCalls, want) {
		t.Errorf("device filter calls %q, want %q", devCalls, want)
	}
}

func TestV2SetSemantics(t *testing.T) {
	cases := []struct {
		name  string
		r     specs.LinuxResources
		files map[string]string // expected
		err   error
	}{
		{"unlimited memory means unlimited swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			map[string]string{"memory.max": "max", "memory.swap.max": "max"}, nil},
		{"limit alone leaves swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1000)}},
			map[string]string{"memory.max": "1000", "memory.swap.max": "untouched"}, nil},
		{"swap -1", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1000), Swap: i64(-1)}},
			map[string]string{"memory.max": "1000", "memory.swap.max": "max"}, nil},
		{"swap below memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1000), Swap: i64(10)}},
			nil, ErrInvalidResources},
		{"swap without limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(10)}},
			nil, ErrInvalidResources},
		{"quota without period", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(20000)}},
			map[string]string{"cpu.max": "20000"}, nil},
		{"period without quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			map[string]string{"cpu.max": "max 50000"}, nil},
		{"quota -1", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(100000)}},
			map[string]string{"cpu.max": "max 100000"}, nil},
		{"shares 2", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(2)}},
			map[string]string{"cpu.weight": "1"}, nil},
		{"shares 262144", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(262144)}},
			map[string]string{"cpu.weight": "10000"}, nil},
		{"pids -1", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-1)}},
			map[string]string{"pids.max": "max"}, nil},
		{"realtime", specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(1000)}},
			nil, ErrNotSupported},
		{"missing controller file", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}, CPU: &specs.LinuxCPU{Shares: u64(10)}},
			nil, ErrNotSupported},
		{"unified path escape", specs.LinuxResources{Unified: map[string]string{"../cgroup.procs": "1"}},
			nil, ErrInvalidResources},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"memory.max": "untouched", "memory.swap.max": "untouched", "cpu.weight": "untouched", "cpu.max": "untouched", "pids.max": "untouched"}
			if c.name == "missing controller file" {
				delete(files, "cpu.weight")
			}
			root, m := fakeV2(t, files)
			err := m.Set(&c.r)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Set = %v, want %v", err, c.err)
				}
				// The error names the spec's field (and, for a missing
				// file, the delegation it lacks).
				if c.name == "missing controller file" && (!strings.Contains(err.Error(), "linux.resources.cpu") || !strings.Contains(err.Error(), "subtree_control")) {
					t.Fatalf("Set = %v: names neither linux.resources.cpu nor the delegation", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, want := range c.files {
				if got := readT(t, filepath.Join(root, "pod", "ctr", f)); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

// TestV2SetDevices: a cgroup Create made gets FRE's device program
// without a query; later Sets replace it, Reset removes it.
func TestV2SetDevices(t *testing.T) {
	root, _ := fakeV2(t, v2Files)
	dir := filepath.Join(root, "pod", "ctr")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	m, _ := NewV2(root, "/pod/ctr")
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}
	for _, r := range []*specs.LinuxResources{{Devices: rules}, {Devices: rules[:1]}, {Pids: &specs.LinuxPids{Limit: i64(-1)}}} {
		if err := m.Set(r); err != nil && !errors.Is(err, ErrNotSupported) {
			t.Fatal(err)
		}
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	want := []string{"new " + dir + " 2", "apply " + dir + " 1", "remove " + dir}
	if !reflect.DeepEqual(devCalls, want) {
		t.Errorf("device filter calls %q, want %q", devCalls, want)
	}
	err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "x"}}})
	var fe *devfilter.FieldError
	if !errors.Is(err, ErrInvalidResources) || !errors.As(err, &fe) || fe.Field != "linux.resources.devices[0].type" {
		t.Errorf("Set of a bad device rule = %v, want ErrInvalidResources naming the field", err)
	}
}

func TestV2Reset(t *testing.T) {
	files := map[string]string{}
	for k, v := range v2Files {
		files[k] = v
	}
	files["io.max"] = "8:0 rbps=1048576 wbps=max riops=max wiops=max"
	root, m := fakeV2(t, files)
	dir := filepath.Join(root, "pod", "ctr")
	if err := m.Set(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(2 << 20)},
		CPU:    &specs.LinuxCPU{Shares: u64(4096), Quota: i64(1000), Period: u64(10000), Cpus: "1"},
		Pids:   &specs.LinuxPids{Limit: i64(3)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "cpu.weight": "100",
		"cpu.max": "max 100000", "cpuset.cpus": "", "pids.max": "max", "cgroup.freeze": "0",
		"io.max": "8:0 rbps=max wbps=max riops=max wiops=max", "hugetlb.2MB.max": "max",
	} {
		if got := readT(t, filepath.Join(dir, f)); got != want {
			t.Errorf("after Reset %s = %q, want %q", f, got, want)
		}
	}
}

func TestV2StatsParse(t *testing.T) {
	_, m := fakeV2(t, map[string]string{
		"memory.current": "1000", "memory.max": "max", "memory.peak": "2000",
		"memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
		"memory.stat":   "anon 10\nfile 20",
		"cpu.stat":      "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7",
		"pids.current":  "2", "pids.max": "max",
		"io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0",
	})
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Usage != (MemoryEntry{Usage: 1000, Limit: ^uint64(0), Max: 2000, Failcnt: 3}) || st.Memory.OOMKills != 1 || st.Memory.Stat["file"] != 20 {
		t.Errorf("memory = %+v", st.Memory)
	}
	if st.CPU.Usage.Total != 5000 || st.CPU.Usage.User != 3000 || st.CPU.Throttling.ThrottledTime != 7000 {
		t.Errorf("cpu = %+v", st.CPU)
	}
	if st.Pids != (PidsStats{Current: 2}) {
		t.Errorf("pids = %+v", st.Pids)
	}
	if len(st.IO.ServiceBytes) != 3 || st.IO.ServiceBytes[1] != (IOEntry{Major: 8, Op: "Write", Value: 200}) {
		t.Errorf("io = %+v", st.IO)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 1 {
		t.Errorf("OOMKillCount = %d, %v", n, err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"a/b": "/a/b", "/a/b/": "/a/b", "/a/../b": "/b", "../../x": "/x"} {
		if got, err := cleanPath(in); err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/", "..", "a\nb"} {
		if _, err := cleanPath(bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("cleanPath(%q) = %v, want ErrInvalidPath", bad, err)
		}
	}
}
