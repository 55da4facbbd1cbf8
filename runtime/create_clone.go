package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// clone is create's clone phase: the init, then what only we can do for
// it before it goes on (id maps, the move into its cgroup when it did not
// join or was not born there, oom_score_adj). From here the child exists
// and must not outlive an error.
func (j *createJob) clone() error {
	sc := j.sc
	child, err := spawn.Start(sc)
	if errors.Is(err, spawn.ErrNoCloneIntoCgroup) {
		// A kernel before 5.7: moved in after clone, as on v1 without
		// self-join; later creates of this process skip the try.
		noCloneIntoCgroup.Store(true)
		if j.st.CgroupUnified != "" {
			j.hybridMove = true // the v1 join stays as planned
		} else {
			j.selfJoin = false
		}
		sc.CgroupDir = ""
		sc.LateRelease = false
		sc.FinalRelease = j.verifyRootfs != nil
		child, err = spawn.Start(sc)
	}
	if err != nil {
		if sc.CgroupDir != "" {
			return cgroupJoinError(sc.CgroupDir, err)
		}
		return err
	}
	j.ph.done("clone")
	j.child = child
	j.undo = append(j.undo, child.Kill)
	j.st.Pid = child.Pid
	if j.newUser {
		if err := writeIDMaps(child.Pid, j.cfg.UIDMappings, j.cfg.GIDMappings); err != nil {
			return err
		}
	}
	if j.systemd != nil {
		// The scope holds the init (the unit's PIDs), on v1 in the
		// hierarchies systemd manages: startScope joins the rest.
		if j.lateClaim != nil {
			j.startScopeAlongside()
		} else if err := j.startScope(); err != nil {
			return err
		}
	} else if j.cg != nil && !j.selfJoin {
		if err := j.cg.Add(child.Pid); err != nil {
			return cgroupJoinError(j.cg.Paths()[""], fmt.Errorf("join cgroup: %w", err))
		}
	}
	if j.hybridMove {
		if err := cgroup.JoinHybrid(j.st.CgroupUnified, child.Pid); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if adj := j.cfg.Process.OOMScoreAdj; adj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", child.Pid), []byte(strconv.Itoa(*adj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	// Read now: the child waits for Release, so it can have exited only
	// of a set-up failure (one that sets itself up meanwhile, LateRelease,
	// can fail before this): its own report says why.
	if j.st.PidStart, err = pidStartTime(child.Pid); err != nil {
		if werr := child.Wait(); werr != nil {
			return fmt.Errorf("container init: %w", werr)
		}
		return fmt.Errorf("container init exited: %w", err)
	}
	j.ph.done("join cgroup+limits")
	return nil
}

// cgroupJoinError says why the kernel would not put the init in its
// cgroup v2 (dir) when it is the cgroup's fault: EOPNOTSUPP, not a valid
// domain (its parent has processes of its own and delegates controllers,
// so it may only be threaded); EBUSY, it delegates controllers itself
// (processes live only in leaves).
func cgroupJoinError(dir string, err error) error {
	var why string
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		why = "not a valid domain: its parent has processes of its own and delegates controllers"
	case errors.Is(err, unix.EBUSY):
		why = "it delegates controllers to children (cgroup v2 puts processes only in leaves)"
	default:
		return err
	}
	return fmt.Errorf("%w: linux.cgroupsPath: the init cannot be put in cgroup %s: %s (%v)", ErrInvalidConfig, dir, why, err)
}

// runCreateHooks runs the hooks of create: prestart and createRuntime in
// our namespaces, then createContainer in the container's.
func (j *createJob) runCreateHooks() error {
	cfg := j.cfg
	state := hookState(j.opts.ID, j.opts.Bundle, j.child.Pid, "creating", cfg.Annotations)
	if err := runHooks("createRuntime", prestartHooks(cfg.Hooks), state); err != nil {
		return err
	}
	return runHooksIn("createContainer", cfg.Hooks.CreateContainer, j.child.Pid, cfg.Rootfs, state, nil)
}

// lateCgroup is the late claim's end: the cgroup, then the releases of
// the child (at its cgroup mount, at its first device node).
func (j *createJob) lateCgroup() error {
	cg, err := j.lateClaim()
	if err != nil {
		return err
	}
	j.ph.done("cgroup claim (wait)")
	if j.sc.CgroupJoinLate == nil && j.systemd == nil {
		if err := cg.Add(j.child.Pid); err != nil { // v2: no self-join
			return err
		}
	}
	if j.sc.ReleaseAgainAtMount >= 0 {
		if err := j.child.Release(); err != nil {
			return err
		}
	}
	if err := j.lateLimits(); err != nil {
		return err
	}
	j.ph.done("cgroup limits (wait)")
	return j.child.Release()
}

