package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/cgroup/systemd"
)

// The systemd cgroup driver (Options.SystemdCgroup: fre-runc
// --systemd-cgroup, the shim's SystemdCgroup): a container's cgroup is a
// transient scope unit, "slice:prefix:name" -> prefix-name.scope in that
// slice, started over D-Bus with the init's pid and the resources
// systemd owns as unit properties (cgroup/systemd); what systemd has no
// property for, and FRE's device filter, are written to the cgroup's
// files as with cgroupfs. A scope needs a pid to exist, so the init is
// cloned first and waits while the unit starts (never born in the cgroup,
// and never from the pool: systemd owns the tree).

// systemdTimeout bounds each D-Bus job (start, stop).
const systemdTimeout = 30 * time.Second

// sdCgroup is a create's scope: where it goes and its properties.
type sdCgroup struct {
	path    systemd.Path
	res     *specs.LinuxResources
	unified bool
	props   []sddbus.Property // for the connected systemd (properties)
	// With alongside: the start's results (a goroutine's, once
	// launched), which lateClaim and lateLimits wait for.
	unitCh, limitsCh chan error
	launched         bool
	started          bool
}

// systemd is the runtime's connection to systemd, made on first use and
// kept (the shim makes many containers through one).
func (r *Runtime) systemd() (*systemd.Conn, error) {
	r.sdMu.Lock()
	defer r.sdMu.Unlock()
	if r.sdConn != nil {
		return r.sdConn, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	c, err := systemd.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("systemd cgroup driver: %w", err)
	}
	r.sdConn = c
	return c, nil
}

// systemdCgroup is the cgroup phase under the systemd driver: the scope's
// place and properties; the unit itself starts after clone (startScope).
// With the start alongside the init's set-up, so does everything that
// needs D-Bus (the connection, made since create began, and the
// properties, which depend on systemd's version): this phase only checks
// them.
func (j *createJob) systemdCgroup() error {
	cfg := j.cfg
	p, err := systemd.ParseCgroupsPath(cfg.CgroupsPath, j.opts.ID)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	sd := &sdCgroup{path: p, res: j.limits, unified: cgroup.Mode() == cgroup.Unified}
	if sd.res == nil {
		sd.res = &specs.LinuxResources{}
	}
	alongside := j.claimLate && j.r.Options.SystemdScopeAlongside
	if alongside {
		// Bad input is refused here, before clone: what a newer systemd
		// could set, an older one only leaves out.
		if _, err := systemd.Properties(sd.res, sd.unified, anySystemd); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	} else if err := sd.properties(j.r); err != nil {
		return err
	}
	at, err := cgroup.New(p.Dir)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", p.Dir, err)
	}
	j.systemd = sd
	j.cg = at
	j.st.SystemdUnit = p.Unit
	j.undo = append(j.undo, func() {
		if sd.launched {
			j.lateClaim() // the start's end, whatever it was
			j.lateLimits()
		}
		if sd.started {
			ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
			defer cancel()
			at.Kill(9)
			if conn, err := j.r.systemd(); err == nil {
				conn.Stop(ctx, p.Unit)
			}
			at.Destroy() // v1: the hierarchies systemd does not manage
		}
	})
	j.cgroupChosen(at)
	if alongside {
		j.alongside()
	}
	return nil
}

// anySystemd is a systemd version newer than any: Properties' checks of
// the input, with every property it knows.
const anySystemd = 1 << 30

// properties computes the scope's properties for the connected systemd's
// version (once).
func (sd *sdCgroup) properties(r *Runtime) error {
	if sd.props != nil {
		return nil
	}
	conn, err := r.systemd()
	if err != nil {
		return err
	}
	props, err := systemd.Properties(sd.res, sd.unified, conn.Version())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	sd.props = props
	return nil
}

// startScope starts the container's scope holding the init (cloned and
// waiting), makes the cgroup's directories systemd did not make (v1's
// other hierarchies), on v1 puts the init in the hierarchies systemd left
// alone, and writes the limits into the cgroup's files.
func (j *createJob) startScope() error {
	if err := j.startUnit(); err != nil {
		return err
	}
	j.ph.done("systemd: start scope")
	return j.setLimits(j.cg)
}

