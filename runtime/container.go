package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
)

// Load reads a container's state.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	st, err := loadSavedState(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
		return nil, err
	}
	return &Container{rt: r, id: id, dir: dir, state: st, pidfd: -1}, nil
}

// List loads every container under the root, sorted by ID.
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			continue // being created or deleted
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// alive reports whether the init still runs (and is the same process).
func (c *Container) alive() bool {
	if c.state.Pid <= 0 {
		return false
	}
	start, err := pidStartTime(c.state.Pid)
	return err == nil && start == c.state.PidStart
}

// Status works the status out from the process, the exec fifo and the
// freezer, as runc does: nothing is cached that could go stale.
func (c *Container) Status() Status {
	if !c.alive() {
		return Stopped
	}
	if _, err := os.Stat(c.dir + "/" + execFifo); err == nil {
		return Created
	}
	if cg := c.cgroup(); cg != nil {
		if frozen, err := cg.Frozen(); err == nil && frozen {
			return Paused
		}
	}
	return Running
}

func (c *Container) cgroup() cgroup.Manager {
	if len(c.state.CgroupPaths) == 0 {
		return nil
	}
	cg, err := cgroup.Load(c.state.CgroupPaths)
	if err != nil {
		return nil
	}
	return cg
}

// Cgroup is the container's cgroup, or nil. Call CgroupChanged before
// changing its limits. After an Async create it waits for the set-up,
// which claims the cgroup.
func (c *Container) Cgroup() cgroup.Manager {
	c.waitSetup()
	return c.cgroup()
}

// cgroupChangedFile in the state dir: the cgroup's limits changed after
// create, so delete resets all of them.
const cgroupChangedFile = "cgroup-changed"

// CgroupChanged records that the cgroup's limits are about to change
// outside create (update), so that delete resets every limit.
func (c *Container) CgroupChanged() error {
	if !c.state.CgroupSelective {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(c.dir, cgroupChangedFile), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", c.id, err)
	}
	return f.Close()
}

// Update applies new limits to the container's cgroup, as runc's update
// does: the device rules stay as create made them (a resources document
// may carry the spec's whole list, without the defaults create added).
// The caller has checked that there is a cgroup (Cgroup).
func (c *Container) Update(r *specs.LinuxResources) error {
	if err := c.CgroupChanged(); err != nil {
		return err
	}
	rr := *r
	rr.Devices = nil
	ph := c.rt.phases()
	if c.state.SystemdUnit != "" {
		if err := c.updateScope(&rr); err != nil {
			return err
		}
		ph.done("update: scope")
	}
	err := c.Cgroup().Set(&rr)
	ph.done("update: cgroup set")
	return err
}

func fileExists(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil
}

// State is the container's OCI state.
func (c *Container) State() *State {
	status := c.Status()
	pid := c.state.Pid
	if status == Stopped {
		pid = 0
	}
	return &State{
		OCIVersion:  specs.Version,
		ID:          c.id,
		Pid:         pid,
		Status:      status.String(),
		Bundle:      c.state.Bundle,
		Rootfs:      c.state.Rootfs,
		Created:     c.state.Created,
		Annotations: c.state.Annotations,
		Owner:       c.state.Owner,
	}
}

// Start lets a created container's init exec the program.
func (c *Container) Start() error {
	if err := c.Ready(); err != nil {
		return err
	}
	lock, err := lockDir(c.dir, true)
	if err != nil {
		return err
	}
	defer lock.Close()
	ph := c.rt.phases()
	ph.done("start: locked")
	switch s := c.Status(); {
	case s == Stopped:
		return fmt.Errorf("cannot start a container that has stopped: %w", ErrNotRunning)
	case !s.CanStart():
		return fmt.Errorf("cannot start an already running container: %w", ErrNotCreated)
	}
	if hasHooks(c.state.Hooks, startContainerHooks) {
		state := hookState(c.id, c.state.Bundle, c.state.Pid, "created", c.state.Annotations)
		if err := runHooksIn("startContainer", c.state.Hooks.StartContainer, c.state.Pid, "/", state, c.state.Seccomp); err != nil {
			// The spec: stop the container; delete follows.
			c.killAndWait()
			return err
		}
	}
	fifo := c.dir + "/" + execFifo
	// O_NONBLOCK: the init holds the fifo open for reading, so this
	// succeeds at once; ENXIO means the init is gone.
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start %s: %w (%v)", c.id, ErrNotRunning, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte{0}); err != nil {
		return fmt.Errorf("start %s: %w", c.id, err)
	}
	ph.done("start: released the init")
	if err := os.Remove(fifo); err != nil {
		return err
	}
	ph.done("start: fifo removed")
	if hasHooks(c.state.Hooks, poststartHooks) {
		state := hookState(c.id, c.state.Bundle, c.state.Pid, "running", c.state.Annotations)
		if err := runHooks("poststart", c.state.Hooks.Poststart, state); err != nil {
			c.rt.warnf("%v", err)
		}
	}
	return nil
}

// pidfdOpen opens the init's pidfd, checking it is still the same process.
func (c *Container) pidfdOpen() (int, error) {
	if c.pidfd >= 0 {
		return c.pidfd, nil
	}
	fd, err := unix.PidfdOpen(c.state.Pid, 0)
	if err != nil {
		return -1, fmt.Errorf("%w: %s", ErrNotRunning, c.id)
	}
	// The pidfd pins the process: if the start time matches now, the
	// signal goes to our init and not to a recycled pid.
	if !c.alive() {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %s", ErrNotRunning, c.id)
	}
	return fd, nil
}

// Signal sends sig to the init, or with all to every process of the
// container.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	s := c.Status()
	if !s.CanKill() {
		return fmt.Errorf("%w: %s", ErrNotRunning, c.id)
	}
	if all {
		if cg := c.cgroup(); cg != nil {
			return cg.Kill(sig)
		}
	}
	fd, err := c.pidfdOpen()
	if err != nil {
		return err
	}
	if fd != c.pidfd {
		defer unix.Close(fd)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %s: %w", c.id, err)
	}
	// A paused container gets signals only once thawed; SIGKILL must work.
	if s == Paused && sig == unix.SIGKILL {
		if cg := c.cgroup(); cg != nil {
			cg.Thaw()
		}
	}
	return nil
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	if err := c.Ready(); err != nil {
		return err
	}
	if !c.Status().CanPause() {
		return fmt.Errorf("%w: %s", ErrNotRunning, c.id)
	}
	cg := c.cgroup()
	if cg == nil {
		return fmt.Errorf("pause %s: the container has no cgroup: %w", c.id, ErrNotSupported)
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if !c.Status().CanResume() {
		return fmt.Errorf("%w: %s", ErrNotPaused, c.id)
	}
	return c.cgroup().Thaw()
}

// Close releases the init's pidfd held by the creating process.
func (c *Container) Close() error {
	if c.pidfd < 0 {
		return nil
	}
	err := unix.Close(c.pidfd)
	c.pidfd = -1
	return err
}
