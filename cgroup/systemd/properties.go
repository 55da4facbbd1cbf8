package systemd

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
)

// The systemd versions that gained the properties used here.
const (
	versionDeviceNumbers = 240 // DeviceAllow=char-MAJOR and /dev/char/M:m without stat
	versionQuotaPeriod   = 242 // CPUQuotaPeriodUSec
	versionCpuset        = 244 // AllowedCPUs, AllowedMemoryNodes
	versionCPUIdle       = 252 // CPUWeight=0 (idle)
	versionCollectMode   = 236 // CollectMode
)

// defaultQuotaPeriod is the kernel's CPU quota period (100 ms) on v1 and
// v2, assumed when a quota comes without one.
const defaultQuotaPeriod = 100000

// infinity is systemd's "no limit" for the uint64 properties
// (USEC_INFINITY, CGROUP_LIMIT_MAX).
const infinity = uint64(math.MaxUint64)

// Description is the unit description FRE gives a container's unit
// (runc's is "libcontainer container NAME").
const Description = "fre container"

// Properties are the unit properties for the resources systemd owns, as
// runc sets them for cgroup v2 (unified) and v1, plus the fixed ones runc
// sets on a scope: Delegate, the accounting switches, DefaultDependencies
// and Description; and, unlike runc, CollectMode=inactive-or-failed (a
// scope that failed, an OOM kill, is collected as a stopped one is: the
// delete need not reset it, see Conn.StopScope). Resources systemd has no property for are not in the
// result: the caller writes them to cgroupfs. version is systemd's
// version number (Conn.Version); properties newer than it are left out.
//
//   - memory: MemoryMax (v1: MemoryLimit), MemoryLow (v2, the
//     reservation), MemorySwapMax (v2: swap alone, from OCI's memory+swap
//     as runc converts it);
//   - pids: TasksMax (negative: infinity; 0: 1, which systemd wants);
//   - cpu: CPUWeight (v2: shares through cgroup.SharesToWeight; 0 for
//     cpu.idle 1 from systemd 252) or CPUShares (v1); CPUQuotaPerSecUSec
//     and, from systemd 242, CPUQuotaPeriodUSec; AllowedCPUs and
//     AllowedMemoryNodes as bitmasks from systemd 244;
//   - blkio: IOWeight (v2, blkio weight through cgroup's
//     BlkioWeightToIOWeight; runc leaves it to cgroupfs) or BlockIOWeight (v1);
//   - devices: DevicePolicy=strict and DeviceAllow entries (devices.go);
//   - unified (v2): the keys runc knows (cpu.weight, cpu.max, cpu.idle,
//     cpuset.*, memory.*, pids.max), after the fields above as runc
//     orders them.
//
// The resource properties go with StartTransientUnit, so the limits hold
// from the unit's start; runc sets them with a second call. Unlike runc,
// a CPU quota that systemd's 10 ms granularity rounds up is not written
// back into r: the caller's cgroupfs write keeps the exact value.
func Properties(r *specs.LinuxResources, unified bool, version int) ([]sd.Property, error) {
	res, err := ResourceProperties(r, unified, version)
	if err != nil {
		return nil, err
	}
	return append(fixedProperties(unified, version), res...), nil
}

// fixedProperties are the properties a scope gets once, at its start.
func fixedProperties(unified bool, version int) []sd.Property {
	props := make([]sd.Property, 0, 16)
	props = append(props,
		sd.PropDescription(Description),
		prop("Delegate", true),
		prop("MemoryAccounting", true),
		prop("CPUAccounting", true),
	)
	if unified {
		props = append(props, prop("IOAccounting", true))
	} else {
		props = append(props, prop("BlockIOAccounting", true))
	}
	props = append(props,
		prop("TasksAccounting", true),
		prop("DefaultDependencies", false),
	)
	if version >= versionCollectMode {
		props = append(props, prop("CollectMode", "inactive-or-failed"))
	}
	return props
}