// alongside plans the scope's start alongside the init's set-up: the late
// claim's shape (lateCgroup takes it), with the unit's start as the
// claim. The init makes its namespaces and the mounts that need no
// cgroup, and waits at its cgroup mount for the unit and at its first
// device node for the limits: D-Bus's round trips and systemd's job
// overlap its set-up instead of preceding it (startScopeAlongside, after
// clone).
func (j *createJob) alongside() {
	sd := j.systemd
	sd.unitCh, sd.limitsCh = make(chan error, 1), make(chan error, 1)
	j.lateClaim = sync.OnceValues(func() (cgroup.Manager, error) { return j.cg, <-sd.unitCh })
	j.lateLimits = sync.OnceValue(func() error { return <-sd.limitsCh })
}

// startScopeAlongside is startScope in its own goroutine (alongside).
func (j *createJob) startScopeAlongside() {
	sd, trace := j.systemd, j.r.Trace // not j.ph: that is create's goroutine's
	sd.launched = true
	go func() {
		t0 := time.Now()
		err := j.startUnit()
		if trace != nil {
			trace("systemd: start scope (alongside)", time.Since(t0))
		}
		sd.unitCh <- err
		if err == nil {
			err = j.setLimits(j.cg)
		}
		sd.limitsCh <- err
	}()
}

// startUnit is startScope less the limits: the unit started with the init
// in it, and the init in every hierarchy of its cgroup.
func (j *createJob) startUnit() error {
	conn, err := j.r.systemd()
	if err != nil {
		return err
	}
	if err := j.systemd.properties(j.r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	if err := conn.StartScope(ctx, j.systemd.path, j.child.Pid, j.systemd.props); err != nil {
		return fmt.Errorf("systemd cgroup driver: %w", err)
	}
	j.systemd.started = true
	if err := j.cg.Create(); err != nil {
		return err
	}
	if cgroup.Mode() == cgroup.Unified {
		// One hierarchy, and the init is in it; the controllers systemd
		// does not enable (hugetlb, rdma, misc) are enabled above it.
		if e, ok := j.cg.(interface{ EnableAbove() error }); ok {
			return e.EnableAbove()
		}
		return nil
	}
	if err := j.cg.Add(j.child.Pid); err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	return nil
}

// stopScope, at delete, stops the container's scope: its processes are
// killed first, its cgroup is gone when it returns, and the unit, told to
// stop, is collected by systemd right after (Conn.StopScope).
func (c *Container) stopScope(cg cgroup.Manager, ph *phases) error {
	if cg != nil {
		if pids, err := cg.Pids(); err == nil && len(pids) > 0 {
			cg.Kill(9)
			cg.WaitEmpty(10 * time.Second)
		}
	}
	conn, err := c.rt.systemd()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	ph.done("delete: systemd connect, kill")
	// The stop queued, not waited for (StopScope): the scope is empty.
	if err := conn.StopScope(ctx, c.state.SystemdUnit); err != nil {
		return fmt.Errorf("systemd cgroup driver: stop %s: %w", c.state.SystemdUnit, err)
	}
	ph.done("delete: systemd stop")
	if cg == nil {
		return nil
	}
	// systemd removes the scope's cgroup once it has the unit dead (v1:
	// its own name=systemd hierarchy's, and the controllers' it manages);
	// removing it first makes systemd miss the scope's end (the unit then
	// stays "deactivating" until its stop times out). So wait for
	// systemd, and remove what is left only if it did not.
	dir := cg.Paths()[""]
	if dir == "" {
		dir = filepath.Join(systemdV1Hierarchy, cg.Path())
	}
	cgroup.WaitGone(dir, scopeGoneTimeout)
	ph.done("delete: systemd removed the cgroup")
	// What is left: v1's hierarchies systemd does not manage (runc removes
	// the scope's path after its stop too).
	return cg.Destroy()
}

// systemdV1Hierarchy is where systemd mounts its own (name=systemd)
// hierarchy on cgroup v1.
const systemdV1Hierarchy = "/sys/fs/cgroup/systemd"

// scopeGoneTimeout bounds delete's wait for systemd to remove a stopped
// scope's cgroup.
const scopeGoneTimeout = 10 * time.Second

// updateScope sets the unit's properties for r (update), before the
// cgroup's files are written as with cgroupfs.
func (c *Container) updateScope(r *specs.LinuxResources) error {
	conn, err := c.rt.systemd()
	if err != nil {
		return err
	}
	// Only the resources change: the unit's fixed properties (Delegate,
	// accounting, dependencies) are set once, at start.
	props, err := systemd.ResourceProperties(r, cgroup.Mode() == cgroup.Unified, conn.Version())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if len(props) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	return conn.SetProperties(ctx, c.state.SystemdUnit, props)
}
