package task

import (
	"sort"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"

	"github.com/fre-runtime/fre/cgroup"
)

// metricsV1 fills containerd's cgroup v1 metrics, as the runc shim returns
// them (kubelet and ctr task metrics decode this type).
func metricsV1(s *cgroup.Stats) *v1.Metrics {
	st := s.Memory.Stat
	mem := &v1.MemoryStat{
		Cache: st["cache"], RSS: st["rss"], RSSHuge: st["rss_huge"], MappedFile: st["mapped_file"],
		Dirty: st["dirty"], Writeback: st["writeback"], PgPgIn: st["pgpgin"], PgPgOut: st["pgpgout"],
		PgFault: st["pgfault"], PgMajFault: st["pgmajfault"], InactiveAnon: st["inactive_anon"],
		ActiveAnon: st["active_anon"], InactiveFile: st["inactive_file"], ActiveFile: st["active_file"],
		Unevictable: st["unevictable"], HierarchicalMemoryLimit: st["hierarchical_memory_limit"],
		HierarchicalSwapLimit: st["hierarchical_memsw_limit"], TotalCache: st["total_cache"],
		TotalRSS: st["total_rss"], TotalRSSHuge: st["total_rss_huge"], TotalMappedFile: st["total_mapped_file"],
		TotalDirty: st["total_dirty"], TotalWriteback: st["total_writeback"], TotalPgPgIn: st["total_pgpgin"],
		TotalPgPgOut: st["total_pgpgout"], TotalPgFault: st["total_pgfault"], TotalPgMajFault: st["total_pgmajfault"],
		TotalInactiveAnon: st["total_inactive_anon"], TotalActiveAnon: st["total_active_anon"],
		TotalInactiveFile: st["total_inactive_file"], TotalActiveFile: st["total_active_file"],
		TotalUnevictable: st["total_unevictable"],
		Usage:            memEntry(s.Memory.Usage), Swap: memEntry(s.Memory.Swap),
		Kernel: memEntry(s.Memory.Kernel), KernelTCP: memEntry(s.Memory.KernelTCP),
	}
	m := &v1.Metrics{
		Pids: &v1.PidsStat{Current: s.Pids.Current, Limit: s.Pids.Limit},
		CPU: &v1.CPUStat{
			Usage: &v1.CPUUsage{Total: s.CPU.Usage.Total, Kernel: s.CPU.Usage.Kernel, User: s.CPU.Usage.User,
				PerCPU: s.CPU.Usage.PerCPU},
			Throttling: &v1.Throttle{Periods: s.CPU.Throttling.Periods,
				ThrottledPeriods: s.CPU.Throttling.ThrottledPeriods, ThrottledTime: s.CPU.Throttling.ThrottledTime},
		},
		Memory:           mem,
		MemoryOomControl: &v1.MemoryOomControl{OomKill: s.Memory.OOMKills},
		Blkio: &v1.BlkIOStat{
			IoServiceBytesRecursive: blkio(s.IO.ServiceBytes),
			IoServicedRecursive:     blkio(s.IO.Serviced),
		},
	}
	for _, size := range sortedKeys(s.Hugetlb) {
		h := s.Hugetlb[size]
		m.Hugetlb = append(m.Hugetlb, &v1.HugetlbStat{Usage: h.Usage, Max: h.Max, Failcnt: h.Failcnt, Pagesize: size})
	}
	return m
}

func memEntry(e cgroup.MemoryEntry) *v1.MemoryEntry {
	return &v1.MemoryEntry{Limit: e.Limit, Usage: e.Usage, Max: e.Max, Failcnt: e.Failcnt}
}

func blkio(es []cgroup.IOEntry) []*v1.BlkIOEntry {
	out := make([]*v1.BlkIOEntry, 0, len(es))
	for _, e := range es {
		out = append(out, &v1.BlkIOEntry{Op: e.Op, Major: e.Major, Minor: e.Minor, Value: e.Value})
	}
	return out
}