// ResourceProperties are Properties less the fixed ones: the resources
// alone, what an update sets.
func ResourceProperties(r *specs.LinuxResources, unified bool, version int) ([]sd.Property, error) {
	if r == nil {
		return nil, nil
	}
	props, err := deviceProperties(r.Devices, version)
	if err != nil {
		return nil, err
	}

	if m := r.Memory; m != nil {
		if m.Limit != nil && *m.Limit != 0 {
			name := "MemoryMax"
			if !unified {
				name = "MemoryLimit"
			}
			props = append(props, prop(name, limitValue(*m.Limit)))
		}
		if unified {
			if m.Reservation != nil && *m.Reservation != 0 {
				props = append(props, prop("MemoryLow", limitValue(*m.Reservation)))
			}
			var limit, swap int64
			if m.Limit != nil {
				limit = *m.Limit
			}
			if m.Swap != nil {
				swap = *m.Swap
			}
			v, err := swapToV2(swap, limit)
			if err != nil {
				return nil, fmt.Errorf("%w: linux.resources.memory.swap: %v", ErrInvalidResources, err)
			}
			if v != 0 {
				props = append(props, prop("MemorySwapMax", limitValue(v)))
			}
		}
	}

	if c := r.CPU; c != nil {
		idle := unified && c.Idle != nil && *c.Idle == 1 && version >= versionCPUIdle
		if idle {
			// systemd turns CPUWeight=0 into cpu.idle 1 (runc 1.2 on);
			// a weight as well would undo it, so shares give none.
			props = append(props, prop("CPUWeight", uint64(0)))
		}
		if c.Shares != nil && *c.Shares != 0 {
			switch {
			case !unified:
				props = append(props, prop("CPUShares", *c.Shares))
			case !idle:
				props = append(props, prop("CPUWeight", cgroup.SharesToWeight(*c.Shares)))
			}
		}
		var quota int64
		var period uint64
		if c.Quota != nil {
			quota = *c.Quota
		}
		if c.Period != nil {
			period = *c.Period
		}
		props = appendQuota(props, quota, period, version)
		if props, err = appendCpuset(props, c.Cpus, c.Mems, version); err != nil {
			return nil, err
		}
	}

	if p := r.Pids; p != nil {
		var n uint64
		switch limit := pidsLimit(p); {
		case limit < 0:
			n = infinity
		case limit == 0:
			// systemd refuses TasksMax=0 (runc 1.2 on; 1.1.5 set
			// nothing for a limit <= 0).
			n = 1
		default:
			n = uint64(limit)
		}
		props = append(props, prop("TasksMax", n))
	}

	if b := r.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 {
		if unified {
			props = append(props, prop("IOWeight", cgroup.BlkioWeightToIOWeight(uint64(*b.Weight))))
		} else {
			props = append(props, prop("BlockIOWeight", uint64(*b.Weight)))
		}
	}

	if unified && len(r.Unified) > 0 {
		if props, err = appendUnified(props, r.Unified, version); err != nil {
			return nil, err
		}
	}
	return props, nil
}

// pidsLimit reads linux.resources.pids.limit (nil: no limit).
func pidsLimit(p *specs.LinuxPids) int64 {
	if p.Limit == nil {
		return -1
	}
	return *p.Limit
}

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: godbus.MakeVariant(v)}
}

// limitValue is a byte limit for systemd: -1 (or any negative) is
// infinity, as uint64(-1) is in runc.
func limitValue(v int64) uint64 {
	if v < 0 {
		return infinity
	}
	return uint64(v)
}

// swapToV2 converts OCI's memory.swap (memory+swap) to cgroup v2's swap
// alone, as runc's ConvertMemorySwapToCgroupV2Value does: 0 is "not set",
// -1 "max". It differs from cgroup.SwapToV2 where runc does: with an
// unlimited memory (-1) the swap value is taken as it is.
func swapToV2(swap, limit int64) (int64, error) {
	switch {
	case limit == -1 && swap == 0:
		// As on v1: unlimited memory with swap unset is both unlimited.
		return -1, nil
	case swap == -1, swap == 0:
		return swap, nil
	case limit == -1:
		return swap, nil
	case limit == 0:
		return 0, fmt.Errorf("swap %d without a memory limit", swap)
	case limit < 0:
		return 0, fmt.Errorf("memory limit %d", limit)
	case swap < limit:
		return 0, fmt.Errorf("memory+swap %d below the memory limit %d", swap, limit)
	}
	return swap - limit, nil
}

// appendQuota adds CPUQuotaPerSecUSec (and CPUQuotaPeriodUSec from systemd
// 242) as runc's addCPUQuota does: a quota is converted to microseconds
// per second and rounded up to systemd's 10 ms; a period alone, or a
// quota <= 0 with a period, is an infinite quota.
func appendQuota(props []sd.Property, quota int64, period uint64, version int) []sd.Property {
	if period != 0 && version >= versionQuotaPeriod {
		props = append(props, prop("CPUQuotaPeriodUSec", period))
	}
	if quota == 0 && period == 0 {
		return props
	}
	perSec := infinity
	if quota > 0 {
		if period == 0 {
			period = defaultQuotaPeriod
		}
		perSec = uint64(quota) * 1000000 / period
		if perSec%10000 != 0 {
			perSec = (perSec/10000 + 1) * 10000
		}
	}
	return append(props, prop("CPUQuotaPerSecUSec", perSec))
}

