package cgroup

import (
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func itoa(v int64) string          { return strconv.FormatInt(v, 10) }
func utoa(v uint64) string         { return strconv.FormatUint(v, 10) }
func devNum(maj, min int64) string { return itoa(maj) + ":" + itoa(min) }

// need returns the directory of ctrl or an ErrNotSupported error naming
// what asked for it.
func (m *v1) need(ctrl, what string) (string, error) {
	if d := m.dir(ctrl); d != "" {
		return d, nil
	}
	return "", &Error{Op: "set " + what, Path: m.path + " (no " + ctrl + " hierarchy)", Err: ErrNotSupported}
}

func (m *v1) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if len(r.Unified) > 0 {
		return &Error{Op: "set unified", Path: m.path, Err: ErrV1NoUnified}
	}
	if r.Network != nil && (r.Network.ClassID != nil || len(r.Network.Priorities) > 0) {
		return &Error{Op: "set network", Path: m.path, Err: ErrNotSupported}
	}
	if len(r.Rdma) > 0 {
		return &Error{Op: "set rdma", Path: m.path, Err: ErrNotSupported}
	}
	if r.Memory != nil {
		if err := m.setMemory(r.Memory); err != nil {
			return err
		}
	}
	if r.CPU != nil {
		if err := m.setCPU(r.CPU); err != nil {
			return err
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit != 0 {
		d, err := m.need("pids", "pids")
		if err != nil {
			return err
		}
		if err := writeFile(d, "pids.max", pidsMax(*r.Pids.Limit)); err != nil {
			return err
		}
	}
	if r.BlockIO != nil {
		if err := m.setBlkio(r.BlockIO); err != nil {
			return err
		}
	}
	if len(r.HugepageLimits) > 0 {
		d, err := m.need("hugetlb", "hugepage limits")
		if err != nil {
			return err
		}
		for _, h := range r.HugepageLimits {
			if err := writeFile(d, "hugetlb."+h.Pagesize+".limit_in_bytes", utoa(h.Limit)); err != nil {
				return err
			}
			if f := "hugetlb." + h.Pagesize + ".rsvd.limit_in_bytes"; exists(d, f) {
				if err := writeFile(d, f, utoa(h.Limit)); err != nil {
					return err
				}
			}
		}
	}
	if len(r.Devices) > 0 {
		d, err := m.need("devices", "devices")
		if err != nil {
			return err
		}
		w := fileWriter{dir: d}
		defer w.close()
		for _, rule := range r.Devices {
			f := "devices.deny"
			if rule.Allow {
				f = "devices.allow"
			}
			if err := w.write(f, deviceRule(rule)); err != nil {
				return err
			}
		}
	}
	return nil
}

func pidsMax(limit int64) string {
	if limit < 0 {
		return "max"
	}
	return itoa(limit)
}

// deviceRule is the devices.allow/deny line of an OCI rule: "c 1:3 rwm".
func deviceRule(r specs.LinuxDeviceCgroup) string {
	t := r.Type
	if t == "" {
		t = "a"
	}
	maj, min := "*", "*"
	if r.Major != nil && *r.Major >= 0 {
		maj = itoa(*r.Major)
	}
	if r.Minor != nil && *r.Minor >= 0 {
		min = itoa(*r.Minor)
	}
	acc := r.Access
	if acc == "" {
		acc = "rwm"
	}
	return t + " " + maj + ":" + min + " " + acc
}

func (m *v1) setMemory(mem *specs.LinuxMemory) error {
	need := mem.Limit != nil || mem.Reservation != nil || (mem.Swap != nil && *mem.Swap != 0) ||
		mem.KernelTCP != nil || mem.Swappiness != nil || (mem.DisableOOMKiller != nil && *mem.DisableOOMKiller)
	if !need {
		return nil
	}
	d, err := m.need("memory", "memory")
	if err != nil {
		return err
	}
	swap := int64(0) // 0: unset, as runc reads it
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	// An unlimited memory with swap unset makes swap unlimited too, as
	// runc does (memory+swap may not be below memory: -1 alone would be
	// refused under a set memsw limit).
	if mem.Limit != nil && *mem.Limit == -1 && swap == 0 && exists(d, "memory.memsw.limit_in_bytes") {
		swap = -1
	}
	if swap != 0 && !exists(d, "memory.memsw.limit_in_bytes") {
		if swap != -1 {
			return &Error{Op: "set memory swap", Path: d + "/memory.memsw.limit_in_bytes (swap accounting is off)", Err: ErrNotSupported}
		}
		swap = 0
	}
	switch {
	case mem.Limit != nil && swap != 0:
		if swap != -1 && swap < *mem.Limit && *mem.Limit != -1 {
			return &Error{Op: "set memory", Path: d, Value: "swap " + itoa(swap) + " < limit " + itoa(*mem.Limit), Err: ErrInvalidResources}
		}
		// memory+swap may never be below memory: raise first what grows.
		cur, err := readUint(d, "memory.limit_in_bytes")
		if err != nil {
			return err
		}
		if swap == -1 || cur < uint64(swap) {
			err = writeSeq(d, "memory.memsw.limit_in_bytes", itoa(swap), "memory.limit_in_bytes", itoa(*mem.Limit))
		} else {
			err = writeSeq(d, "memory.limit_in_bytes", itoa(*mem.Limit), "memory.memsw.limit_in_bytes", itoa(swap))
		}
		if err != nil {
			return err
		}
	case mem.Limit != nil:
		if err := writeFile(d, "memory.limit_in_bytes", itoa(*mem.Limit)); err != nil {
			return err
		}
	case swap != 0:
		if err := writeFile(d, "memory.memsw.limit_in_bytes", itoa(swap)); err != nil {
			return err
		}
	}
	if mem.Reservation != nil {
		if err := writeFile(d, "memory.soft_limit_in_bytes", itoa(*mem.Reservation)); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil {
		if err := writeFile(d, "memory.kmem.tcp.limit_in_bytes", itoa(*mem.KernelTCP)); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil {
		switch s := *mem.Swappiness; {
		case s <= 100:
			if err := writeFile(d, "memory.swappiness", utoa(s)); err != nil {
				return err
			}
		case s == ^uint64(0): // -1 in a signed spec: leave it
		default:
			return &Error{Op: "set memory swappiness", Path: d, Value: utoa(s), Err: ErrInvalidResources}
		}
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		if err := writeFile(d, "memory.oom_control", "1"); err != nil {
			return err
		}
	}
	return nil
}

func writeSeq(dir string, kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := writeFile(dir, kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) setCPU(c *specs.LinuxCPU) error {
	bw := (c.Shares != nil && *c.Shares != 0) || (c.Quota != nil && *c.Quota != 0) ||
		(c.Period != nil && *c.Period != 0) || c.Burst != nil || c.Idle != nil ||
		(c.RealtimePeriod != nil && *c.RealtimePeriod != 0) || (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0)
	if bw {
		d, err := m.need("cpu", "cpu")
		if err != nil {
			return err
		}
		if c.Shares != nil && *c.Shares != 0 {
			if err := writeFile(d, "cpu.shares", utoa(*c.Shares)); err != nil {
				return err
			}
		}
		if err := setCFS(d, c); err != nil {
			return err
		}
		if c.Burst != nil {
			if err := writeFile(d, "cpu.cfs_burst_us", utoa(*c.Burst)); err != nil {
				return err
			}
		}
		if c.Idle != nil {
			if err := writeFile(d, "cpu.idle", itoa(*c.Idle)); err != nil {
				return err
			}
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			if err := writeFile(d, "cpu.rt_period_us", utoa(*c.RealtimePeriod)); err != nil {
				return err
			}
		}
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			if err := writeFile(d, "cpu.rt_runtime_us", itoa(*c.RealtimeRuntime)); err != nil {
				return err
			}
		}
	}
	if c.Cpus != "" || c.Mems != "" {
		d, err := m.need("cpuset", "cpuset")
		if err != nil {
			return err
		}
		if c.Cpus != "" {
			if err := writeFile(d, "cpuset.cpus", c.Cpus); err != nil {
				return err
			}
		}
		if c.Mems != "" {
			if err := writeFile(d, "cpuset.mems", c.Mems); err != nil {
				return err
			}
		}
	}
	return nil
}

// setCFS writes the CFS period and quota. A new period can be refused
// (EINVAL) against the old quota, so on EINVAL the quota goes first.
func setCFS(d string, c *specs.LinuxCPU) error {
	period := ""
	if c.Period != nil && *c.Period != 0 {
		period = utoa(*c.Period)
		err := writeFile(d, "cpu.cfs_period_us", period)
		if err == nil {
			period = ""
		} else if !errors.Is(err, unix.EINVAL) || c.Quota == nil || *c.Quota == 0 {
			return err
		}
	}
	if c.Quota != nil && *c.Quota != 0 {
		if err := writeFile(d, "cpu.cfs_quota_us", itoa(*c.Quota)); err != nil {
			return err
		}
		if period != "" {
			return writeFile(d, "cpu.cfs_period_us", period)
		}
	}
	return nil
}

func (m *v1) setBlkio(b *specs.LinuxBlockIO) error {
	need := b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0
	if !need {
		return nil
	}
	d, err := m.need("blkio", "blkio")
	if err != nil {
		return err
	}
	// CFQ had blkio.weight; BFQ has blkio.bfq.weight; mq-deadline neither.
	weightFile := func(base string) (string, error) {
		for _, f := range [...]string{"blkio." + base, "blkio.bfq." + base} {
			if exists(d, f) {
				return f, nil
			}
		}
		return "", &Error{Op: "set blkio " + base, Path: d, Err: ErrNotSupported}
	}
	if b.Weight != nil && *b.Weight != 0 {
		f, err := weightFile("weight")
		if err != nil {
			return err
		}
		if err := writeFile(d, f, utoa(uint64(*b.Weight))); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(d, "blkio.leaf_weight", utoa(uint64(*b.LeafWeight))); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil {
			f, err := weightFile("weight_device")
			if err != nil {
				return err
			}
			if err := writeFile(d, f, devNum(wd.Major, wd.Minor)+" "+utoa(uint64(*wd.Weight))); err != nil {
				return err
			}
		}
		if wd.LeafWeight != nil {
			if err := writeFile(d, "blkio.leaf_weight_device", devNum(wd.Major, wd.Minor)+" "+utoa(uint64(*wd.LeafWeight))); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, dev := range t.devs {
			if err := writeFile(d, t.file, devNum(dev.Major, dev.Minor)+" "+utoa(dev.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reset puts every limit back to a new cgroup's: what the kernel gives a
// new child, or for inherited values (cpuset, devices, swappiness) the
// parent's. Files the kernel does not have are skipped.
func (m *v1) Reset() error { return m.reset(nil) }

// ResetOnly resets the freezer and the named controllers.
func (m *v1) ResetOnly(ctrls []string) error {
	only := make(map[string]bool, len(ctrls))
	for _, c := range ctrls {
		only[c] = true
	}
	return m.reset(only)
}

// reset resets the freezer and the controllers in only (nil: all).
func (m *v1) reset(only map[string]bool) error {
	dir := func(ctrl string) string {
		if only != nil && !only[ctrl] {
			return ""
		}
		return m.dir(ctrl)
	}
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	opt := func(d, f, v string) {
		if exists(d, f) {
			try(writeFile(d, f, v))
		}
	}
	if d := m.dir("freezer"); d != "" {
		try(writeFile(d, "freezer.state", "THAWED"))
	}
	if d := dir("memory"); d != "" {
		opt(d, "memory.memsw.limit_in_bytes", "-1") // first: memsw >= limit
		try(writeFile(d, "memory.limit_in_bytes", "-1"))
		opt(d, "memory.memsw.limit_in_bytes", "-1")
		try(writeFile(d, "memory.soft_limit_in_bytes", "-1"))
		opt(d, "memory.kmem.tcp.limit_in_bytes", "-1")
		try(writeFile(d, "memory.oom_control", "0"))
		if v, err := readFile(path.Dir(d), "memory.swappiness"); err == nil {
			opt(d, "memory.swappiness", v)
		}
	}
	if d := dir("cpu"); d != "" {
		try(writeFile(d, "cpu.shares", "1024"))
		try(writeFile(d, "cpu.cfs_quota_us", "-1"))
		try(writeFile(d, "cpu.cfs_period_us", "100000"))
		opt(d, "cpu.cfs_burst_us", "0")
		opt(d, "cpu.idle", "0")
		opt(d, "cpu.rt_runtime_us", "0")
		opt(d, "cpu.rt_period_us", "1000000")
	}
	if d := dir("cpuset"); d != "" {
		try(copyCpuset(d))
	}
	if d := dir("pids"); d != "" {
		try(writeFile(d, "pids.max", "max"))
	}
	if d := dir("devices"); d != "" {
		try(resetDevices(d))
	}
	if d := dir("blkio"); d != "" {
		opt(d, "blkio.weight", "500")
		opt(d, "blkio.bfq.weight", "100")
		for _, f := range [...]string{"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
			"blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
			"blkio.weight_device", "blkio.bfq.weight_device"} {
			try(clearDeviceList(d, f))
		}
	}
	if d := dir("hugetlb"); d != "" {
		ents, err := os.ReadDir(d)
		try(err)
		for _, e := range ents {
			if n := e.Name(); strings.HasPrefix(n, "hugetlb.") && strings.HasSuffix(n, "limit_in_bytes") {
				try(writeFile(d, n, "-1"))
			}
		}
	}
	return errors.Join(errs...)
}

// resetDevices gives d its parent's device list. A cgroup may allow all
// only when its parent does; otherwise deny all and copy the parent's
// exceptions.
func resetDevices(d string) error {
	list, err := readFile(path.Dir(d), "devices.list")
	if err != nil {
		return err
	}
	if list == "a *:* rwm" {
		// The kernel refuses "a" while a child cgroup is online, and a
		// child just removed goes offline asynchronously.
		err := poll(destroyTimeout, func() (bool, error) {
			err := writeFile(d, "devices.allow", "a")
			if errors.Is(err, unix.EINVAL) {
				return false, nil
			}
			return true, err
		})
		if err == ErrTimeout {
			return &Error{Op: "write", Path: d + "/devices.allow", Value: "a", Err: ErrTimeout}
		}
		return err
	}
	w := fileWriter{dir: d}
	defer w.close()
	if err := w.write("devices.deny", "a"); err != nil {
		return err
	}
	for _, l := range strings.Split(list, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if err := w.write("devices.allow", l); err != nil {
				return err
			}
		}
	}
	return nil
}

// clearDeviceList removes each "maj:min value" entry of a per-device file
// by writing the device with 0.
func clearDeviceList(d, f string) error {
	if !exists(d, f) {
		return nil
	}
	s, err := readFile(d, f)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(s, "\n") {
		fs := strings.Fields(l)
		if len(fs) != 2 || !strings.Contains(fs[0], ":") {
			continue // "default 100" lines of bfq
		}
		if err := writeFile(d, f, fs[0]+" 0"); err != nil {
			return err
		}
	}
	return nil
}
