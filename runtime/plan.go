package runtime

import (
	"path"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime/spawn"
)

// The root file system plan: the spec's mounts, devices and links as the
// flat list of operations the child executes. Pure: no system calls, so
// it is unit-tested without root.

var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

var defaultLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"pts/ptmx", "/dev/ptmx"},
}

// cgroupMount says how the container sees its cgroups at a "cgroup" mount.
type cgroupMount struct {
	unified   bool              // cgroup v2 only host
	newNS     bool              // the container has its own cgroup namespace
	hierarchy map[string]string // v1: subdir name under the mount -> host dir of the container's cgroup
	dir       string            // v2: host dir of the container's cgroup
}

func mountPlan(c *Config, cg *cgroupMount) (pre, post []spawn.MountOp) {
	pre, post, _, _ = mountPlanAt(c, cg)
	return pre, post
}

// mountPlanAt is mountPlan, and where in pre the container's cgroup is
// first needed: cgAt, its mount (the paths are the claimed cgroup's),
// and devAt, the first device node (mknod is checked against the device
// rules). Device nodes follow every spec mount, so cgAt <= devAt; each is
// len(pre) when there is none (cgAt is devAt without a cgroup mount).
func mountPlanAt(c *Config, cg *cgroupMount) (pre, post []spawn.MountOp, cgAt, devAt int) {
	cgAt = -1
	var remountRO []spawn.MountOp
	for i, m := range c.Mounts {
		if cgAt < 0 && (m.Type == "cgroup" || m.Type == "cgroup2") && !m.Bind {
			cgAt = len(pre)
		}
		// A read-only tmpfs with mounts (or /dev's nodes) below it is
		// mounted read-write and made read-only once they are in, as runc
		// does for /dev: their targets must be made in it first. (A file
		// system with its own contents, sysfs, has them already.)
		if !m.Bind && m.Flags&unix.MS_RDONLY != 0 && m.Type == "tmpfs" && hasMountBelow(c, i) {
			m.Flags &^= unix.MS_RDONLY
			remountRO = append(remountRO, spawn.MountOp{Kind: spawn.Mount, Target: m.Destination,
				Flags: unix.MS_REMOUNT | unix.MS_RDONLY | m.Flags&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME|unix.MS_RELATIME|unix.MS_STRICTATIME)})
		}
		pre = append(pre, mountOps(m, cg, c.hasNS(specs.UserNamespace))...)
	}
	devAt = len(pre)
	if c.SetupDev {
		userns := c.hasNS(specs.UserNamespace)
		for _, d := range mergeDevices(defaultDevices, c.Devices) {
			pre = append(pre, deviceOp(d, userns))
		}
		if len(pre) == devAt {
			devAt = -1 // no device node
		}
		for _, l := range defaultLinks {
			pre = append(pre, spawn.MountOp{Kind: spawn.Symlink, Source: l[0], Target: l[1]})
		}
	}
	if devAt < 0 {
		devAt = len(pre)
	}
	if cgAt < 0 {
		cgAt = devAt
	}
	pre = append(pre, remountRO...)
	for _, p := range c.ReadonlyPaths {
		post = append(post, spawn.MountOp{Kind: spawn.RO, Target: p})
	}
	for _, p := range c.MaskedPaths {
		post = append(post, spawn.MountOp{Kind: spawn.Mask, Target: p})
	}
	return pre, post, cgAt, devAt
}

// hasMountBelow: a later mount of the spec goes below mount i's
// destination, or mount i is /dev and the runtime makes nodes there.
func hasMountBelow(c *Config, i int) bool {
	d := path.Clean(c.Mounts[i].Destination)
	if d == "/dev" && c.SetupDev {
		return true
	}
	for _, m := range c.Mounts[i+1:] {
		if strings.HasPrefix(path.Clean(m.Destination), d+"/") {
			return true
		}
	}
	return false
}

