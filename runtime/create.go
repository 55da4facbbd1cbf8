package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/netns"
	"github.com/fre-runtime/fre/rootfs"
	"github.com/fre-runtime/fre/runtime/spawn"
	"github.com/fre-runtime/fre/seccomp"
)

// CreateOpts are the inputs of Create besides the bundle.
type CreateOpts struct {
	ID     string
	Bundle string
	// Spec, when set, is used instead of reading <bundle>/config.json.
	Spec *specs.Spec
	// ConsoleSocket is a unix socket path that receives the pty master.
	ConsoleSocket string
	// Console, when set, is a connected socket used like ConsoleSocket.
	Console *os.File
	PidFile string
	NoPivot bool
	// PreserveFDs is the number of fds from 3 up passed to the program.
	PreserveFDs int
	// Stdio replaces the program's stdin, stdout, stderr (nil: inherit).
	Stdio [3]*os.File
	// Started makes the program exec as soon as it is set up (run):
	// no exec fifo, no created state.
	Started bool
	// RootMount, when set, is mounted on the rootfs by the init, in its
	// new mount namespace, instead of by the caller in its own (the shim:
	// containerd's overlay of the snapshot). Nothing is then left to
	// unmount, and the caller's mount table, which every new mount
	// namespace copies, does not grow by a mount per container. Its
	// Destination is ignored; a bind is not supported.
	RootMount *specs.Mount
	// Async returns once the init is cloned, in its cgroup and recorded
	// in the state dir: its set-up in the new namespaces (mounts,
	// pivot_root, credentials) goes on while the caller works. Start,
	// Exec and Ready wait for it and return its error; an init whose
	// set-up failed has exited, and Delete removes the container as any
	// stopped one. For a caller with a round trip between create and
	// start (the shim); ignored with hooks of create or Started.
	Async bool
}

// Container is a loaded container.
type Container struct {
	rt    *Runtime
	id    string
	dir   string
	state *savedState
	// pidfd is valid in the process that created the container.
	pidfd int
	// setup, for an Async create, is closed when the init is set up
	// (setupErr nil) or has failed.
	setup    chan struct{}
	setupErr error
}

// Ready waits until the init is set up and returns the error of its
// set-up: nil at once unless the container was created with Async.
func (c *Container) Ready() error {
	c.waitSetup()
	return c.setupErr
}

// ID is the container's ID.
func (c *Container) ID() string { return c.id }

// Pid is the init's pid on the host.
func (c *Container) Pid() int { return c.state.Pid }

// ProcessSpec is the init's process as the spec gave it.
func (c *Container) ProcessSpec() *specs.Process { return c.state.Process }

// PidFD is the init's pidfd, or -1 when the container was loaded from disk.
func (c *Container) PidFD() int { return c.pidfd }

var capLastOnce = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return n
})

// Create creates a container: on return its init is set up and waits for
// Start (or, with opts.Started, already runs the program). On error
// nothing is left: no state, no cgroup, no process.
func (r *Runtime) Create(ctx context.Context, opts CreateOpts) (*Container, error) {
	c, err := r.create(ctx, opts, true)
	if errors.Is(err, rootfs.ErrStale) {
		// The bundle's rootfs changed since its last import, which the
		// first try bet on: that try is undone (the init ran nothing of
		// the container's); this one imports it anew.
		c, err = r.create(ctx, opts, false)
	}
	return c, err
}

