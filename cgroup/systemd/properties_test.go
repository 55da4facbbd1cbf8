package systemd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	sd "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }
func show(ps []sd.Property) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = fmt.Sprintf("%s=%v", p.Name, p.Value.Value())
	}
	return out
}

// fixed is what every result starts with (a systemd of 236 on).
func fixed(unified bool) []string {
	io := "IOAccounting=true"
	if !unified {
		io = "BlockIOAccounting=true"
	}
	return []string{"Description=" + Description, "Delegate=true", "MemoryAccounting=true", "CPUAccounting=true", io,
		"TasksAccounting=true", "DefaultDependencies=false", "CollectMode=inactive-or-failed"}
}

const inf = "18446744073709551615"

func TestProperties(t *testing.T) {
	tests := []struct {
		name    string
		r       *specs.LinuxResources
		unified bool
		version int
		want    []string // after the fixed ones
	}{
		{name: "nil v2", unified: true, version: 252},
		{name: "nil v1", version: 252},
		{name: "empty", r: &specs.LinuxResources{}, unified: true, version: 252},
		{
			name: "v2 all", unified: true, version: 252,
			r: &specs.LinuxResources{
				Memory:  &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20), Swap: i64(96 << 20)},
				CPU:     &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Period: u64(100000), Cpus: "0-2,7", Mems: "0"},
				Pids:    &specs.LinuxPids{Limit: i64(50)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(500)},
			},
			want: []string{"MemoryMax=67108864", "MemoryLow=33554432", "MemorySwapMax=33554432", "CPUWeight=100",
				"CPUQuotaPeriodUSec=100000", "CPUQuotaPerSecUSec=500000", "AllowedCPUs=[135]", "AllowedMemoryNodes=[1]",
				"TasksMax=50", "IOWeight=4950"},
		},
		{
			name: "v1 all", unified: false, version: 252,
			r: &specs.LinuxResources{
				Memory:  &specs.LinuxMemory{Limit: i64(64 << 20), Reservation: i64(32 << 20), Swap: i64(96 << 20)},
				CPU:     &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(100000), Cpus: "1"},
				Pids:    &specs.LinuxPids{Limit: i64(50)},
				BlockIO: &specs.LinuxBlockIO{Weight: u16(500)},
			},
			want: []string{"MemoryLimit=67108864", "CPUShares=512", "CPUQuotaPeriodUSec=100000", "CPUQuotaPerSecUSec=500000",
				"AllowedCPUs=[2]", "TasksMax=50", "BlockIOWeight=500"},
		},
		{
			name: "old systemd: no period, no cpuset", unified: true, version: 239,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(100000), Cpus: "0"}},
			want: []string{"CPUQuotaPerSecUSec=500000"},
		},
		{
			name: "quota rounded up to 10 ms, default period", unified: true, version: 252,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(12345)}},
			want: []string{"CPUQuotaPerSecUSec=130000"},
		},
		{
			name: "period alone: infinite quota", unified: true, version: 252,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			want: []string{"CPUQuotaPeriodUSec=50000", "CPUQuotaPerSecUSec=" + inf},
		},
		{
			name: "quota -1: infinite", unified: true, version: 252,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1)}},
			want: []string{"CPUQuotaPerSecUSec=" + inf},
		},
		{
			name: "unlimited memory and pids", unified: true, version: 252,
			r:    &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}, Pids: &specs.LinuxPids{Limit: i64(-1)}},
			want: []string{"MemoryMax=" + inf, "MemorySwapMax=" + inf, "TasksMax=" + inf},
		},
		{
			name: "pids 0 is 1, nil is infinity", unified: true, version: 252,
			r:    &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(0)}},
			want: []string{"TasksMax=1"},
		},
		{
			name: "pids nil limit", unified: true, version: 252,
			r:    &specs.LinuxResources{Pids: &specs.LinuxPids{}},
			want: []string{"TasksMax=" + inf},
		},
		{
			name: "swap -1 is max", unified: true, version: 252,
			r:    &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(-1)}},
			want: []string{"MemoryMax=1048576", "MemorySwapMax=" + inf},
		},
		{
			name: "swap equal to memory: no swap", unified: true, version: 252,
			r:    &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(1 << 20)}},
			want: []string{"MemoryMax=1048576"},
		},
		{
			name: "v1: no swap, no reservation property", unified: false, version: 252,
			r:    &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20), Swap: i64(2 << 20), Reservation: i64(1 << 19)}},
			want: []string{"MemoryLimit=1048576"},
		},
		{
			name: "cpu idle: weight 0, shares ignored", unified: true, version: 252,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1), Shares: u64(2048)}},
			want: []string{"CPUWeight=0"},
		},
		{
			name: "cpu idle before 252: shares", unified: true, version: 251,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1), Shares: u64(2)}},
			want: []string{"CPUWeight=1"},
		},
		{
			name: "shares extremes", unified: true, version: 252,
			r:    &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(262144)}},
			want: []string{"CPUWeight=10000"},
		},
		{
			// Hugepages, network, rdma, swappiness, OOM: cgroupfs's.
			name: "no systemd property", unified: true, version: 252,
			r: &specs.LinuxResources{
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
				Network:        &specs.LinuxNetwork{ClassID: new(uint32)},
				Memory:         &specs.LinuxMemory{Swappiness: u64(10), DisableOOMKiller: new(bool)},
			},
		},
		{
			name: "unified keys", unified: true, version: 252,
			r: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: i64(1 << 20)},
				Unified: map[string]string{"memory.max": "max", "memory.high": " 4096 ", "pids.max": "0", "cpu.max": "max 50000",
					"cpu.weight": "7", "cpuset.cpus": "1", "io.max": "8:0 rbps=1", "memory.oom.group": "1"},
			},
			want: []string{"MemoryMax=1048576", "CPUQuotaPeriodUSec=50000", "CPUQuotaPerSecUSec=" + inf, "CPUWeight=7", "AllowedCPUs=[2]",
				"MemoryHigh=4096", "MemoryMax=" + inf, "TasksMax=1"},
		},
		{
			name: "unified on v1: cgroupfs's", unified: false, version: 252,
			r: &specs.LinuxResources{Unified: map[string]string{"memory.max": "1"}},
		},
	}
	for _, tt := range tests {
		got, err := Properties(tt.r, tt.unified, tt.version)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		want := append(fixed(tt.unified), tt.want...)
		if g := show(got); !slices.Equal(g, want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, g, want)
		}
		// An update's: the same resources, without the fixed ones.
		res, err := ResourceProperties(tt.r, tt.unified, tt.version)
		if err != nil {
			t.Errorf("%s: ResourceProperties: %v", tt.name, err)
		} else if g := show(res); !slices.Equal(g, tt.want) {
			t.Errorf("%s: ResourceProperties:\n got %q\nwant %q", tt.name, g, tt.want)
		}
	}
}

