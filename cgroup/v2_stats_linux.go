package cgroup

import (
	"os"
	"strconv"
	"strings"
)

func (m *v2) Stats() (*Stats, error) {
	var r statReader
	d := m.dir()
	st := &Stats{}
	ev := r.kv(d, "memory.events")
	st.Memory.Usage = MemoryEntry{Usage: r.uint(d, "memory.current"), Limit: r.uint(d, "memory.max"), Max: r.uint(d, "memory.peak"), Failcnt: ev["max"]}
	sev := r.kv(d, "memory.swap.events")
	st.Memory.Swap = MemoryEntry{Usage: r.uint(d, "memory.swap.current"), Limit: r.uint(d, "memory.swap.max"), Max: r.uint(d, "memory.swap.peak"), Failcnt: sev["max"]}
	st.Memory.Stat = r.kv(d, "memory.stat")
	st.Memory.Low = r.uint(d, "memory.low")
	st.Memory.High = r.uint(d, "memory.high")
	st.Memory.Events = ev
	st.Memory.OOMKills = ev["oom_kill"]

	cs := r.kv(d, "cpu.stat")
	st.CPU.Usage = CPUUsage{Total: cs["usage_usec"] * 1000, User: cs["user_usec"] * 1000, Kernel: cs["system_usec"] * 1000}
	st.CPU.Throttling = Throttling{Periods: cs["nr_periods"], ThrottledPeriods: cs["nr_throttled"], ThrottledTime: cs["throttled_usec"] * 1000}

	st.Pids.Current = r.uint(d, "pids.current")
	if l := r.uint(d, "pids.max"); l != ^uint64(0) {
		st.Pids.Limit = l
	}
	st.IO = parseIOStat(r.str(d, "io.stat"))

	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		size, ok := strings.CutPrefix(e.Name(), "hugetlb.")
		if !ok || !strings.HasSuffix(size, ".max") || strings.Count(size, ".") != 1 {
			continue
		}
		size = strings.TrimSuffix(size, ".max")
		if st.Hugetlb == nil {
			st.Hugetlb = map[string]HugetlbStats{}
		}
		p := "hugetlb." + size + "."
		st.Hugetlb[size] = HugetlbStats{Usage: r.uint(d, p+"current"), Limit: r.uint(d, p+"max"), Failcnt: r.kv(d, p+"events")["max"]}
	}
	return st, r.err
}

// parseIOStat reads "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func parseIOStat(s string) IOStats {
	var io IOStats
	ops := map[string]struct {
		bytes bool
		op    string
	}{
		"rbytes": {true, "Read"}, "wbytes": {true, "Write"}, "dbytes": {true, "Discard"},
		"rios": {false, "Read"}, "wios": {false, "Write"}, "dios": {false, "Discard"},
	}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		var e IOEntry
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			o, ok := ops[k]
			if !ok {
				continue
			}
			e.Op = o.op
			e.Value, _ = strconv.ParseUint(v, 10, 64)
			if o.bytes {
				io.ServiceBytes = append(io.ServiceBytes, e)
			} else {
				io.Serviced = append(io.Serviced, e)
			}
		}
	}
	return io
}