// create is Create; speculate allows the bet on the rootfs's last import
// (prepareRootfs), where a lost bet can be undone without a trace.
func (r *Runtime) create(ctx context.Context, opts CreateOpts, speculate bool) (_ *Container, retErr error) {
	if err := ValidateID(opts.ID); err != nil {
		return nil, err
	}
	ph := r.phases()
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return nil, err
	}
	spec := opts.Spec
	if spec == nil {
		if spec, err = LoadSpec(bundle); err != nil {
			return nil, err
		}
	}
	cfg, err := Convert(spec, bundle)
	if err != nil {
		return nil, err
	}
	if cfg.Process.Terminal && opts.ConsoleSocket == "" && opts.Console == nil {
		return nil, fmt.Errorf("%w: process.terminal is set but no console socket was given", ErrInvalidConfig)
	}
	if !cfg.Process.Terminal && (opts.ConsoleSocket != "" || opts.Console != nil) {
		return nil, fmt.Errorf("%w: a console socket was given but process.terminal is false", ErrInvalidConfig)
	}

	ph.done("load+convert")
	// The state directory is the claim on the ID.
	dir := r.dir(opts.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExist, opts.ID)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	lock, err := lockDir(dir, true)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer lock.Close()
	st := &savedState{ID: opts.ID, Bundle: bundle, Rootfs: cfg.Rootfs, Created: time.Now().UTC(), Owner: "", Annotations: cfg.Annotations, Hooks: cfg.Hooks, Seccomp: cfg.Seccomp, Process: spec.Process}
	var undo []func()
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			os.RemoveAll(dir)
		}
	}()

	var rootMount *spawn.MountOp
	var verifyRootfs func() error // the walk a speculated tree waits for
	if m := opts.RootMount; m != nil {
		if !cfg.hasNew(specs.MountNamespace) {
			return nil, fmt.Errorf("%w: a root mount for the init needs a new mount namespace", ErrInvalidConfig)
		}
		cm, err := convertMount(specs.Mount{Destination: "/", Type: m.Type, Source: m.Source, Options: m.Options}, bundle)
		if err != nil || cm.Bind {
			return nil, fmt.Errorf("%w: root mount %s: %v", ErrInvalidConfig, m.Type, err)
		}
		rootMount = &spawn.MountOp{Kind: spawn.Mount, Source: cm.Source, Target: cfg.Rootfs, Fstype: cm.Type, Flags: cm.Flags, Data: cm.Data}
	} else {
		// A lost bet is undone by a second create: only where nothing has
		// left this process before the walk's verdict (no console handed
		// over, no hook run), and with the init waiting for us at the end
		// of its set-up (not with Async).
		speculate = speculate && !cfg.Process.Terminal && !anyHooks(cfg.Hooks) && !(opts.Async && !opts.Started)
		var releaseRootfs func() error
		if rootMount, releaseRootfs, verifyRootfs, err = r.prepareRootfs(ctx, cfg, opts.ID, st, ph, speculate); err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
		undo = append(undo, func() { releaseRootfs() })
	}

	sc := newSpawnConfig()

	// Network: a path is joined; otherwise the policy decides.
	policy, err := netns.PolicyFromAnnotations(cfg.Annotations, r.Options.NetnsPolicy)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	netPath := cfg.Join[specs.NetworkNamespace]
	newNet := false
	if cfg.NetRequested {
		switch policy {
		case netns.PolicyNew:
			newNet = true
		case netns.PolicyPool:
			p, _, err := r.NetnsPool().Take()
			if err != nil {
				return nil, fmt.Errorf("netns pool: %w", err)
			}
			netPath = p
			st.NetnsPooled = p
			undo = append(undo, func() { netns.Remove(p) })
		}
	}
	if !newNet && netPath == "" {
		for k := range cfg.Sysctl {
			if strings.HasPrefix(k, "net.") {
				return nil, fmt.Errorf("%w: linux.sysctl: %q needs a network namespace of the container's own (netns policy %s)", ErrInvalidConfig, k, policy)
			}
		}
	}

	// Namespaces: created by clone, or joined. A joined user namespace
	// must own the new ones, so those are unshared after joining it.
	flags := 0
	for _, t := range cfg.NewNamespaces {
		switch t {
		case specs.CgroupNamespace:
			sc.NewCgroupNS = true // after the cgroup join
		case specs.TimeNamespace:
			// unshared by the child (TimeNS below): clone(2) reads
			// CLONE_NEWTIME's bit as part of the exit signal.
		default:
			flags |= nsTypes[t]
		}
	}
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	if p, ok := cfg.Join[specs.UserNamespace]; ok {
		sc.Join = append(sc.Join, spawn.Join{Type: unix.CLONE_NEWUSER, Path: p})
		sc.UnshareFlags = flags &^ unix.CLONE_NEWPID
		flags &= unix.CLONE_NEWPID
	} else if flags&unix.CLONE_NEWUSER == 0 {
		// The child makes its namespaces but the pid one (only clone
		// puts a process in a new one): copying our mount table is the
		// costliest part of clone, and the child does it while we work.
		sc.UnshareFlags = flags &^ unix.CLONE_NEWPID
		flags &= unix.CLONE_NEWPID
	}
	sc.CloneFlags = flags
	for t, p := range cfg.Join {
		switch t {
		case specs.UserNamespace:
		case specs.PIDNamespace:
			sc.PidNS = p
		case specs.NetworkNamespace:
			// below, with the pool's
		default:
			sc.Join = append(sc.Join, spawn.Join{Type: nsTypes[t], Path: p})
		}
	}
	if netPath != "" {
		sc.Join = append(sc.Join, spawn.Join{Type: unix.CLONE_NEWNET, Path: netPath})
	}
	newUser := cfg.hasNew(specs.UserNamespace)
	sc.UsernsRoot = newUser
	// An async create returns right after clone. Without a user namespace
	// (the child then joins by path) and hooks of create (which may look
	// at it), the cgroup is claimed alongside clone, and made ready while
	// the child makes its namespaces and first mounts.
	createHooks := hasHooks(cfg.Hooks, prestartHooks) || hasHooks(cfg.Hooks, createContainerHooks)
	async := opts.Async && !opts.Started && !createHooks
	_, joinUser := cfg.Join[specs.UserNamespace]
	claimLate := !newUser && !joinUser && !createHooks
	var lateClaim func() (cgroup.Manager, error)
	var lateLimits func() error

	// The limits are in place before the child runs (it may make device
	// nodes while we would still be writing the device rules).
	var limits *specs.LinuxResources
	if cfg.Resources != nil {
		limits = withDefaultDevices(cfg.Resources)
	}
	setLimits := func(cg cgroup.Manager) error {
		if limits == nil {
			return nil
		}
		if err := cg.Set(limits); err != nil {
			return fmt.Errorf("set cgroup limits: %w", err)
		}
		return nil
	}
	// cgroup: created before clone so the child can be put in at once.
	var cg cgroup.Manager
	bornIn := false
	claimedSlot := -1 // the pool slot it came from (set by whoever takes the claim)
	var cgm *cgroupMount
	if cfg.CgroupsPath != "" || cfg.Resources != nil {
		p := cfg.CgroupsPath
		if p == "" {
			p = "/" + opts.ID
		}
		pool, err := r.CgroupPool()
		if err != nil {
			return nil, err
		}
		claim := func() (cgroup.Manager, int, error) {
			// A pooled cgroup is renamed into place; a miss creates one.
			m, slot, err := pool.ClaimSlot(p)
			if err != nil {
				return nil, -1, fmt.Errorf("cgroup %s: %w", p, err)
			}
			r.tookFromPool()
			return m, slot, nil
		}
		at, err := pool.Manager(p)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		// cgroup v2: the init is born in its cgroup (clone3's
		// CLONE_INTO_CGROUP), so the cgroup and its limits come first.
		bornIn = at.Version() == 2 && !noCloneIntoCgroup.Load()
		if claimLate && !bornIn {
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
			go func() {
				t0 := time.Now()
				m, slot, err := claim()
				if r.Trace != nil {
					r.Trace("cgroup claim (async)", time.Since(t0))
				}
				claimCh <- claimed{m, slot, err}
				if err == nil {
					err = setLimits(m)
				}
				limitsCh <- err
				if r.Trace != nil {
					r.Trace("cgroup claim+limits (async)", time.Since(t0))
				}
			}()
			lateClaim = sync.OnceValues(func() (cgroup.Manager, error) {
				c := <-claimCh
				claimedSlot = c.slot
				return c.m, c.err
			})
			lateLimits = sync.OnceValue(func() error { return <-limitsCh })
			// Either this or the set-up's prepare takes the claim.
			undo = append(undo, func() {
				if m, err := lateClaim(); err == nil {
					lateLimits() // done with it
					pool.ReleaseAt(m, claimedSlot)
				}
			})
		} else {
			if cg, claimedSlot, err = claim(); err != nil {
				return nil, err
			}
			undo = append(undo, func() { pool.ReleaseAt(cg, claimedSlot) })
			at = cg
		}
		st.CgroupPaths = at.Paths()
		st.CgroupSelective = !cgroupWritableInside(cfg)
		cgm = cgroupMountFor(at, sc.NewCgroupNS)
		if lateClaim != nil {
			sc.CgroupJoinLate = at.SelfJoinFiles()
		}
	}

	ph.done("netns+cgroup")
	// The root file system plan and the process.
	sc.MountNS = cfg.hasNS(specs.MountNamespace)
	sc.Rootfs = cfg.Rootfs
	sc.RootPropagation = cfg.RootPropagation
	sc.ReadonlyRoot = cfg.ReadonlyRoot
	sc.NoPivot = opts.NoPivot
	// Judged here, in our mount namespace: only a new one is a copy of it
	// (a namespace joined by path may lack the mount).
	sc.RootIsMount = cfg.hasNew(specs.MountNamespace) && (rootMount != nil || isMountPoint(cfg.Rootfs))
	sc.RootMount = rootMount
	var cgAt, devAt int
	sc.Mounts, sc.PostMounts, cgAt, devAt = mountPlanAt(cfg, cgm)
	if lateClaim != nil && sc.MountNS {
		// The child makes the mounts that need no cgroup while we claim
		// it, waits for Release at its cgroup mount (the claim), and again
		// at its first device node (the limits).
		sc.ReleaseAtMount, sc.ReleaseAgainAtMount = cgAt, devAt
	}
	sc.Hostname, sc.Domainname = cfg.Hostname, cfg.Domainname
	sc.Personality = cfg.Personality
	if cfg.hasNew(specs.TimeNamespace) {
		sc.TimeNS, sc.TimeOffsets = true, cfg.TimeOffsets
	}
	for k, v := range cfg.Sysctl {
		sc.Sysctl = append(sc.Sysctl, [2]string{sysctlPath(k), v})
	}
	proc := cfg.Process
	setProcess(sc, proc)
	sc.PreserveFDs = opts.PreserveFDs
	if err := setSeccomp(sc, cfg.Seccomp); err != nil {
		return nil, err
	}
	if err := setLSM(sc, proc); err != nil {
		return nil, err
	}
	closeConsole, err := setStdio(sc, opts.ConsoleSocket, opts.Console, opts.Stdio)
	if err != nil {
		return nil, err
	}
	defer closeConsole()

	// startContainer and poststart hooks belong to start: run then is
	// create + Start.
	startAfter := opts.Started && (hasHooks(cfg.Hooks, startContainerHooks) || hasHooks(cfg.Hooks, poststartHooks))
	if startAfter {
		opts.Started = false
	}
	pauseForHooks := hasHooks(cfg.Hooks, prestartHooks) || hasHooks(cfg.Hooks, createContainerHooks)
	sc.HookPause = pauseForHooks && sc.MountNS
	// The exec fifo: the init blocks reading it until start writes.
	if !opts.Started {
		fifo := filepath.Join(dir, execFifo)
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return nil, fmt.Errorf("create exec fifo: %w", err)
		}
		fd, err := unix.Open(fifo, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open exec fifo: %w", err)
		}
		defer unix.Close(fd)
		sc.FifoFD = fd
	}

	// The limits (set before the child is released, with a late claim
	// too: it may make device nodes as soon as it goes).
	if limits != nil && (cg != nil || lateClaim != nil) {
		st.CgroupLimits = cgroup.Controllers(limits)
	}
	if cg != nil {
		if err := setLimits(cg); err != nil {
			return nil, err
		}
	}
	// The child joins its cgroup itself, first thing (no global lock, see
	// SelfJoinFiles), unless hooks that may look at it run before it goes.
	selfJoin := false
	if cg != nil && bornIn {
		sc.CgroupDir, selfJoin = cg.Paths()[""], true
	} else if cg != nil && !pauseForHooks {
		sc.CgroupJoin = cg.SelfJoinFiles()
		selfJoin = sc.CgroupJoin != nil
	}
	// Without id maps to write and a cgroup to join for it, the child
	// sets itself up while we work, and waits for us after its mounts.
	sc.LateRelease = !newUser && !pauseForHooks && (cg == nil || selfJoin) && lateClaim == nil
	// A speculated rootfs: the init waits at the end of its set-up (the
	// late release's wait, or one of its own) until the walk is done.
	sc.FinalRelease = verifyRootfs != nil && !sc.LateRelease

	sc.Trace = r.Trace != nil
	ph.done("plan")
	// Clone. From here the child exists and must not outlive an error.
	child, err := spawn.Start(sc)
	if errors.Is(err, spawn.ErrNoCloneIntoCgroup) {
		// A kernel before 5.7: moved in after clone, as on v1 without
		// self-join; later creates of this process skip the try.
		noCloneIntoCgroup.Store(true)
		sc.CgroupDir, selfJoin = "", false
		sc.LateRelease = false
		sc.FinalRelease = verifyRootfs != nil
		child, err = spawn.Start(sc)
	}
	if err != nil {
		return nil, err
	}
	ph.done("clone")
	undo = append(undo, child.Kill)
	st.Pid = child.Pid
	if newUser {
		if err := writeIDMaps(child.Pid, cfg.UIDMappings, cfg.GIDMappings); err != nil {
			return nil, err
		}
	}
	if cg != nil {
		if !selfJoin {
			if err := cg.Add(child.Pid); err != nil {
				return nil, fmt.Errorf("join cgroup: %w", err)
			}
		}
	}
	if proc.OOMScoreAdj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", child.Pid), []byte(strconv.Itoa(*proc.OOMScoreAdj)), 0); err != nil {
			return nil, fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	// Read now: the child waits for Release, so it cannot have exited.
	if st.PidStart, err = pidStartTime(child.Pid); err != nil {
		return nil, fmt.Errorf("container init exited: %w", err)
	}
	ph.done("join cgroup+limits")
	// Hooks of create: prestart and createRuntime in our namespaces, then
	// createContainer in the container's. With a mount namespace the child
	// pauses after its mounts, before pivot_root, as the spec wants.
	runCreateHooks := func() error {
		state := hookState(opts.ID, bundle, child.Pid, "creating", cfg.Annotations)
		if err := runHooks("createRuntime", prestartHooks(cfg.Hooks), state); err != nil {
			return err
		}
		return runHooksIn("createContainer", cfg.Hooks.CreateContainer, child.Pid, state, nil)
	}
	if pauseForHooks && !sc.HookPause {
		if err := runCreateHooks(); err != nil {
			return nil, err
		}
	}
	// With a late claim: the cgroup, then the releases of the child.
	var prepare func() error
	if lateClaim != nil {
		prepare = func() error {
			cg, err := lateClaim()
			if err != nil {
				return err
			}
			ph.done("cgroup claim (wait)")
			if sc.CgroupJoinLate == nil {
				if err := cg.Add(child.Pid); err != nil { // v2: no self-join
					return err
				}
			}
			if sc.ReleaseAgainAtMount >= 0 {
				if err := child.Release(); err != nil {
					return err
				}
			}
			if err := lateLimits(); err != nil {
				return err
			}
			ph.done("cgroup limits (wait)")
			return child.Release()
		}
	}
	if async && !startAfter {
		return r.createdAsync(opts, dir, st, child, cfg.Seccomp, prepare, ph)
	}
	if prepare != nil {
		if err := prepare(); err != nil {
			return nil, err
		}
	} else if !(verifyRootfs != nil && sc.LateRelease) {
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if verifyRootfs != nil {
		// The walk that proves the tree current, while the init sets up on
		// it; the init waits for the release below before it runs
		// anything of the container's.
		if err := verifyRootfs(); err != nil {
			return nil, err
		}
		ph.done("rootfs: fingerprint walk (verify)")
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if sc.HookPause {
		if err := child.WaitHookPoint(); err != nil {
			return nil, fmt.Errorf("container init: %w", err)
		}
		if err := runCreateHooks(); err != nil {
			return nil, err
		}
		if err := child.Release(); err != nil {
			return nil, err
		}
	}
	if err := r.setUp(child, st, opts.Started, cfg.Seccomp, ph); err != nil {
		return nil, err
	}
	st.CgroupSlot = claimedSlot + 1 // the claim was taken above (prepare)
	if err := saveCreated(st, dir, opts.PidFile); err != nil {
		return nil, err
	}
	ph.done("save state")
	c := &Container{rt: r, id: opts.ID, dir: dir, state: st, pidfd: child.PidFD}
	if startAfter {
		lock.Close()
		if err := c.Start(); err != nil {
			return nil, err // the deferred undo removes the container
		}
	}
	return c, nil
}

const execFifo = "exec.fifo"

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
	if err := child.Wait(); err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	if fd := child.SeccompListener; fd >= 0 {
		status := specs.StateCreating
		if started {
			status = specs.StateRunning
		}
		state := specs.State{Version: specs.Version, ID: st.ID, Status: status, Pid: child.Pid, Bundle: st.Bundle, Annotations: st.Annotations}
		if err := sendSeccompListener(profile, fd, child.Pid, state); err != nil {
			return err
		}
	}
	ph.done("child set-up")
	for _, s := range child.Steps {
		r.Trace("child: "+s.Name, s.D)
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
// the spec's rules, as runc does.
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
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"},
	)
	return &c
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

// setProcess puts the program and its credentials into the plan.
func setProcess(sc *spawn.Config, proc *ProcessConfig) {
	sc.Args, sc.Env, sc.Cwd = proc.Args, proc.Env, proc.Cwd
	sc.PathEnv = envValue(proc.Env, "PATH")
	sc.SetUser = true
	sc.UID, sc.GID, sc.Groups = proc.UID, proc.GID, proc.AdditionalGids
	if proc.Umask != nil {
		sc.Umask = int(*proc.Umask)
	}
	for _, rl := range proc.Rlimits {
		sc.Rlimits = append(sc.Rlimits, spawn.Rlimit{Resource: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	sc.NoNewPrivs = proc.NoNewPrivs
	if proc.Caps != nil {
		c := spawn.Caps(*proc.Caps)
		sc.Caps = &c
		sc.CapLast = capLastOnce()
	}
	sc.ConsoleRows, sc.ConsoleCols = proc.ConsoleRows, proc.ConsoleCols
	sc.Sched = proc.Sched
	sc.IOPrio = proc.IOPrio
}

// setStdio connects the console socket (the child sends the pty master
// through it) and sets the program's stdio. The returned func closes what
// was opened, once the child has its copies.
func setStdio(sc *spawn.Config, socket string, console *os.File, stdio [3]*os.File) (func(), error) {
	closeFn := func() {}
	if socket != "" {
		// A plain socket: package net's set-up would cost every process.
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("connect console socket %s: %w", socket, err)
		}
		for {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: socket})
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("connect console socket %s: %w", socket, err)
		}
		sc.ConsoleFD = fd
		closeFn = func() { unix.Close(fd) }
	} else if console != nil {
		sc.ConsoleFD = int(console.Fd())
	}
	for i, f := range stdio {
		sc.Stdio[i] = -1
		if f != nil {
			sc.Stdio[i] = int(f.Fd())
		}
	}
	return closeFn, nil
}

// setSeccomp compiles the profile; fre-dmz installs it right before the
// program's execve (or the child, before dropping credentials, when
// no_new_privs is off).
func setSeccomp(sc *spawn.Config, profile *specs.LinuxSeccomp) error {
	if profile == nil {
		return nil
	}
	prog, flags, err := seccomp.Compile(profile)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	sc.Seccomp, sc.SeccompFlag = prog, flags
	return nil
}

// newSpawnConfig is a plan that changes nothing yet.
func newSpawnConfig() *spawn.Config {
	return &spawn.Config{FifoFD: -1, ConsoleFD: -1, Umask: -1, Personality: -1, IOPrio: -1, Stdio: [3]int{-1, -1, -1}, ReleaseAtMount: -1, ReleaseAgainAtMount: -1}
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
