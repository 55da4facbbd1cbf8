package cgroup

import (
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Manager is one container's cgroup in every hierarchy FRE uses.
type Manager interface {
	// Create makes the cgroup (and missing ancestors) in every hierarchy.
	// It is idempotent: an existing cgroup is kept as it is.
	Create() error
	// Add moves pid into the cgroup in every hierarchy.
	Add(pid int) error
	// SelfJoinFiles are the files a single-threaded process writes "0" to
	// (through fds opened by a privileged process) to move itself into
	// the cgroup without the kernel's global threadgroup lock: v1's
	// "tasks" in each hierarchy. nil (v2) means use Add.
	SelfJoinFiles() []string
	// Set applies OCI linux.resources; nil fields are left alone.
	Set(r *specs.LinuxResources) error
	// Reset puts every limit back to what a new cgroup gets and thaws it.
	Reset() error
	// ResetOnly is Reset for the named controllers (Controllers of what
	// was Set) and the freezer; v2 resets everything.
	ResetOnly(ctrls []string) error
	// Freeze freezes every process and waits until the kernel says FROZEN.
	Freeze() error
	// Thaw undoes Freeze.
	Thaw() error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Pids lists every process in the cgroup and its descendants.
	Pids() ([]int, error)
	// Kill sends sig to every process in the cgroup and its descendants.
	// It does not wait for them to exit (see WaitEmpty).
	Kill(sig syscall.Signal) error
	// WaitEmpty polls until no process is left in the cgroup or its
	// descendants, or timeout passes (ErrTimeout).
	WaitEmpty(timeout time.Duration) error
	// Destroy removes the cgroup and its descendants in every hierarchy,
	// retrying while the kernel still says EBUSY. A missing cgroup is not
	// an error.
	Destroy() error
	// Rename moves the cgroup to newPath, which must have the same parent
	// (the kernel refuses moves across parents). On v1 a failure part-way
	// renames back what was renamed. cgroup v2 cannot rename:
	// ErrNotSupported.
	Rename(newPath string) error
	// Path is the cgroupsPath, cleaned and absolute ("/a/b").
	Path() string
	// Paths maps each controller to its directory; v2 has one key, "".
	// Co-mounted controllers ("cpu,cpuacct") each map to the same
	// directory. Save it in the container's state and give it to Load.
	Paths() map[string]string
	// Stats reads the cgroup's resource usage.
	Stats() (*Stats, error)
	// OOMKillCount is how many processes the kernel's OOM killer has
	// killed in this cgroup (v1 memory.oom_control oom_kill, v2
	// memory.events oom_kill).
	OOMKillCount() (uint64, error)
	// Version is 1 or 2.
	Version() int
}

// CgroupMode is the layout of the host's cgroup filesystems.
type CgroupMode int

const (
	// Unavailable: no cgroup filesystem is mounted at /sys/fs/cgroup.
	Unavailable CgroupMode = iota
	// Legacy: v1 hierarchies only.
	Legacy
	// Hybrid: v1 hierarchies plus a cgroup2 mount at
	// /sys/fs/cgroup/unified; FRE uses the v1 controllers.
	Hybrid
	// Unified: cgroup v2 only, mounted at /sys/fs/cgroup.
	Unified
)

func (m CgroupMode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return "unavailable"
}

// Stats is a cgroup's resource usage, shaped after containerd's cgroups
// v1 and v2 metrics so a shim can fill either protobuf from it. Values
// that the running cgroup version does not have are zero.
type Stats struct {
	Memory  MemoryStats
	CPU     CPUStats
	Pids    PidsStats
	IO      IOStats
	Hugetlb map[string]HugetlbStats // by page size, "2MB"
}

// MemoryStats: usage, limits and memory.stat.
type MemoryStats struct {
	Usage     MemoryEntry // v1 memory.*; v2 memory.current/max/peak
	Swap      MemoryEntry // v1 memory.memsw.* (memory+swap); v2 memory.swap.* (swap alone)
	Kernel    MemoryEntry // v1 only
	KernelTCP MemoryEntry // v1 only
	// Stat is memory.stat as it is: v1 keys (cache, rss, total_rss,
	// hierarchical_memory_limit...) or v2 keys (anon, file, pgfault...).
	Stat map[string]uint64
	// Low is the v2 memory.low / v1 soft limit; High is v2 memory.high.
	Low, High uint64
	// OOMKills is v2 memory.events oom_kill, v1 memory.oom_control oom_kill.
	OOMKills uint64
	// Events is v2 memory.events (low, high, max, oom, oom_kill).
	Events map[string]uint64
}

// MemoryEntry is one memory counter. A Limit of math.MaxUint64 is "max".
type MemoryEntry struct {
	Usage, Limit, Max, Failcnt uint64
}

// CPUStats is CPU time in nanoseconds.
type CPUStats struct {
	Usage      CPUUsage
	Throttling Throttling
}

// CPUUsage: total, per CPU (v1 cpuacct only), user and kernel.
type CPUUsage struct {
	Total, User, Kernel uint64
	PerCPU              []uint64
}

// Throttling is CFS bandwidth throttling.
type Throttling struct {
	Periods, ThrottledPeriods, ThrottledTime uint64
}

// PidsStats: current count and limit (0 for "max").
type PidsStats struct {
	Current, Limit uint64
}

// IOStats is blkio (v1, from the throttle files, which count every
// device) or io.stat (v2).
type IOStats struct {
	ServiceBytes []IOEntry // Op "Read", "Write", "Sync", "Async", "Discard", "Total"
	Serviced     []IOEntry
}

// IOEntry is one per-device counter.
type IOEntry struct {
	Major, Minor uint64
	Op           string
	Value        uint64
}

// HugetlbStats is one page size's usage.
type HugetlbStats struct {
	Usage, Max, Failcnt, Limit uint64
}

// Controllers are the controllers whose files Set(r) writes, so that a
// cgroup whose limits came only from Set needs no more than
// ResetOnly(Controllers(r)) to be like new.
func Controllers(r *specs.LinuxResources) []string {
	if r == nil {
		return nil
	}
	var out []string
	if r.Memory != nil {
		out = append(out, "memory")
	}
	if r.CPU != nil {
		out = append(out, "cpu", "cpuset")
	}
	if r.Pids != nil {
		out = append(out, "pids")
	}
	if r.BlockIO != nil {
		out = append(out, "blkio")
	}
	if len(r.HugepageLimits) > 0 {
		out = append(out, "hugetlb")
	}
	if len(r.Devices) > 0 {
		out = append(out, "devices")
	}
	return out
}
