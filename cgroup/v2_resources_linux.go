package cgroup

import (
	"errors"
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup/devfilter"
)

// write writes a control file; a missing file means the controller is not
// enabled for this cgroup, said as ErrNotSupported.
//
// A missing file may also be a controller another process is enabling in
// the parent right now: the kernel sets the parent's subtree_control
// before it makes the children's files (both under cgroup_mutex), so a
// create that read the controller as enabled in between (enableSubtree had
// nothing to add) and wrote a limit found no file: 1 container in some 500
// of make bench-v2's bursts of 256 under one new parent. Asking the parent
// for the controller again waits for that mutex, and is a no-op when it is
// enabled; then the write is tried once more. Only for a cgroup Create
// made (which enabled every level's controllers already): an existing
// cgroup's parent keeps the delegation it was given.
func (m *v2) write(name, v string) error {
	err := writeFile(m.dir(), name, v)
	if err != nil && errors.Is(err, unix.ENOENT) && m.made && m.path != "/" {
		if ctrl, _, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(ctrl, "cgroup") {
			parent := m.mount + m.path[:strings.LastIndexByte(m.path, '/')]
			if writeFile(parent, "cgroup.subtree_control", "+"+ctrl) == nil {
				err = writeFile(m.dir(), name, v)
			}
		}
	}
	if err != nil && errors.Is(err, unix.ENOENT) {
		// No such file: the cgroup has no such controller, as its parent
		// does not delegate it (not in the parent's cgroup.subtree_control).
		return &Error{Op: "write", Path: m.dir() + "/" + name + " (controller not delegated: not in the parent's cgroup.subtree_control)", Value: v, Err: ErrNotSupported}
	}
	return err
}

func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return itoa(v)
}

// The device filter; the fake-cgroupfs tests, whose directories are not
// cgroups, replace it.
var (
	devicesApply    = devfilter.Apply
	devicesApplyNew = devfilter.ApplyNew
	devicesRemove   = devfilter.Remove
)

// Set applies r. Device rules become FRE's eBPF device program on the
// cgroup (package devfilter), replacing the one an earlier Set attached.
func (m *v2) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if r.Network != nil && (r.Network.ClassID != nil || len(r.Network.Priorities) > 0) {
		return &Error{Op: "set network", Path: m.dir(), Err: ErrNotSupported}
	}
	if len(r.Rdma) > 0 {
		return &Error{Op: "set rdma", Path: m.dir(), Err: ErrNotSupported}
	}
	if r.Memory != nil {
		if err := m.setMemory(r.Memory); err != nil {
			return field("linux.resources.memory", err)
		}
	}
	if r.CPU != nil {
		if err := m.setCPU(r.CPU); err != nil {
			return field("linux.resources.cpu", err)
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit != 0 {
		if err := m.write("pids.max", pidsMax(*r.Pids.Limit)); err != nil {
			return field("linux.resources.pids", err)
		}
	}
	if r.BlockIO != nil {
		if err := m.setIO(r.BlockIO); err != nil {
			return field("linux.resources.blockIO", err)
		}
	}
	for _, h := range r.HugepageLimits {
		if err := m.write("hugetlb."+h.Pagesize+".max", utoa(h.Limit)); err != nil {
			return field("linux.resources.hugepageLimits", err)
		}
		if f := "hugetlb." + h.Pagesize + ".rsvd.max"; exists(m.dir(), f) {
			if err := m.write(f, utoa(h.Limit)); err != nil {
				return field("linux.resources.hugepageLimits", err)
			}
		}
	}
	if len(r.Devices) > 0 {
		if err := m.setDevices(r.Devices); err != nil {
			return field("linux.resources.devices", err)
		}
	}
	for k, v := range r.Unified {
		if strings.Contains(k, "/") || k == "" || strings.HasPrefix(k, ".") {
			return &Error{Op: "set unified", Path: m.dir() + "/" + k, Err: ErrInvalidResources}
		}
		if err := m.write(k, v); err != nil {
			return field("linux.resources.unified["+k+"]", err)
		}
	}
	return nil
}

// field names the spec's field a failed write came from.
func field(name string, err error) error {
	return fmt.Errorf("%s: %w", name, err)
}

func (m *v2) setDevices(rules []specs.LinuxDeviceCgroup) error {
	apply := devicesApply
	if m.fresh {
		apply = devicesApplyNew // nothing of ours to replace: no query
	}
	err := apply(m.dir(), rules)
	switch {
	case err == nil:
		m.fresh = false
		return nil
	case errors.Is(err, devfilter.ErrInvalidRule):
		err = errors.Join(ErrInvalidResources, err)
	case errors.Is(err, unix.EPERM) && inUserNS():
		// bpf(2) is not for user namespaces; runc skips the filter there
		// too (no device node can be made in one).
		return nil
	}
	return &Error{Op: "set devices", Path: m.dir(), Err: err}
}

// inUserNS reports whether this process is in a user namespace other than
// the initial one (which maps every uid to itself).
func inUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "4294967295"
}