func TestPropertiesBad(t *testing.T) {
	for _, tt := range []struct {
		name, field string
		r           *specs.LinuxResources
	}{
		{"swap without memory", "memory.swap", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(1 << 20)}}},
		{"swap below memory", "memory.swap", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(2 << 20), Swap: i64(1 << 20)}}},
		{"bad cpus", "cpu.cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-x"}}},
		{"reversed range", "cpu.cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}},
		{"empty cpus list", "cpu.cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: ","}}},
		{"huge cpu", "cpu.mems", &specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "4000000000"}}},
		{"bad unified", "unified", &specs.LinuxResources{Unified: map[string]string{"memory.max": "lots"}}},
		{"bad cpu.max", "unified", &specs.LinuxResources{Unified: map[string]string{"cpu.max": "1 2 3"}}},
		{"device type", "devices[0].type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}}},
		{"device access", "devices[1].access", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{}, {Type: "c", Access: "rx"}}}},
	} {
		_, err := Properties(tt.r, true, 252)
		if err == nil || !errors.Is(err, ErrInvalidResources) || !strings.Contains(err.Error(), "linux.resources."+tt.field) {
			t.Errorf("%s: error %v, want ErrInvalidResources naming linux.resources.%s", tt.name, err, tt.field)
		}
	}
}

func TestRangeToBits(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []byte
	}{
		{"0", []byte{1}},
		{"7", []byte{0x80}},
		{"8", []byte{0, 1}},
		{"0-7", []byte{0xff}},
		{"1,3-5", []byte{0x3a}},
		{" 0 , 9-10,", []byte{1, 6}},
		{"0-63", []byte{255, 255, 255, 255, 255, 255, 255, 255}},
		{"64", []byte{0, 0, 0, 0, 0, 0, 0, 0, 1}},
	} {
		got, err := RangeToBits(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("RangeToBits(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", ",", "-1", "a", "1-", "2-1", "1-2-3", fmt.Sprint(math.MaxUint32 + 1)} {
		if got, err := RangeToBits(in); err == nil {
			t.Errorf("RangeToBits(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{
		"252.39-1~deb12u1": 252, "v245.4-1.fc32": 245, "245": 245, "v245-1.fc32": 245, `"245-1.fc32"`: 245, "": -1, "abc": -1,
	} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %d, want %d", in, got, want)
		}
	}
}
