package runtime

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
)

// cgroup is create's cgroup phase: the container's cgroup, from the pool
// (v1: an idle one renamed into place) or made, and its limits, in place
// before the child may make a device node. Where the layouts differ:
//
//	v2   the init is born in its cgroup (clone3's CLONE_INTO_CGROUP), so
//	     the cgroup and its limits are ready before clone; a kernel
//	     without it falls back to moving the init in after clone.
//	v1   the claim and the limits go on alongside clone when nothing
//	     needs the cgroup earlier (claimLate): the child makes the mounts
//	     that need no cgroup meanwhile, and joins it itself.
func (j *createJob) cgroup() error {
	cfg, opts, sc := j.cfg, j.opts, j.sc
	// The limits are in place before the child runs (it may make device
	// nodes while we would still be writing the device rules).
	if cfg.Resources != nil {
		j.limits = withDefaultDevices(cfg.Resources)
	}
	if cfg.CgroupsPath == "" && cfg.Resources == nil {
		return nil
	}
	p := cfg.CgroupsPath
	if p == "" {
		p = "/" + opts.ID
	}
	if j.r.Options.SystemdCgroup {
		return j.systemdCgroup()
	}
	pool, err := j.r.CgroupPool()
	if err != nil {
		return err
	}
	if cfg.CgroupsPath == "" && pool.NamesCgroups() && !noCloneIntoCgroup.Load() {
		// cgroup v2, a cgroup FRE names: one of the pool's own, as it is
		// (no rename on v2), the init born in it.
		m, slot, err := pool.ClaimNamed()
		if err != nil {
			return fmt.Errorf("cgroup pool: %w", err)
		}
		if m != nil {
			j.r.tookFromPool()
			j.cg, j.claimedSlot, j.bornIn = m, slot, true
			j.undo = append(j.undo, func() { pool.ReleaseAt(m, slot) })
			j.cgroupChosen(m)
			return nil
		}
		// Every slot in use: a cgroup of the container's own, /<ID>.
	}
	claim := func() (cgroup.Manager, int, error) {
		// A pooled cgroup is renamed into place; a miss creates one.
		m, slot, err := pool.ClaimSlot(p)
		if err != nil {
			return nil, -1, fmt.Errorf("cgroup %s: %w", p, err)
		}
		j.r.tookFromPool()
		return m, slot, nil
	}
	at, err := pool.Manager(p)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", p, err)
	}
	j.bornIn = at.Version() == 2 && !noCloneIntoCgroup.Load()
	if j.claimLate && !j.bornIn {
		// at is where the claim will put it (the mounts need the paths).
		// Claimed and filled alongside: the child needs the cgroup
		// only amid its mounts, and its limits before its first device
		// node (mknod is checked against the device rules).
		type claimed struct {
			m    cgroup.Manager
			slot int
			err  error
		}
		claimCh, limitsCh := make(chan claimed, 1), make(chan error, 1)
		trace := j.r.Trace
		go func() {
			t0 := time.Now()
			m, slot, err := claim()
			if trace != nil {
				trace("cgroup claim (async)", time.Since(t0))
			}
			claimCh <- claimed{m, slot, err}
			if err == nil {
				err = j.setLimits(m)
			}
			limitsCh <- err
			if trace != nil {
				trace("cgroup claim+limits (async)", time.Since(t0))
			}
		}()
		j.lateClaim = sync.OnceValues(func() (cgroup.Manager, error) {
			c := <-claimCh
			j.claimedSlot = c.slot
			return c.m, c.err
		})
		j.lateLimits = sync.OnceValue(func() error { return <-limitsCh })
		// Either this or the set-up's prepare takes the claim.
		j.undo = append(j.undo, func() {
			if m, err := j.lateClaim(); err == nil {
				j.lateLimits() // done with it
				pool.ReleaseAt(m, j.claimedSlot)
			}
		})
	} else {
		cg, slot, err := claim()
		if err != nil {
			return err
		}
		j.cg, j.claimedSlot = cg, slot
		j.undo = append(j.undo, func() { pool.ReleaseAt(cg, slot) })
		at = cg
	}
	j.cgroupChosen(at)
	if j.lateClaim != nil {
		sc.CgroupJoinLate = at.SelfJoinFiles()
	}
	return j.hybridCgroup(at)
}