func (m *v2) setMemory(mem *specs.LinuxMemory) error {
	limit := int64(0)
	if mem.Limit != nil {
		limit = *mem.Limit
	}
	swap := int64(0)
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	sv, setSwap, err := SwapToV2(swap, limit)
	if err != nil {
		return &Error{Op: "set memory", Path: m.dir(), Value: "swap " + itoa(swap) + ", limit " + itoa(limit), Err: err}
	}
	if setSwap && mem.Limit == nil && swap == 0 {
		setSwap = false // limit unset: nothing was asked about swap
	}
	if setSwap {
		if exists(m.dir(), "memory.swap.max") {
			if err := m.write("memory.swap.max", maxOr(sv)); err != nil {
				return err
			}
		} else if sv != -1 {
			return &Error{Op: "set memory swap", Path: m.dir() + "/memory.swap.max (swap accounting is off)", Err: ErrNotSupported}
		}
	}
	if mem.Limit != nil && *mem.Limit != 0 {
		if err := m.write("memory.max", maxOr(*mem.Limit)); err != nil {
			return err
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := m.write("memory.low", maxOr(*mem.Reservation)); err != nil {
			return err
		}
	}
	// Kernel, KernelTCP, Swappiness, DisableOOMKiller and UseHierarchy have
	// no v2 file; runc ignores them as well.
	return nil
}

func (m *v2) setCPU(c *specs.LinuxCPU) error {
	if (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) || (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) {
		return &Error{Op: "set cpu realtime", Path: m.dir(), Err: ErrNotSupported}
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := m.write("cpu.weight", utoa(SharesToWeight(*c.Shares))); err != nil {
			return err
		}
	}
	quota := int64(0)
	if c.Quota != nil {
		quota = *c.Quota
	}
	period := uint64(0)
	if c.Period != nil {
		period = *c.Period
	}
	if quota != 0 || period != 0 {
		v := "max"
		if quota > 0 {
			v = itoa(quota)
		}
		if period != 0 {
			v += " " + utoa(period)
		}
		if err := m.write("cpu.max", v); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := m.write("cpu.max.burst", utoa(*c.Burst)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := m.write("cpu.idle", itoa(*c.Idle)); err != nil {
			return err
		}
	}
	if c.Cpus != "" {
		if err := m.write("cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := m.write("cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

func (m *v2) setIO(b *specs.LinuxBlockIO) error {
	// BFQ takes blkio's weights as they are; io.weight has its own range.
	bfq := exists(m.dir(), "io.bfq.weight")
	if b.Weight != nil && *b.Weight != 0 {
		var err error
		if bfq {
			err = m.write("io.bfq.weight", utoa(uint64(*b.Weight)))
		} else {
			err = m.write("io.weight", "default "+utoa(BlkioWeightToIOWeight(uint64(*b.Weight))))
		}
		if err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight == nil {
			continue
		}
		var err error
		if bfq {
			err = m.write("io.bfq.weight", devNum(wd.Major, wd.Minor)+" "+utoa(uint64(*wd.Weight)))
		} else {
			err = m.write("io.weight", devNum(wd.Major, wd.Minor)+" "+utoa(BlkioWeightToIOWeight(uint64(*wd.Weight))))
		}
		if err != nil {
			return err
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			v := "max"
			if d.Rate != 0 {
				v = utoa(d.Rate)
			}
			if err := m.write("io.max", devNum(d.Major, d.Minor)+" "+t.key+"="+v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reset writes the kernel's defaults for a new cgroup into every control
// file this cgroup has (an empty cpuset means "the parent's") and detaches
// FRE's device program.
// ResetOnly resets everything: v2 cgroups are not pooled (no rename).
func (m *v2) ResetOnly([]string) error { return m.Reset() }

func (m *v2) Reset() error {
	dir := m.dir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return &Error{Op: "readdir", Path: dir, Err: unwrapPathErr(err)}
	}
	has := make(map[string]bool, len(ents))
	for _, e := range ents {
		has[e.Name()] = true
	}
	var errs []error
	set := func(f, v string) {
		if has[f] {
			if err := writeFile(dir, f, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := devicesRemove(dir); err != nil && !(errors.Is(err, unix.EPERM) && inUserNS()) {
		errs = append(errs, &Error{Op: "remove devices", Path: dir, Err: err})
	}
	set("cgroup.freeze", "0")
	set("memory.max", "max")
	set("memory.high", "max")
	set("memory.low", "0")
	set("memory.min", "0")
	set("memory.swap.max", "max")
	set("memory.swap.high", "max")
	set("memory.oom.group", "0")
	set("cpu.weight", "100")
	set("cpu.max", "max 100000")
	set("cpu.max.burst", "0")
	set("cpu.idle", "0")
	set("cpuset.cpus", "\n")
	set("cpuset.mems", "\n")
	set("pids.max", "max")
	set("io.weight", "default 100")
	set("io.bfq.weight", "default 100")
	if has["io.max"] {
		s, err := readFile(dir, "io.max")
		if err != nil {
			errs = append(errs, err)
		}
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				set("io.max", f[0]+" rbps=max wbps=max riops=max wiops=max")
			}
		}
	}
	for _, w := range [...]string{"io.weight", "io.bfq.weight"} {
		if !has[w] {
			continue
		}
		s, _ := readFile(dir, w)
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.Contains(f[0], ":") {
				set(w, f[0]+" default")
			}
		}
	}
	for n := range has {
		if strings.HasPrefix(n, "hugetlb.") && strings.HasSuffix(n, ".max") && !strings.Contains(n, "numa") {
			set(n, "max")
		}
	}
	return errors.Join(errs...)
}