// ready is create's last phase: the hooks of create (with a mount
// namespace the child pauses after its mounts, before pivot_root, as the
// spec wants), the child's releases, its set-up, the saved state; an
// async create returns before the set-up, and run with hooks of start
// starts here.
func (j *createJob) ready() (*Container, error) {
	sc, child := j.sc, j.child
	if j.pauseForHooks && !sc.HookPause {
		if err := j.runCreateHooks(); err != nil {
			return nil, err
		}
	}
	var prepare func() error
	if j.lateClaim != nil {
		prepare = j.lateCgroup
	}
	if j.async && !j.startAfter {
		return j.r.createdAsync(j.opts, j.dir, j.st, child, j.cfg.Seccomp, prepare, j.ph)
	}
	if prepare != nil {
		if err := prepare(); err != nil {
			return nil, err
		}
	} else if !(j.verifyRootfs != nil && sc.LateRelease) {
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if j.verifyRootfs != nil {
		// The walk that proves the tree current, while the init sets up on
		// it; the init waits for the release below before it runs
		// anything of the container's.
		if err := j.verifyRootfs(); err != nil {
			return nil, err
		}
		j.ph.done("rootfs: fingerprint walk (verify)")
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if sc.HookPause {
		if err := child.WaitHookPoint(); err != nil {
			return nil, fmt.Errorf("container init: %w", err)
		}
		if err := j.runCreateHooks(); err != nil {
			return nil, err
		}
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if err := j.r.setUp(child, j.st, j.opts.Started, j.cfg.Seccomp, j.ph); err != nil {
		return nil, err
	}
	j.st.CgroupSlot = j.claimedSlot + 1 // the claim was taken above (prepare)
	if err := saveCreated(j.st, j.dir, j.opts.PidFile); err != nil {
		return nil, err
	}
	j.ph.done("save state")
	c := &Container{rt: j.r, id: j.opts.ID, dir: j.dir, state: j.st, pidfd: child.PidFD}
	if j.startAfter {
		j.lock.Close()
		if err := c.Start(); err != nil {
			return nil, err // the deferred undo removes the container
		}
	}
	return c, nil
}

// saveCreated writes the state file and, when asked, the pid file.
func saveCreated(st *savedState, dir, pidFile string) error {
	if err := st.save(dir); err != nil {
		return err
	}
	if pidFile != "" {
		return writePidFile(pidFile, st.Pid)
	}
	return nil
}

// waitSetup waits for an Async create's set-up to end, well or not (its
// cgroup claimed or not).
func (c *Container) waitSetup() {
	if c.setup != nil {
		<-c.setup
	}
}

// createdAsync records a released init and returns; a goroutine waits
// for the init's set-up (and hands on its seccomp listener).
func (r *Runtime) createdAsync(opts CreateOpts, dir string, st *savedState, child *spawn.Process, profile *specs.LinuxSeccomp, prepare func() error, ph *phases) (*Container, error) {
	if prepare == nil {
		// Nothing left for us: the child goes on at once.
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if err := saveCreated(st, dir, opts.PidFile); err != nil {
		return nil, err
	}
	ph.done("save state")
	c := &Container{rt: r, id: opts.ID, dir: dir, state: st, pidfd: child.PidFD, setup: make(chan struct{})}
	go func() {
		var err error
		if prepare != nil {
			// The cgroup; it releases the child.
			if err = prepare(); err != nil {
				unix.PidfdSendSignal(child.PidFD, unix.SIGKILL, nil, 0)
				child.Wait() // frees the plan once the child is gone
			}
		}
		if err == nil {
			if err = r.setUp(child, st, false, profile, ph); err != nil {
				// Not reaped here: the caller waits for the init's exit.
				unix.PidfdSendSignal(child.PidFD, unix.SIGKILL, nil, 0)
			}
		}
		c.setupErr = err
		close(c.setup)
	}()
	return c, nil
}

// setUp waits until the released child is set up, hands its seccomp
// listener on, and traces its steps.
func (r *Runtime) setUp(child *spawn.Process, st *savedState, started bool, profile *specs.LinuxSeccomp, ph *phases) error {
	child.OnSeccompListener = func(fd int) error {
		status := specs.StateCreating
		if started {
			status = specs.StateRunning
		}
		state := specs.State{Version: specs.Version, ID: st.ID, Status: status, Pid: child.Pid, Bundle: st.Bundle, Annotations: st.Annotations}
		return sendSeccompListener(profile, fd, child.Pid, state)
	}
	if err := child.Wait(); err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	ph.done("child set-up")
	for _, s := range child.Steps {
		r.Trace("child: "+s.Name, s.D)
	}
	return nil
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(ms []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		return []byte(b.String())
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/uid_map", pid), format(uids), 0); err != nil {
		return fmt.Errorf("write uid_map: %w", err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/gid_map", pid), format(gids), 0); err != nil {
		return fmt.Errorf("write gid_map: %w", err)
	}
	return nil
}

func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return os.Rename(tmp, path)
}

// pidStartTime reads field 22 of /proc/<pid>/stat; an exited (zombie)
// process is an error.
func pidStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
