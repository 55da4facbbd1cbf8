package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/sysmon"
)

func init() {
	register(&command{name: "update", usage: "<container-id>", short: "update container resource constraints", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var resources, memory, memorySwap, memoryReservation, cpuShares, cpuQuota, cpuPeriod, cpuRtPeriod, cpuRtRuntime, cpusetCpus, cpusetMems, pidsLimit, blkioWeight string
			stringFlag(fs, &resources, "resources,r", "", "path to the file containing the resources to update or '-' to read from the standard input")
			fs.StringVar(&memory, "memory", "", "memory limit (in bytes)")
			fs.StringVar(&memorySwap, "memory-swap", "", "total memory usage (memory + swap); set '-1' to enable unlimited swap")
			fs.StringVar(&memoryReservation, "memory-reservation", "", "memory reservation or soft_limit (in bytes)")
			stringFlag(fs, &cpuShares, "cpu-share,cpu-shares", "", "CPU shares (relative weight vs. other containers)")
			fs.StringVar(&cpuRtPeriod, "cpu-rt-period", "", "CPU realtime period to be used for hardcapping (in usecs)")
			fs.StringVar(&cpuRtRuntime, "cpu-rt-runtime", "", "CPU realtime hardcap limit (in usecs)")
			fs.StringVar(&cpuQuota, "cpu-quota", "", "CPU CFS hardcap limit (in usecs)")
			fs.StringVar(&cpuPeriod, "cpu-period", "", "CPU CFS period to be used for hardcapping (in usecs)")
			fs.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPU(s) to use")
			fs.StringVar(&cpusetMems, "cpuset-mems", "", "memory node(s) to use")
			fs.StringVar(&pidsLimit, "pids-limit", "", "maximum number of pids allowed in the container")
			fs.StringVar(&blkioWeight, "blkio-weight", "", "specifies per cgroup weight, range is from 10 to 1000")
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				if c.Cgroup() == nil {
					return fmt.Errorf("update %s: the container has no cgroup", args[0])
				}
				r := &specs.LinuxResources{}
				if resources != "" {
					f := os.Stdin
					if resources != "-" {
						if f, err = os.Open(resources); err != nil {
							return err
						}
						defer f.Close()
					}
					if err := json.NewDecoder(f).Decode(r); err != nil {
						return fmt.Errorf("resources: %w", err)
					}
				}
				i64 := func(s, name string, dst **int64) error {
					if s == "" {
						return nil
					}
					v, err := strconv.ParseInt(s, 10, 64)
					if err != nil {
						return fmt.Errorf("--%s %q: %w", name, s, err)
					}
					*dst = &v
					return nil
				}
				u64 := func(s, name string, dst **uint64) error {
					if s == "" {
						return nil
					}
					v, err := strconv.ParseUint(s, 10, 64)
					if err != nil {
						return fmt.Errorf("--%s %q: %w", name, s, err)
					}
					*dst = &v
					return nil
				}
				if r.Memory == nil {
					r.Memory = &specs.LinuxMemory{}
				}
				if r.CPU == nil {
					r.CPU = &specs.LinuxCPU{}
				}
				// Memory sizes as runc reads them (go-units' RAMInBytes):
				// 100M, 1g, 512k, 1.5GiB, -1.
				mem := func(s, name string, dst **int64) error {
					if s == "" {
						return nil
					}
					v, err := ramInBytes(s)
					if err != nil {
						return fmt.Errorf("invalid value for %s: %w", name, err)
					}
					*dst = &v
					return nil
				}
				for _, err := range []error{
					mem(memory, "memory", &r.Memory.Limit), mem(memorySwap, "memory-swap", &r.Memory.Swap),
					mem(memoryReservation, "memory-reservation", &r.Memory.Reservation),
					u64(cpuShares, "cpu-shares", &r.CPU.Shares), i64(cpuQuota, "cpu-quota", &r.CPU.Quota),
					u64(cpuPeriod, "cpu-period", &r.CPU.Period),
					u64(cpuRtPeriod, "cpu-rt-period", &r.CPU.RealtimePeriod), i64(cpuRtRuntime, "cpu-rt-runtime", &r.CPU.RealtimeRuntime),
				} {
					if err != nil {
						return err
					}
				}
				if cpusetCpus != "" {
					r.CPU.Cpus = cpusetCpus
				}
				if cpusetMems != "" {
					r.CPU.Mems = cpusetMems
				}
				if pidsLimit != "" {
					v, err := strconv.ParseInt(pidsLimit, 10, 64)
					if err != nil {
						return fmt.Errorf("--pids-limit %q: %w", pidsLimit, err)
					}
					r.Pids = &specs.LinuxPids{Limit: &v}
				}
				if blkioWeight != "" {
					v, err := strconv.ParseUint(blkioWeight, 10, 16)
					if err != nil {
						return fmt.Errorf("--blkio-weight %q: %w", blkioWeight, err)
					}
					w := uint16(v)
					r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
				}
				return c.Update(r)
			}
		}})
	register(&command{name: "events", usage: "<container-id>", short: "display container events such as OOM notifications, cpu, memory, and IO usage statistics", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var stats bool
			var interval time.Duration
			fs.BoolVar(&stats, "stats", false, "display the container's stats then exit")
			fs.DurationVar(&interval, "interval", 5*time.Second, "set the stats collection interval")
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				cg := c.Cgroup()
				if cg == nil {
					return fmt.Errorf("events %s: the container has no cgroup", args[0])
				}
				sysmon.Normal() // a long-lived loop of timers (see main)
				enc := json.NewEncoder(os.Stdout)
				var lastOOM uint64
				if n, err := cg.OOMKillCount(); err == nil {
					lastOOM = n
				}
				for {
					s, err := cg.Stats()
					if err != nil {
						return err
					}
					if err := enc.Encode(event{Type: "stats", ID: args[0], Data: runcStats(s)}); err != nil {
						return err
					}
					if stats {
						return nil
					}
					deadline := time.Now().Add(interval)
					for time.Now().Before(deadline) {
						if c.Status().String() == "stopped" {
							return nil
						}
						if n, err := cg.OOMKillCount(); err == nil && n > lastOOM {
							lastOOM = n
							enc.Encode(event{Type: "oom", ID: args[0]})
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		}})
}

// event is runc's events output.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

// runcStats shapes cgroup stats as runc's `events --stats` prints them.
func runcStats(s *cgroup.Stats) map[string]any {
	mem := func(e cgroup.MemoryEntry) map[string]uint64 {
		return map[string]uint64{"limit": e.Limit, "usage": e.Usage, "max": e.Max, "failcnt": e.Failcnt}
	}
	io := func(es []cgroup.IOEntry) []map[string]any {
		out := []map[string]any{}
		for _, e := range es {
			out = append(out, map[string]any{"major": e.Major, "minor": e.Minor, "op": e.Op, "value": e.Value})
		}
		return out
	}
	hugetlb := map[string]any{}
	for k, v := range s.Hugetlb {
		hugetlb[k] = map[string]uint64{"usage": v.Usage, "max": v.Max, "failcnt": v.Failcnt}
	}
	return map[string]any{
		"cpu": map[string]any{
			"usage":      map[string]any{"total": s.CPU.Usage.Total, "percpu": s.CPU.Usage.PerCPU, "kernel": s.CPU.Usage.Kernel, "user": s.CPU.Usage.User},
			"throttling": map[string]uint64{"periods": s.CPU.Throttling.Periods, "throttledPeriods": s.CPU.Throttling.ThrottledPeriods, "throttledTime": s.CPU.Throttling.ThrottledTime},
		},
		"memory": map[string]any{
			"usage": mem(s.Memory.Usage), "swap": mem(s.Memory.Swap), "kernel": mem(s.Memory.Kernel),
			"kernelTCP": mem(s.Memory.KernelTCP), "raw": s.Memory.Stat,
		},
		"pids":    map[string]uint64{"current": s.Pids.Current, "limit": s.Pids.Limit},
		"blkio":   map[string]any{"ioServiceBytesRecursive": io(s.IO.ServiceBytes), "ioServicedRecursive": io(s.IO.Serviced)},
		"hugetlb": hugetlb,
	}
}

// ramInBytes is go-units' RAMInBytes, which runc's update uses: a number
// (a fraction allowed) with an optional binary unit, k/m/g/t/p, then an
// optional "i" and "b" in either case ("100M", "1.5GiB", "512kb"); -1
// means unlimited.
func ramInBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	if num == "" || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("invalid size: '%s'", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size: '%s'", s)
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size: '%s'", s)
	}
	return int64(f * mult), nil
}
