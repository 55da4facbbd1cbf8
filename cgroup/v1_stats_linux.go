package cgroup

import (
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of cpuacct.stat (USER_HZ is 100 on every Linux ABI).
const userHZ = 100

// statReader reads optional statistics files: a missing file leaves its
// value zero; the first other error is kept.
type statReader struct{ err error }

func (s *statReader) uint(dir, name string) uint64 {
	if dir == "" || !exists(dir, name) {
		return 0
	}
	v, err := readUint(dir, name)
	if err != nil && s.err == nil {
		s.err = err
	}
	return v
}

func (s *statReader) kv(dir, name string) map[string]uint64 {
	if dir == "" || !exists(dir, name) {
		return nil
	}
	m, err := readKV(dir, name)
	if err != nil && s.err == nil {
		s.err = err
	}
	return m
}

func (s *statReader) str(dir, name string) string {
	if dir == "" || !exists(dir, name) {
		return ""
	}
	v, err := readFile(dir, name)
	if err != nil && s.err == nil {
		s.err = err
	}
	return v
}

func (s *statReader) memEntry(dir, prefix string) MemoryEntry {
	return MemoryEntry{
		Usage:   s.uint(dir, prefix+"usage_in_bytes"),
		Limit:   s.uint(dir, prefix+"limit_in_bytes"),
		Max:     s.uint(dir, prefix+"max_usage_in_bytes"),
		Failcnt: s.uint(dir, prefix+"failcnt"),
	}
}

func (m *v1) Stats() (*Stats, error) {
	var r statReader
	st := &Stats{}
	if d := m.dir("memory"); d != "" {
		st.Memory.Usage = r.memEntry(d, "memory.")
		st.Memory.Swap = r.memEntry(d, "memory.memsw.")
		st.Memory.Kernel = r.memEntry(d, "memory.kmem.")
		st.Memory.KernelTCP = r.memEntry(d, "memory.kmem.tcp.")
		st.Memory.Stat = r.kv(d, "memory.stat")
		st.Memory.Low = r.uint(d, "memory.soft_limit_in_bytes")
		st.Memory.OOMKills = r.kv(d, "memory.oom_control")["oom_kill"]
	}
	if d := m.dir("cpuacct"); d != "" {
		st.CPU.Usage.Total = r.uint(d, "cpuacct.usage")
		for _, f := range strings.Fields(r.str(d, "cpuacct.usage_percpu")) {
			v, _ := strconv.ParseUint(f, 10, 64)
			st.CPU.Usage.PerCPU = append(st.CPU.Usage.PerCPU, v)
		}
		kv := r.kv(d, "cpuacct.stat")
		st.CPU.Usage.User = kv["user"] * (1e9 / userHZ)
		st.CPU.Usage.Kernel = kv["system"] * (1e9 / userHZ)
	}
	if d := m.dir("cpu"); d != "" {
		kv := r.kv(d, "cpu.stat")
		st.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
	}
	if d := m.dir("pids"); d != "" {
		st.Pids.Current = r.uint(d, "pids.current")
		if l := r.uint(d, "pids.max"); l != ^uint64(0) {
			st.Pids.Limit = l
		}
	}
	if d := m.dir("blkio"); d != "" {
		st.IO.ServiceBytes = parseBlkio(r.str(d, recursiveOr(d, "blkio.throttle.io_service_bytes")))
		st.IO.Serviced = parseBlkio(r.str(d, recursiveOr(d, "blkio.throttle.io_serviced")))
	}
	if d := m.dir("hugetlb"); d != "" {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			size, ok := strings.CutPrefix(e.Name(), "hugetlb.")
			if !ok || !strings.HasSuffix(size, ".limit_in_bytes") || strings.Contains(size, ".rsvd.") {
				continue
			}
			size = strings.TrimSuffix(size, ".limit_in_bytes")
			if st.Hugetlb == nil {
				st.Hugetlb = map[string]HugetlbStats{}
			}
			p := "hugetlb." + size + "."
			st.Hugetlb[size] = HugetlbStats{
				Usage: r.uint(d, p+"usage_in_bytes"), Max: r.uint(d, p+"max_usage_in_bytes"),
				Failcnt: r.uint(d, p+"failcnt"), Limit: r.uint(d, p+"limit_in_bytes"),
			}
		}
	}
	return st, r.err
}

func recursiveOr(d, f string) string {
	if exists(d, f+"_recursive") {
		return f + "_recursive"
	}
	return f
}

// parseBlkio reads "8:0 Read 4096" lines; the closing "Total N" is
// dropped (the shim's protobufs carry per-device entries only).
func parseBlkio(s string) []IOEntry {
	var out []IOEntry
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := IOEntry{Op: f[1]}
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		e.Value, _ = strconv.ParseUint(f[2], 10, 64)
		out = append(out, e)
	}
	return out
}