// appendCpuset adds AllowedCPUs and AllowedMemoryNodes (systemd 244 on;
// before, cgroupfs alone has them).
func appendCpuset(props []sd.Property, cpus, mems string, version int) ([]sd.Property, error) {
	if version < versionCpuset {
		return props, nil
	}
	for _, s := range []struct{ name, field, v string }{
		{"AllowedCPUs", "linux.resources.cpu.cpus", cpus},
		{"AllowedMemoryNodes", "linux.resources.cpu.mems", mems},
	} {
		if s.v == "" {
			continue
		}
		bits, err := RangeToBits(s.v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrInvalidResources, s.field, s.v, err)
		}
		props = append(props, prop(s.name, bits))
	}
	return props, nil
}

// maxCPU bounds the CPU and node numbers RangeToBits takes (the kernel's
// NR_CPUS is at most 8192), so a typo cannot ask for a huge mask.
const maxCPU = 1 << 16

// RangeToBits turns a cpuset list ("0-3,8", the format of cpuset.cpus) into
// the byte array systemd takes for AllowedCPUs and AllowedMemoryNodes: bit
// n%8 of byte n/8 is CPU n, and the array ends at the highest CPU's byte
// (what runc builds, through a big.Int reversed). An empty list is an
// error, as in runc: systemd would read it as "no restriction".
func RangeToBits(list string) ([]byte, error) {
	var bits []byte
	set := func(n uint64) {
		for uint64(len(bits)) <= n/8 {
			bits = append(bits, 0)
		}
		bits[n/8] |= 1 << (n % 8)
	}
	for _, r := range strings.Split(list, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue // as runc: extra commas are allowed
		}
		lo, hi, isRange := strings.Cut(r, "-")
		start, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad element %q", r)
		}
		end := start
		if isRange {
			if end, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, fmt.Errorf("bad element %q", r)
			}
		}
		if start > end {
			return nil, fmt.Errorf("bad range %q", r)
		}
		if end >= maxCPU {
			return nil, fmt.Errorf("%d above %d", end, maxCPU-1)
		}
		for n := start; n <= end; n++ {
			set(n)
		}
	}
	if len(bits) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return bits, nil
}

// appendUnified converts the linux.resources.unified keys runc converts
// (runc's unifiedResToSystemdProps); the others are the caller's, for
// cgroupfs. Keys are taken in sorted order, so the result is stable.
func appendUnified(props []sd.Property, u map[string]string, version int) ([]sd.Property, error) {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	idle := strings.TrimSpace(u["cpu.idle"]) == "1" && version >= versionCPUIdle
	for _, k := range keys {
		v := strings.TrimSpace(u[k])
		bad := func(err error) error {
			return fmt.Errorf("%w: linux.resources.unified[%q] = %q: %v", ErrInvalidResources, k, u[k], err)
		}
		switch k {
		case "cpu.idle":
			if idle {
				props = append(props, prop("CPUWeight", uint64(0)))
			}
		case "cpu.weight":
			if idle {
				continue // as runc: cpu.idle wins
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, bad(err)
			}
			props = append(props, prop("CPUWeight", n))
		case "cpu.max":
			f := strings.Fields(v)
			if len(f) < 1 || len(f) > 2 {
				return nil, bad(fmt.Errorf("want \"QUOTA [PERIOD]\""))
			}
			var quota int64
			period := uint64(defaultQuotaPeriod)
			var err error
			if f[0] != "max" {
				if quota, err = strconv.ParseInt(f[0], 10, 64); err != nil {
					return nil, bad(err)
				}
			}
			if len(f) == 2 {
				if period, err = strconv.ParseUint(f[1], 10, 64); err != nil {
					return nil, bad(err)
				}
			}
			props = appendQuota(props, quota, period, version)
		case "cpuset.cpus", "cpuset.mems":
			bits, err := RangeToBits(v)
			if err != nil {
				return nil, bad(err)
			}
			if version >= versionCpuset {
				name := "AllowedCPUs"
				if k == "cpuset.mems" {
					name = "AllowedMemoryNodes"
				}
				props = append(props, prop(name, bits))
			}
		case "memory.high", "memory.low", "memory.min", "memory.max", "memory.swap.max":
			n := infinity
			if v != "max" {
				var err error
				if n, err = strconv.ParseUint(v, 10, 64); err != nil {
					return nil, bad(err)
				}
			}
			names := map[string]string{
				"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
				"memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax",
			}
			props = append(props, prop(names[k], n))
		case "pids.max":
			n := infinity
			if v != "max" {
				var err error
				if n, err = strconv.ParseUint(v, 10, 64); err != nil {
					return nil, bad(err)
				}
			}
			props = append(props, prop("TasksMax", max(n, 1)))
		}
	}
	return props, nil
}