// metricsV2 fills containerd's cgroup v2 metrics.
func metricsV2(s *cgroup.Stats) *v2.Metrics {
	st := s.Memory.Stat
	m := &v2.Metrics{
		Pids: &v2.PidsStat{Current: s.Pids.Current, Limit: s.Pids.Limit},
		CPU: &v2.CPUStat{
			UsageUsec: s.CPU.Usage.Total / 1000, UserUsec: s.CPU.Usage.User / 1000,
			SystemUsec: s.CPU.Usage.Kernel / 1000, NrPeriods: s.CPU.Throttling.Periods,
			NrThrottled: s.CPU.Throttling.ThrottledPeriods, ThrottledUsec: s.CPU.Throttling.ThrottledTime / 1000,
		},
		Memory: &v2.MemoryStat{
			Anon: st["anon"], File: st["file"], KernelStack: st["kernel_stack"], Slab: st["slab"],
			Sock: st["sock"], Shmem: st["shmem"], FileMapped: st["file_mapped"], FileDirty: st["file_dirty"],
			FileWriteback: st["file_writeback"], AnonThp: st["anon_thp"], InactiveAnon: st["inactive_anon"],
			ActiveAnon: st["active_anon"], InactiveFile: st["inactive_file"], ActiveFile: st["active_file"],
			Unevictable: st["unevictable"], SlabReclaimable: st["slab_reclaimable"],
			SlabUnreclaimable: st["slab_unreclaimable"], Pgfault: st["pgfault"], Pgmajfault: st["pgmajfault"],
			WorkingsetRefault: st["workingset_refault"], WorkingsetActivate: st["workingset_activate"],
			WorkingsetNodereclaim: st["workingset_nodereclaim"], Pgrefill: st["pgrefill"], Pgscan: st["pgscan"],
			Pgsteal: st["pgsteal"], Pgactivate: st["pgactivate"], Pgdeactivate: st["pgdeactivate"],
			Pglazyfree: st["pglazyfree"], Pglazyfreed: st["pglazyfreed"], ThpFaultAlloc: st["thp_fault_alloc"],
			ThpCollapseAlloc: st["thp_collapse_alloc"],
			Usage:            s.Memory.Usage.Usage, UsageLimit: s.Memory.Usage.Limit, MaxUsage: s.Memory.Usage.Max,
			SwapUsage: s.Memory.Swap.Usage, SwapLimit: s.Memory.Swap.Limit, SwapMaxUsage: s.Memory.Swap.Max,
		},
		MemoryEvents: &v2.MemoryEvents{
			Low: s.Memory.Events["low"], High: s.Memory.Events["high"], Max: s.Memory.Events["max"],
			Oom: s.Memory.Events["oom"], OomKill: s.Memory.Events["oom_kill"],
		},
		Io: &v2.IOStat{},
	}
	// io.stat: one entry per device, with the ops folded in.
	type dev struct{ major, minor uint64 }
	byDev := map[dev]*v2.IOEntry{}
	var order []dev
	entry := func(e cgroup.IOEntry) *v2.IOEntry {
		d := dev{e.Major, e.Minor}
		if byDev[d] == nil {
			byDev[d] = &v2.IOEntry{Major: e.Major, Minor: e.Minor}
			order = append(order, d)
		}
		return byDev[d]
	}
	for _, e := range s.IO.ServiceBytes {
		switch e.Op {
		case "Read":
			entry(e).Rbytes = e.Value
		case "Write":
			entry(e).Wbytes = e.Value
		}
	}
	for _, e := range s.IO.Serviced {
		switch e.Op {
		case "Read":
			entry(e).Rios = e.Value
		case "Write":
			entry(e).Wios = e.Value
		}
	}
	for _, d := range order {
		m.Io.Usage = append(m.Io.Usage, byDev[d])
	}
	for _, size := range sortedKeys(s.Hugetlb) {
		h := s.Hugetlb[size]
		m.Hugetlb = append(m.Hugetlb, &v2.HugeTlbStat{Current: h.Usage, Max: h.Max, Failcnt: h.Failcnt, Pagesize: size})
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
