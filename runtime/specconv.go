package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// LoadSpec reads <bundle>/config.json: its first JSON value, as runc
// reads it (json.Decoder), decoded by quickjson, whose results and errors
// are encoding/json's without its 0.5 ms of first-use set-up.
func LoadSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: config.json not found in bundle %s", ErrInvalidConfig, bundle)
		}
		return nil, fmt.Errorf("read config.json: %w", err)
	}
	var spec specs.Spec
	if err := quickjson.DecodeFirst(b, &spec); err != nil {
		return nil, fmt.Errorf("%w: config.json in %s is malformed: %v", ErrInvalidConfig, bundle, err)
	}
	return &spec, nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

var nsTypes = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// ociVersion1 reports whether v starts with 1.<digits>.<digits> (runc's
// check, which accepts any suffix).
func ociVersion1(v string) bool {
	digits := func(s string) (rest string, ok bool) {
		i := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return s[i:], i > 0
	}
	rest, ok := strings.CutPrefix(v, "1.")
	if !ok {
		return false
	}
	if rest, ok = digits(rest); !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "."); !ok {
		return false
	}
	_, ok = digits(rest)
	return ok
}

// Convert validates the spec and converts it into a Config. bundle must
// be absolute.
func Convert(spec *specs.Spec, bundle string) (*Config, error) {
	if spec.Version == "" {
		return nil, invalid("ociVersion", "missing")
	}
	if !ociVersion1(spec.Version) {
		return nil, invalid("ociVersion", "unsupported version %q (FRE supports 1.x)", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, invalid("root.path", "missing")
	}
	if spec.Process == nil {
		return nil, invalid("process", "missing")
	}
	if spec.Linux == nil {
		return nil, invalid("linux", "missing (FRE runs Linux containers)")
	}
	c := &Config{
		Bundle:       bundle,
		ReadonlyRoot: spec.Root.Readonly,
		Annotations:  spec.Annotations,
		Hooks:        spec.Hooks,
	}
	c.Rootfs = spec.Root.Path
	if !filepath.IsAbs(c.Rootfs) {
		c.Rootfs = filepath.Join(bundle, c.Rootfs)
	}
	if fi, err := os.Stat(c.Rootfs); err != nil {
		return nil, invalid("root.path", "rootfs %s: %v", c.Rootfs, errors.Unwrap(err))
	} else if !fi.IsDir() {
		return nil, invalid("root.path", "rootfs %s is not a directory", c.Rootfs)
	}
	if spec.Hostname != "" {
		h := spec.Hostname
		c.Hostname = &h
	}
	if spec.Domainname != "" {
		d := spec.Domainname
		c.Domainname = &d
	}
	if err := convertNamespaces(c, spec.Linux); err != nil {
		return nil, err
	}
	if c.Hostname != nil && !c.hasNS(specs.UTSNamespace) {
		return nil, invalid("hostname", "cannot set a hostname without a private UTS namespace")
	}
	if c.Domainname != nil && !c.hasNS(specs.UTSNamespace) {
		return nil, invalid("domainname", "cannot set a domainname without a private UTS namespace")
	}
	for i, m := range spec.Mounts {
		cm, err := convertMount(m, bundle)
		if err != nil {
			return nil, invalid(fmt.Sprintf("mounts[%d]", i), "%v", err)
		}
		c.Mounts = append(c.Mounts, cm)
	}
	c.SetupDev = c.hasNS(specs.MountNamespace)
	for _, m := range c.Mounts {
		if m.Destination == "/dev" && m.Bind {
			c.SetupDev = false
		}
	}
	c.Devices = spec.Linux.Devices
	for i, d := range c.Devices {
		if !filepath.IsAbs(d.Path) {
			return nil, invalid(fmt.Sprintf("linux.devices[%d].path", i), "%q is not absolute", d.Path)
		}
		switch d.Type {
		case "c", "u", "b", "p":
		default:
			return nil, invalid(fmt.Sprintf("linux.devices[%d].type", i), "unknown device type %q", d.Type)
		}
	}
	if l := spec.Linux.MountLabel; l != "" && selinuxEnabled() {
		// SELinux: new file systems get the container's mount context;
		// without SELinux the label is ignored, as runc does.
		for i := range c.Mounts {
			m := &c.Mounts[i]
			if !m.Bind && m.Type != "proc" && m.Type != "sysfs" && m.Type != "cgroup" && m.Type != "cgroup2" && m.Type != "mqueue" {
				if m.Data != "" {
					m.Data += ","
				}
				m.Data += `context="` + l + `"`
			}
		}
	}
	c.MaskedPaths = spec.Linux.MaskedPaths
	c.ReadonlyPaths = spec.Linux.ReadonlyPaths
	switch spec.Linux.RootfsPropagation {
	case "":
		c.RootPropagation = unix.MS_SLAVE | unix.MS_REC
	default:
		f, ok := propagationFlags[spec.Linux.RootfsPropagation]
		if !ok {
			return nil, invalid("linux.rootfsPropagation", "unknown propagation %q", spec.Linux.RootfsPropagation)
		}
		c.RootPropagation = f
	}
	c.Sysctl = spec.Linux.Sysctl
	for k := range c.Sysctl {
		if err := validateSysctl(c, k); err != nil {
			return nil, err
		}
	}
	if spec.Linux.IntelRdt != nil {
		return nil, invalid("linux.intelRdt", "Intel RDT (resctrl) is %v by FRE", ErrNotSupported)
	}
	c.Personality = -1
	if p := spec.Linux.Personality; p != nil {
		v, err := personality(p)
		if err != nil {
			return nil, err
		}
		c.Personality = v
	}
	if err := validateCgroup(spec.Linux); err != nil {
		return nil, err
	}
	c.CgroupsPath = spec.Linux.CgroupsPath
	c.Resources = spec.Linux.Resources
	c.Seccomp = spec.Linux.Seccomp
	p, err := convertProcess(spec.Process)
	if err != nil {
		return nil, err
	}
	c.Process = p
	return c, nil
}

func convertNamespaces(c *Config, l *specs.Linux) error {
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range l.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		if _, ok := nsTypes[ns.Type]; !ok {
			return invalid(field+".type", "unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return invalid(field+".type", "namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if !filepath.IsAbs(ns.Path) {
				return invalid(field+".path", "%q is not absolute", ns.Path)
			}
			if _, err := os.Stat(ns.Path); err != nil {
				return invalid(field+".path", "%v", err)
			}
			if c.Join == nil {
				c.Join = map[specs.LinuxNamespaceType]string{}
			}
			c.Join[ns.Type] = ns.Path
			continue
		}
		if ns.Type == specs.NetworkNamespace {
			c.NetRequested = true
			continue
		}
		c.NewNamespaces = append(c.NewNamespaces, ns.Type)
	}
	if c.hasNS(specs.UserNamespace) {
		c.UIDMappings = l.UIDMappings
		c.GIDMappings = l.GIDMappings
		if c.hasNew(specs.UserNamespace) && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
			return invalid("linux.uidMappings", "a new user namespace needs uid and gid mappings")
		}
	} else if len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0 {
		return invalid("linux.uidMappings", "mappings given without a user namespace")
	}
	if c.hasNew(specs.TimeNamespace) {
		var b strings.Builder
		for _, clock := range []string{"monotonic", "boottime"} {
			if o, ok := l.TimeOffsets[clock]; ok {
				fmt.Fprintf(&b, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
			}
		}
		for clock := range l.TimeOffsets {
			if clock != "monotonic" && clock != "boottime" {
				return invalid("linux.timeOffsets", "unknown clock %q (monotonic or boottime)", clock)
			}
		}
		c.TimeOffsets = b.String()
	} else if len(l.TimeOffsets) > 0 {
		return invalid("linux.timeOffsets", "offsets given without a new time namespace")
	}
	return nil
}

// sysctls that belong to a namespace, as runc checks them.
func validateSysctl(c *Config, key string) error {
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
		"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true}
	switch {
	case ipc[key] || strings.HasPrefix(key, "fs.mqueue."):
		if !c.hasNS(specs.IPCNamespace) {
			return invalid("linux.sysctl", "sysctl %q is not allowed in the host's IPC namespace", key)
		}
	case strings.HasPrefix(key, "net."):
		// Checked at create, when the netns policy is known.
	case key == "kernel.hostname" || key == "kernel.domainname":
		if !c.hasNS(specs.UTSNamespace) {
			return invalid("linux.sysctl", "sysctl %q is not allowed in the host's UTS namespace", key)
		}
	default:
		return invalid("linux.sysctl", "sysctl %q is not in a namespace FRE can isolate", key)
	}
	return nil
}

var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"nosuid":        {false, unix.MS_NOSUID},
	"suid":          {true, unix.MS_NOSUID},
	"nodev":         {false, unix.MS_NODEV},
	"dev":           {true, unix.MS_NODEV},
	"noexec":        {false, unix.MS_NOEXEC},
	"exec":          {true, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
}

// recursiveMountAttrs are runc's recursive mount options (runc 1.1's
// recAttrFlags): MOUNT_ATTR_* flags to set and to clear on the mount and
// every mount below it. The atime ones replace the whole atime field.
var recursiveMountAttrs = map[string]struct{ set, clr uint64 }{
	"rro":            {set: unix.MOUNT_ATTR_RDONLY},
	"rrw":            {clr: unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {set: unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {clr: unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {set: unix.MOUNT_ATTR_NODEV},
	"rdev":           {clr: unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {set: unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {clr: unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {set: unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {clr: unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {set: unix.MOUNT_ATTR_RELATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnorelatime":    {clr: unix.MOUNT_ATTR__ATIME},
	"rnoatime":       {set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME},
	"ratime":         {clr: unix.MOUNT_ATTR__ATIME},
	"rstrictatime":   {set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnostrictatime": {clr: unix.MOUNT_ATTR__ATIME},
	"rnosymfollow":   {set: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {clr: unix.MOUNT_ATTR_NOSYMFOLLOW},
}

func convertMount(m specs.Mount, bundle string) (Mount, error) {
	if m.Destination == "" {
		return Mount{}, errors.New("destination is empty")
	}
	if !filepath.IsAbs(m.Destination) {
		// runc accepts relative destinations as relative to "/"; so do we.
		m.Destination = "/" + m.Destination
	}
	cm := Mount{Source: m.Source, Destination: filepath.Clean(m.Destination), Type: m.Type}
	var data []string
	for _, o := range m.Options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				cm.Flags &^= f.flag
			} else {
				cm.Flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			cm.Propagation = append(cm.Propagation, p)
			continue
		}
		if a, ok := recursiveMountAttrs[o]; ok {
			cm.RecAttrClr |= a.clr
			cm.RecAttrSet = cm.RecAttrSet&^a.clr | a.set
			continue
		}
		switch o {
		case "tmpcopyup", "idmap", "ridmap", "recursive":
			return Mount{}, fmt.Errorf("mount option %q: %w", o, ErrNotSupported)
		}
		data = append(data, o)
	}
	cm.Data = strings.Join(data, ",")
	cm.Bind = m.Type == "bind" || cm.Flags&unix.MS_BIND != 0
	if cm.Bind {
		cm.Flags |= unix.MS_BIND
		if cm.Source == "" {
			return Mount{}, errors.New("bind mount without a source")
		}
		if !filepath.IsAbs(cm.Source) {
			cm.Source = filepath.Join(bundle, cm.Source)
		}
		fi, err := os.Stat(cm.Source)
		if err != nil {
			return Mount{}, fmt.Errorf("bind source: %w", err)
		}
		cm.SourceIsFile = !fi.IsDir()
	} else if m.Type == "" {
		return Mount{}, errors.New("type is empty")
	}
	return cm, nil
}

func convertProcess(p *specs.Process) (*ProcessConfig, error) {
	if len(p.Args) == 0 {
		return nil, invalid("process.args", "empty: nothing to run")
	}
	if p.Cwd == "" {
		return nil, invalid("process.cwd", "empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return nil, invalid("process.cwd", "%q is not absolute", p.Cwd)
	}
	if p.User.Username != "" {
		return nil, invalid("process.user.username", "%v (use uid/gid)", ErrNotSupported)
	}
	cp := &ProcessConfig{
		Terminal:        p.Terminal,
		Args:            p.Args,
		Env:             p.Env,
		Cwd:             p.Cwd,
		UID:             p.User.UID,
		GID:             p.User.GID,
		AdditionalGids:  p.User.AdditionalGids,
		Umask:           p.User.Umask,
		NoNewPrivs:      p.NoNewPrivileges,
		OOMScoreAdj:     p.OOMScoreAdj,
		ApparmorProfile: p.ApparmorProfile,
		SelinuxLabel:    p.SelinuxLabel,
	}
	cp.IOPrio = -1
	if io := p.IOPriority; io != nil {
		class, ok := map[specs.IOPriorityClass]int{specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3}[io.Class]
		if !ok {
			return nil, invalid("process.ioPriority.class", "unknown class %q", io.Class)
		}
		if io.Priority < 0 || io.Priority > 7 {
			return nil, invalid("process.ioPriority.priority", "%d is out of 0..7", io.Priority)
		}
		cp.IOPrio = class<<13 | io.Priority
	}
	if sc := p.Scheduler; sc != nil {
		s, err := scheduler(sc)
		if err != nil {
			return nil, err
		}
		cp.Sched = s
	}
	if p.ConsoleSize != nil {
		cp.ConsoleRows = uint16(p.ConsoleSize.Height)
		cp.ConsoleCols = uint16(p.ConsoleSize.Width)
	}
	for i, r := range p.Rlimits {
		n, ok := rlimitNames[r.Type]
		if !ok {
			return nil, invalid(fmt.Sprintf("process.rlimits[%d].type", i), "unknown rlimit %q", r.Type)
		}
		if r.Soft > r.Hard {
			return nil, invalid(fmt.Sprintf("process.rlimits[%d]", i), "soft limit %d above hard limit %d", r.Soft, r.Hard)
		}
		cp.Rlimits = append(cp.Rlimits, Rlimit{Type: n, Soft: r.Soft, Hard: r.Hard})
	}
	if p.Capabilities != nil {
		caps := &CapSets{}
		sets := []struct {
			name  string
			names []string
			dst   *uint64
		}{
			{"bounding", p.Capabilities.Bounding, &caps.Bounding},
			{"effective", p.Capabilities.Effective, &caps.Effective},
			{"permitted", p.Capabilities.Permitted, &caps.Permitted},
			{"inheritable", p.Capabilities.Inheritable, &caps.Inheritable},
			{"ambient", p.Capabilities.Ambient, &caps.Ambient},
		}
		for _, s := range sets {
			for _, name := range s.names {
				bit, ok := capNames[strings.ToUpper(name)]
				if !ok {
					// runc warns and ignores capabilities this kernel lacks.
					if strings.HasPrefix(strings.ToUpper(name), "CAP_") {
						continue
					}
					return nil, invalid("process.capabilities."+s.name, "unknown capability %q", name)
				}
				*s.dst |= 1 << uint(bit)
			}
		}
		cp.Caps = caps
	}
	return cp, nil
}

var rlimitNames = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

var capNames = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
	"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
	"CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
	"CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
	"CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
	"CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36,
	"CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

var personalityFlags = map[specs.LinuxPersonalityFlag]int{
	"UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000, "MMAP_PAGE_ZERO": 0x0100000,
	"ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000, "ADDR_LIMIT_32BIT": 0x0800000,
	"SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000, "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}

func personality(p *specs.LinuxPersonality) (int, error) {
	var v int
	switch p.Domain {
	case specs.PerLinux:
		v = 0x0000
	case specs.PerLinux32:
		v = 0x0008
	default:
		return 0, invalid("linux.personality.domain", "unknown domain %q (LINUX or LINUX32)", p.Domain)
	}
	for _, f := range p.Flags {
		bit, ok := personalityFlags[f]
		if !ok {
			return 0, invalid("linux.personality.flags", "unknown flag %q", f)
		}
		v |= bit
	}
	return v, nil
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3, specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10, specs.SchedFlagUtilClampMin: 0x20, specs.SchedFlagUtilClampMax: 0x40,
}

func scheduler(sc *specs.Scheduler) (*spawn.Sched, error) {
	pol, ok := schedPolicies[sc.Policy]
	if !ok {
		return nil, invalid("process.scheduler.policy", "unknown policy %q", sc.Policy)
	}
	s := &spawn.Sched{Policy: pol, Nice: sc.Nice, Priority: uint32(sc.Priority), Runtime: sc.Runtime, Deadline: sc.Deadline, Period: sc.Period}
	for _, f := range sc.Flags {
		bit, ok := schedFlags[f]
		if !ok {
			return nil, invalid("process.scheduler.flags", "unknown flag %q", f)
		}
		s.Flags |= bit
	}
	return s, nil
}

// validateCgroup refuses what no cgroup layout can take, naming the field,
// before anything is made: a cgroupsPath that is the hierarchy's root once
// cleaned (paths are cleaned as runc cleans them, so none climbs out), and
// device rules of an unknown type or access letters other than r, w, m.
func validateCgroup(l *specs.Linux) error {
	if p := l.CgroupsPath; p != "" {
		if strings.ContainsAny(p, "\n\x00") || path.Clean("/"+p) == "/" {
			return invalid("linux.cgroupsPath", "%q is not a cgroup below the hierarchy's root", p)
		}
	}
	if l.Resources == nil {
		return nil
	}
	if pruned, n := pruneNoopDenies(l.Resources.Devices); n > 0 {
		r := *l.Resources
		r.Devices = pruned
		l.Resources = &r
	}
	for i, d := range l.Resources.Devices {
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return invalid(fmt.Sprintf("linux.resources.devices[%d].type", i), "unknown device type %q (want a, b or c)", d.Type)
		}
		for _, ch := range d.Access {
			if !strings.ContainsRune("rwm", ch) {
				return invalid(fmt.Sprintf("linux.resources.devices[%d].access", i), "%q has %q (want letters of rwm)", d.Access, ch)
			}
		}
	}
	return nil
}

// pruneNoopDenies drops the deny rules that deny nothing: those after a
// deny of every device with no allow since, as runc's devices emulator
// drops them (v1 and v2) before anything reaches the kernel. So a
// redundant rule with an odd access string ("rwa", in runc's update.bats)
// is no error, and v1 writes no rule the kernel would refuse. n is how
// many were dropped.
func pruneNoopDenies(devs []specs.LinuxDeviceCgroup) (out []specs.LinuxDeviceCgroup, n int) {
	denyAll := false // every device denied, nothing allowed since
	for _, d := range devs {
		if !d.Allow && denyAll {
			n++
			continue
		}
		out = append(out, d)
		if d.Allow {
			denyAll = false
		} else if (d.Type == "" || d.Type == "a") && wildcard(d.Major) && wildcard(d.Minor) &&
			(d.Access == "" || strings.Contains(d.Access, "r") && strings.Contains(d.Access, "w") && strings.Contains(d.Access, "m")) {
			denyAll = true
		}
	}
	if n == 0 {
		return devs, 0
	}
	return out, n
}

func wildcard(v *int64) bool { return v == nil || *v == -1 }