// hybridCgroup makes, on a hybrid host, the container's cgroup in the
// unified hierarchy (no limits: it has no controllers) and has the init
// born in it, as runc joins it ("0::/<path>" in /proc/<pid>/cgroup).
func (j *createJob) hybridCgroup(at cgroup.Manager) error {
	if at.Version() != 1 {
		return nil
	}
	dir := cgroup.HybridDir(at.Path())
	if dir == "" {
		return nil
	}
	made, err := cgroup.MakeHybrid(dir)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	j.st.CgroupUnified = dir
	if made {
		// Not one that was there (a cgroup the create is refused).
		j.undo = append(j.undo, func() { cgroup.RemoveHybrid(dir) })
	}
	if noCloneIntoCgroup.Load() {
		j.hybridMove = true
	} else {
		j.sc.CgroupDir = dir
	}
	return nil
}

// cgroupChosen records where the container's cgroup is (at: claimed, or
// where a late claim puts it).
func (j *createJob) cgroupChosen(at cgroup.Manager) {
	j.st.CgroupPaths = at.Paths()
	j.st.CgroupSelective = !cgroupWritableInside(j.cfg)
	j.cgm = cgroupMountFor(at, j.sc.NewCgroupNS)
}

// setLimits writes the container's limits (none: nothing) into cg.
func (j *createJob) setLimits(cg cgroup.Manager) error {
	if j.limits == nil {
		return nil
	}
	if err := cg.Set(j.limits); err != nil {
		return fmt.Errorf("set cgroup limits: %w", err)
	}
	return nil
}

// cgroupPlan sets, once the rest of the plan is known, how the child
// gets into its cgroup: born in it (v2), joining it itself first thing
// (no global lock, see SelfJoinFiles), or moved in by us after clone when
// hooks that may look at it run before it goes. The limits are written
// here when the cgroup was claimed before clone.
func (j *createJob) cgroupPlan() error {
	sc, cg := j.sc, j.cg
	if j.limits != nil && (cg != nil || j.lateClaim != nil) {
		j.st.CgroupLimits = cgroup.Controllers(j.limits)
	}
	if cg == nil || j.systemd != nil {
		return nil // systemd: the scope, and its limits, after clone
	}
	if err := j.setLimits(cg); err != nil {
		return err
	}
	if j.bornIn {
		sc.CgroupDir, j.selfJoin = cg.Paths()[""], true
	} else if !j.pauseForHooks {
		sc.CgroupJoin = cg.SelfJoinFiles()
		j.selfJoin = sc.CgroupJoin != nil
	}
	return nil
}

func cgroupMountFor(cg cgroup.Manager, newNS bool) *cgroupMount {
	paths := cg.Paths()
	if cg.Version() == 2 {
		return &cgroupMount{unified: true, newNS: newNS, dir: paths[""]}
	}
	m := &cgroupMount{hierarchy: map[string]string{}}
	rel := cg.Path()
	for _, dir := range paths {
		mountpoint := strings.TrimSuffix(dir, rel)
		m.hierarchy[filepath.Base(mountpoint)] = dir
	}
	return m
}

// withDefaultDevices appends the devices every container may use, after
// the spec's rules, as runc does: runc's AllowedDevices (1.1 to 1.3). Not
// c 5:1, the host's console: a container's /dev/console is its pty
// (136:*), bound over it.
func withDefaultDevices(r *specs.LinuxResources) *specs.LinuxResources {
	if len(r.Devices) == 0 {
		return r
	}
	c := *r
	i64 := func(v int64) *int64 { return &v }
	c.Devices = append(append([]specs.LinuxDeviceCgroup{}, r.Devices...),
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"},
	)
	return &c
}

// cgroupWritableInside: could the container's processes write their own
// cgroup's files? Yes with a writable cgroupfs (a cgroup mount or a bind
// of what holds /sys/fs/cgroup, without "ro"), or with CAP_SYS_ADMIN and
// no user namespace of its own (it could mount one). Then delete resets
// every limit, not only those create set.
func cgroupWritableInside(cfg *Config) bool {
	for _, m := range cfg.Mounts {
		if m.Flags&unix.MS_RDONLY != 0 {
			continue
		}
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
		if m.Bind {
			src := filepath.Clean(m.Source)
			if src == "/" || src == "/sys" || src == "/sys/fs" || strings.HasPrefix(src+"/", "/sys/fs/cgroup/") {
				return true
			}
		}
	}
	return mayAdmin(cfg.Process.Caps) && !cfg.hasNew(specs.UserNamespace)
}

// mayAdmin: a process with these capabilities may hold CAP_SYS_ADMIN.
func mayAdmin(c *CapSets) bool {
	return c == nil || c.Bounding&(1<<unix.CAP_SYS_ADMIN) != 0 || c.Permitted&(1<<unix.CAP_SYS_ADMIN) != 0
}

// noCloneIntoCgroup: this kernel has no clone3 with CLONE_INTO_CGROUP.
var noCloneIntoCgroup atomic.Bool
