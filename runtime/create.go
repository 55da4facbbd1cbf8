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
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/rootfs"
	"github.com/fre-runtime/fre/runtime/spawn"
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

// createJob is one create on its way: what each phase decides for the
// next ones. The phases, in order (create):
//
//	spec       load and convert the bundle's config        (this file)
//	state      the state dir: the claim on the ID          (this file)
//	instance   the tenant's workDir, the channel           (instance.go)
//	rootfs     the root the init mounts                    (this file, rootfs.go)
//	namespaces network policy, clone/unshare/join          (create_ns.go)
//	cgroup     claim or make it, its limits; v1 and v2     (create_cgroup.go)
//	plan       mounts, process, seccomp, stdio, exec fifo  (create_plan.go)
//	clone      the init, in its cgroup, its id maps        (create_clone.go)
//	ready      create hooks, releases, set-up, saved state (create_clone.go)
//
// Where cgroup v1 and v2 differ, the cgroup phase says so (with cgroup/).
type createJob struct {
	r     *Runtime
	opts  CreateOpts
	ph    *phases
	spec  *specs.Spec
	cfg   *Config
	dir   string // state dir
	lock  *os.File
	st    *savedState
	undo  []func() // on failure, last first
	after []func() // on return, failed or not
	sc    *spawn.Config

	// rootfs
	rootMount    *spawn.MountOp
	verifyRootfs func() error // the walk a speculated tree waits for

	// namespaces
	newUser     bool
	createHooks bool // prestart/createRuntime or createContainer hooks
	async       bool // return right after clone (opts.Async)
	claimLate   bool // the cgroup may be claimed alongside clone

	// cgroup
	limits      *specs.LinuxResources
	cg          cgroup.Manager // claimed before clone (nil with a late claim)
	bornIn      bool           // v2: the init is cloned into it
	hybridMove  bool           // hybrid: the init is moved into st.CgroupUnified after clone
	claimedSlot int            // the pool slot it came from
	lateClaim   func() (cgroup.Manager, error)
	lateLimits  func() error
	cgm         *cgroupMount

	// plan
	startAfter    bool // run: create, then Start (hooks of start)
	pauseForHooks bool
	selfJoin      bool // the child joins its cgroup itself

	// clone
	child *spawn.Process

	systemd *sdCgroup // the systemd driver's scope (systemd.go), or nil
}

// create is Create; speculate allows the bet on the rootfs's last import
// (prepareRootfs), where a lost bet can be undone without a trace.
func (r *Runtime) create(ctx context.Context, opts CreateOpts, speculate bool) (_ *Container, retErr error) {
	j := &createJob{r: r, opts: opts, ph: r.phases(), claimedSlot: -1}
	if r.Options.SystemdCgroup {
		// The driver's D-Bus connection (once per process), made while
		// the spec loads and the root is prepared (systemd.go).
		go r.systemd()
	}
	if err := j.loadSpec(); err != nil {
		return nil, err
	}
	if err := j.claimID(); err != nil {
		return nil, err
	}
	defer j.lock.Close()
	defer func() {
		for i := len(j.after) - 1; i >= 0; i-- {
			j.after[i]()
		}
		if retErr != nil {
			for i := len(j.undo) - 1; i >= 0; i-- {
				j.undo[i]()
			}
			os.RemoveAll(j.dir)
		}
	}()
	if err := j.instance(); err != nil {
		return nil, err
	}
	if err := j.prepareRoot(ctx, speculate); err != nil {
		return nil, err
	}
	if j.st.Channel != "" || j.st.RootfsStore != nil && j.st.RootfsStore.Ref != "" {
		j.journal() // the channel, the store's hold: a kill from here on leaves them to RemoveAbandoned
	}
	j.sc = newSpawnConfig()
	if err := j.namespaces(); err != nil {
		return nil, err
	}
	if err := j.cgroup(); err != nil {
		return nil, err
	}
	j.journal() // and the netns pin, the cgroup
	j.ph.done("netns+cgroup")
	if err := j.plan(); err != nil {
		return nil, err
	}
	j.ph.done("plan")
	if err := j.clone(); err != nil {
		return nil, err
	}
	return j.ready()
}

// loadSpec: the spec (given, or the bundle's config.json) converted and
// checked against the create's options.
func (j *createJob) loadSpec() error {
	opts := j.opts
	if err := ValidateID(opts.ID); err != nil {
		return err
	}
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return err
	}
	j.opts.Bundle = bundle
	spec := opts.Spec
	if spec == nil {
		if spec, err = LoadSpec(bundle); err != nil {
			return err
		}
	}
	cfg, err := Convert(spec, bundle)
	if err != nil {
		return err
	}
	if cfg.Process.Terminal && opts.ConsoleSocket == "" && opts.Console == nil {
		return fmt.Errorf("%w: process.terminal is set but no console socket was given", ErrInvalidConfig)
	}
	if !cfg.Process.Terminal && (opts.ConsoleSocket != "" || opts.Console != nil) {
		return fmt.Errorf("%w: a console socket was given but process.terminal is false", ErrInvalidConfig)
	}
	j.spec, j.cfg = spec, cfg
	j.ph.done("load+convert")
	return nil
}

// claimID makes and locks the state directory: the claim on the ID.
func (j *createJob) claimID() error {
	dir := j.r.dir(j.opts.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExist, j.opts.ID)
		}
		return fmt.Errorf("create state dir: %w", err)
	}
	lock, err := lockDir(dir, true)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	cfg := j.cfg
	j.dir, j.lock = dir, lock
	j.st = &savedState{ID: j.opts.ID, Bundle: j.opts.Bundle, Rootfs: cfg.Rootfs, Created: time.Now().UTC(), Owner: "", Annotations: cfg.Annotations, Hooks: cfg.Hooks, Seccomp: cfg.Seccomp, Process: j.spec.Process}
	return nil
}

// prepareRoot: the root the init mounts, the caller's (the shim's
// snapshot mount) or the bundle's through the store (prepareRootfs).
func (j *createJob) prepareRoot(ctx context.Context, speculate bool) error {
	cfg := j.cfg
	if m := j.opts.RootMount; m != nil {
		if !cfg.hasNew(specs.MountNamespace) {
			return fmt.Errorf("%w: a root mount for the init needs a new mount namespace", ErrInvalidConfig)
		}
		cm, err := convertMount(specs.Mount{Destination: "/", Type: m.Type, Source: m.Source, Options: m.Options}, j.opts.Bundle)
		if err != nil || cm.Bind {
			return fmt.Errorf("%w: root mount %s: %v", ErrInvalidConfig, m.Type, err)
		}
		j.rootMount = &spawn.MountOp{Kind: spawn.Mount, Source: cm.Source, Target: cfg.Rootfs, Fstype: cm.Type, Flags: cm.Flags, Data: cm.Data}
		return nil
	}
	// A lost bet is undone by a second create: only where nothing has
	// left this process before the walk's verdict (no console handed
	// over, no hook run), and with the init waiting for us at the end
	// of its set-up (not with Async).
	speculate = speculate && !cfg.Process.Terminal && !anyHooks(cfg.Hooks) && !(j.opts.Async && !j.opts.Started)
	rootMount, release, verify, err := j.r.prepareRootfs(ctx, cfg, j.opts.ID, j.st, j.ph, speculate)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	j.rootMount, j.verifyRootfs = rootMount, verify
	j.undo = append(j.undo, func() { release() })
	return nil
}

const execFifo = "exec.fifo"