func mountOps(m Mount, cg *cgroupMount, userns bool) []spawn.MountOp {
	var prop uintptr
	if n := len(m.Propagation); n > 0 {
		prop = m.Propagation[n-1]
	}
	var ops []spawn.MountOp
	switch {
	case m.Bind:
		ops = []spawn.MountOp{{Kind: spawn.Bind, Source: m.Source, Target: m.Destination, Flags: m.Flags, Propagation: prop, IsFile: m.SourceIsFile}}
	case m.Type == "cgroup" || m.Type == "cgroup2":
		ops = cgroupOps(m, cg, userns)
	default:
		ops = []spawn.MountOp{{Kind: spawn.Mount, Source: m.Source, Target: m.Destination, Fstype: m.Type, Data: m.Data, Flags: m.Flags, Propagation: prop}}
	}
	if m.RecAttrSet != 0 || m.RecAttrClr != 0 {
		ops = append(ops, spawn.MountOp{Kind: spawn.SetAttr, Target: m.Destination, AttrSet: m.RecAttrSet, AttrClr: m.RecAttrClr})
	}
	return ops
}

// cgroupOps: v2 with a cgroup namespace mounts cgroup2; otherwise the
// container's own cgroup directories are bound in, so it sees only them.
func cgroupOps(m Mount, cg *cgroupMount, userns bool) []spawn.MountOp {
	ro := m.Flags & unix.MS_RDONLY
	base := m.Flags &^ (unix.MS_RDONLY | unix.MS_BIND | unix.MS_REC)
	if cg == nil {
		return []spawn.MountOp{{Kind: spawn.Mount, Source: "tmpfs", Target: m.Destination, Fstype: "tmpfs", Flags: base | ro, Data: "mode=755"}}
	}
	if cg.unified {
		if cg.newNS {
			return []spawn.MountOp{{Kind: spawn.Mount, Source: "cgroup2", Target: m.Destination, Fstype: "cgroup2", Flags: m.Flags &^ (unix.MS_BIND | unix.MS_REC)}}
		}
		return []spawn.MountOp{{Kind: spawn.Bind, Source: cg.dir, Target: m.Destination, Flags: unix.MS_BIND | unix.MS_REC | base | ro}}
	}
	ops := []spawn.MountOp{{Kind: spawn.Mount, Source: "tmpfs", Target: m.Destination, Fstype: "tmpfs", Flags: base, Data: "mode=755"}}
	names := make([]string, 0, len(cg.hierarchy))
	for n := range cg.hierarchy {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ops = append(ops, spawn.MountOp{Kind: spawn.Bind, Source: cg.hierarchy[n], Target: path.Join(m.Destination, n), Flags: unix.MS_BIND | unix.MS_REC | base | ro})
	}
	// "cpu,cpuacct" style co-mounts are reachable by each name.
	for _, n := range names {
		if strings.Contains(n, ",") {
			for _, part := range strings.Split(n, ",") {
				if _, ok := cg.hierarchy[part]; !ok {
					ops = append(ops, spawn.MountOp{Kind: spawn.Symlink, Source: n, Target: path.Join(m.Destination, part)})
				}
			}
		}
	}
	if ro != 0 {
		ops = append(ops, spawn.MountOp{Kind: spawn.Mount, Target: m.Destination, Flags: unix.MS_REMOUNT | unix.MS_RDONLY | base})
	}
	return ops
}

func mergeDevices(defaults, spec []specs.LinuxDevice) []specs.LinuxDevice {
	out := make([]specs.LinuxDevice, 0, len(defaults)+len(spec))
	given := map[string]bool{}
	for _, d := range spec {
		given[filepath.Clean(d.Path)] = true
	}
	for _, d := range defaults {
		if !given[d.Path] {
			out = append(out, d)
		}
	}
	return append(out, spec...)
}

func deviceOp(d specs.LinuxDevice, userns bool) spawn.MountOp {
	if userns {
		// mknod is not allowed in a user namespace: bind the host's node.
		return spawn.MountOp{Kind: spawn.Bind, Source: d.Path, Target: d.Path, IsFile: true, Flags: unix.MS_BIND}
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(*d.FileMode) & 0o7777
	}
	switch d.Type {
	case "b":
		mode |= unix.S_IFBLK
	case "p":
		mode |= unix.S_IFIFO
	default:
		mode |= unix.S_IFCHR
	}
	op := spawn.MountOp{Kind: spawn.Mknod, Target: d.Path, Mode: mode, Dev: unix.Mkdev(uint32(d.Major), uint32(d.Minor))}
	if d.UID != nil {
		op.UID = *d.UID
	}
	if d.GID != nil {
		op.GID = *d.GID
	}
	return op
}

// sysctlPath: "net.ipv4.ip_forward" -> "/proc/sys/net/ipv4/ip_forward".
func sysctlPath(key string) string {
	return "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
