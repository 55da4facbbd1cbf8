package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/netns"
	freruntime "github.com/fre-runtime/fre/runtime"
	"github.com/fre-runtime/fre/shim/process"
)

var (
	_     = shim.TTRPCService(&service{})
	empty = &ptypes.Empty{}
)

// service is the Task service of one shim, which may serve several
// containers (a pod, a group).
type service struct {
	ctx       context.Context
	events    chan any
	publisher shim.Publisher
	sd        shutdown.Service
	epoller   *console.Epoller

	mu         sync.Mutex
	containers map[string]*container
	runtimes   map[string]*freruntime.Runtime // by state root and netns settings
}

// container is one task: its init, its execs, and what the shim set up
// for it. mu orders the container's events (see the package doc).
type container struct {
	id, bundle string
	ns         string
	init       *process.Init
	hasPidNS   bool
	rootfs     *rootfsMount

	mu       sync.Mutex
	execs    map[string]*process.Exec
	running  int         // started execs whose exit is not yet published
	initExit *ExitRecord // the init's exit, held back while execs run
	oomSeen  uint64
	oomStop  func()
	// oomWatched: watchOOM ran (in Create).
	oomWatched bool
}

// NewTaskService starts the service's event forwarder, stranger reaper
// and console epoller.
// firstCreate marks the shim's first Create in the timing log.
var firstCreate sync.Once

// SocketEnv names the daemon's own socket address, set by the start
// command: the daemon removes the socket when it ends.
const SocketEnv = "FRE_SHIM_SOCKET"

func NewTaskService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service) (taskAPI.TTRPCTaskService, error) {
	Milestone("shim.service")
	// The shim library has just set its GC percent (setRuntime): off
	// again until the shim is first idle.
	DeferGC()
	scheduleTrim()
	ep, err := console.NewEpoller()
	if err != nil {
		return nil, fmt.Errorf("console epoller: %w", err)
	}
	go ep.Wait()
	s := &service{
		ctx:        ctx,
		events:     make(chan any, 128),
		publisher:  publisher,
		sd:         sd,
		epoller:    ep,
		containers: map[string]*container{},
		runtimes:   map[string]*freruntime.Runtime{},
	}
	// Before serving, what a first Create of a typical spec would build
	// (containerd's Create may be waiting already); the rest meanwhile.
	warmUpEarly()
	go WarmUp()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go process.RunReaper(rctx)
	go s.forward(ctx)
	sd.RegisterCallback(func(context.Context) error {
		cancel()
		FlushTimings()
		return ep.Close()
	})
	address := os.Getenv(SocketEnv)
	if address == "" {
		address, _ = shim.ReadAddress("address")
	}
	if address != "" {
		sd.RegisterCallback(func(context.Context) error { return shim.RemoveSocket(address) })
	}
	return s, nil
}

// UnaryServerInterceptor marks the shim's first request in the timing
// log (the shim library chains it before the handlers, so it sees the
// request before it is decoded).
func (s *service) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	var first sync.Once
	return func(ctx context.Context, un ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
		first.Do(func() { Milestone("shim.first-request " + path.Base(info.FullMethod)) })
		return m(ctx, un)
	}
}

func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	Milestone("shim.register")
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

// send queues an event; the forwarder publishes in queue order.
func (s *service) send(evt any) {
	select {
	case s.events <- evt:
	case <-s.sd.Done():
	}
}

func (s *service) forward(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	defer s.publisher.Close()
	publish := func(e any) {
		if err := s.publisher.Publish(ctx, runtime.GetTopic(e), e); err != nil {
			log.G(ctx).WithError(err).Error("post event")
		}
	}
	for {
		select {
		case e := <-s.events:
			publish(e)
		case <-s.sd.Done():
			for {
				select {
				case e := <-s.events:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s not created", id)
	}
	return c, nil
}

// runtimeFor returns the (shared) runtime for a state root.
func (s *service) runtimeFor(ctx context.Context, o Options, ns string) (*freruntime.Runtime, error) {
	root := o.RuntimeRoot(ns)
	key := fmt.Sprintf("%s|%s|%d|%t", root, o.NetnsPolicy, o.NetnsPoolSize, o.SystemdCgroup)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt := s.runtimes[key]; rt != nil {
		return rt, nil
	}
	// containerd (ctr, and clients that take its default spec) puts a
	// container's cgroup at /<namespace>/<id>: that parent is pooled. A
	// pod's cgroup (kubelet's) is not: kubelet must be able to remove it.
	rt, err := freruntime.New(root, freruntime.Options{NetnsPolicy: netns.Policy(o.NetnsPolicy), NetnsPoolSize: o.NetnsPoolSize,
		CgroupPoolParents: []string{"/" + ns}, SystemdCgroup: o.SystemdCgroup})
	if err != nil {
		return nil, err
	}
	s.runtimes[key] = rt
	if timingLog() != nil {
		rt.Trace = func(phase string, d time.Duration) { record("runtime."+phase, "-", d) }
	}
	s.keepWarm(ctx, rt)
	trimAfterGC()
	return rt, nil
}

// The background refill tops the cgroup pool up poolSettle after creates
// took from it, and every poolRefill in any case (the netns pool refills
// after every Take).
const (
	poolSettle = 200 * time.Millisecond
	poolRefill = time.Minute
)

// keepWarm refills the runtime's cgroup pool (and, under the pool policy,
// its netns pool) in the background until the shim shuts down. The pools
// are opened here, before any container, so that the refill and Create
// never open them concurrently. At shutdown the idle cgroups stay for the
// next shim of the same root; the idle namespaces are destroyed.
func (s *service) keepWarm(ctx context.Context, rt *freruntime.Runtime) {
	if _, err := rt.CgroupPool(); err != nil {
		log.G(ctx).WithError(err).Warn("cgroup pool")
	}
	pooled := rt.Options.NetnsPolicy == netns.PolicyPool
	if pooled {
		rt.NetnsPool()
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(s.ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.KeepPoolsWarm(wctx, poolSettle, poolRefill, scheduleTrim)
	}()
	s.sd.RegisterCallback(func(context.Context) error {
		cancel()
		<-done
		var err error
		if pooled {
			err = rt.NetnsPool().Close()
		}
		return errors.Join(err, rt.Close())
	})
}

func loadSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: bundle %s: %v", errdefs.ErrInvalidArgument, bundle, err)
	}
	var spec specs.Spec
	if err := quickjson.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("%w: %s/config.json: %v", errdefs.ErrInvalidArgument, bundle, err)
	}
	return &spec, nil
}

func hasNewPidNS(spec *specs.Spec) bool { return hasNewNS(spec, specs.PIDNamespace) }

func hasNewNS(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, n := range spec.Linux.Namespaces {
		if n.Type == t {
			return n.Path == ""
		}
	}
	return false
}

// initMountsRoot: the init may mount the rootfs itself, in a mount
// namespace of its own (not one joined by path), as root of the host (in
// a user namespace the host's overlay is not its to mount), and with an
// async create (in a sync one it saves nothing).
func initMountsRoot(spec *specs.Spec, o Options) bool {
	if o.SyncCreate || !hasNewNS(spec, specs.MountNamespace) {
		return false
	}
	for _, n := range spec.Linux.Namespaces {
		if n.Type == specs.UserNamespace {
			return false
		}
	}
	return true
}

// Create creates a container: rootfs mounted, init set up and waiting for
// Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	firstCreate.Do(func() { Milestone("shim.create") })
	defer timed("create", r.ID)()
	resp, err := s.create(ctx, r)
	scheduleTrim()
	return resp, errgrpc.ToGRPC(err)
}

func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	createStart := time.Now()
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, fmt.Errorf("restore from checkpoint: %w", errdefs.ErrNotImplemented)
	}
	s.mu.Lock()
	_, exists := s.containers[r.ID]
	s.mu.Unlock()
	if exists {
		return nil, fmt.Errorf("container %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	if err := removeDeleted(r.Bundle); err != nil {
		return nil, err
	}
	doneSpec := timed("create.spec+options", r.ID)
	opts, err := parseOptions(r.Options)
	if err != nil {
		return nil, err
	}
	spec, err := loadSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	if opts, err = opts.withAnnotations(spec.Annotations); err != nil {
		return nil, err
	}
	if err := writeBundleOptions(r.Bundle, opts); err != nil {
		return nil, err
	}
	rt, err := s.runtimeFor(ctx, opts, ns)
	if err != nil {
		return nil, err
	}
	doneSpec()
	doneRootfs := timed("create.rootfs", r.ID)
	rfs, err := s.mountRootfs(ctx, r.ID, r.Bundle, r.Rootfs, opts, initMountsRoot(spec, opts))
	doneRootfs()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			rfs.unmount()
		}
	}()
	doneInit := timed("create.init", r.ID)
	init, err := process.NewInit(ctx, process.InitConfig{
		ID: r.ID, Bundle: r.Bundle, Namespace: ns, Spec: spec, Runtime: rt, Epoller: s.epoller,
		Stdio:     process.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Async:     !opts.SyncCreate,
		RootMount: rfs.initMount(),
		Trace:     traceInit(r.ID),
	})
	doneInit()
	if err == nil && timingLog() != nil {
		// When the init is set up, from the start of Create: with an
		// async create, later than Create's return.
		go func(id string, t0 time.Time) {
			if init.Container().Ready() == nil {
				record("create.ready", id, time.Since(t0))
			}
		}(r.ID, createStart)
	}
	if err != nil {
		return nil, err
	}
	defer timed("create.oom+event", r.ID)()
	c := &container{id: r.ID, bundle: r.Bundle, ns: ns, init: init, hasPidNS: hasNewPidNS(spec),
		rootfs: rfs, execs: map[string]*process.Exec{}}
	s.watchOOM(ctx, c)
	s.mu.Lock()
	s.containers[r.ID] = c
	s.mu.Unlock()

	c.mu.Lock()
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         uint32(init.Pid()),
	})
	c.mu.Unlock()
	go s.watchInit(c)
	return &taskAPI.CreateTaskResponse{Pid: uint32(init.Pid())}, nil
}

// watchOOM publishes the container's OOM kills as they happen, and one
// that came before it. Create calls it once the set-up (which claims the
// cgroup) is done; c.mu is held or c unpublished.
func (s *service) watchOOM(ctx context.Context, c *container) {
	if c.oomWatched || c.initExit != nil {
		return
	}
	c.oomWatched = true
	if cg := c.init.Container().Cgroup(); cg != nil {
		stop, err := watchOOM(cg, func() { s.checkOOM(c, true) })
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("no OOM events")
		} else {
			c.oomStop = stop
			// A kill before the watch (after an async create the program
			// may have started already).
			s.checkOOM(c, false)
		}
	}
}

// checkOOM publishes a TaskOOM when the cgroup's OOM kill counter grew.
func (s *service) checkOOM(c *container, lock bool) {
	cg := c.init.Container().Cgroup()
	if cg == nil {
		return
	}
	n, err := cg.OOMKillCount()
	if err != nil {
		return
	}
	if lock {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	if n > c.oomSeen {
		c.oomSeen = n
		s.send(&eventstypes.TaskOOM{ContainerID: c.id})
	}
}

// watchInit waits for the init's exit and publishes it once every started
// exec's exit is out.
func (s *service) watchInit(c *container) {
	status, err := c.init.WaitExit()
	if err != nil {
		log.G(s.ctx).WithError(err).WithField("id", c.id).Error("wait for init")
		status = 255
	}
	at := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Without a pid namespace of its own, the container's other processes
	// outlive the init: kill them, as runc's shim does. Execs are killed in
	// any case, so that the init's exit is never held back forever.
	if !c.hasPidNS {
		if cg := c.init.Container().Cgroup(); cg != nil {
			cg.Kill(unix.SIGKILL)
		}
	}
	for _, e := range c.execs {
		if e.State() == process.Running {
			e.Kill(s.ctx, unix.SIGKILL)
		}
	}
	s.checkOOM(c, false)
	c.initExit = &ExitRecord{Pid: c.init.Pid(), Status: status, ExitedAt: at}
	if c.running == 0 {
		s.publishInitExit(c)
	}
}

// publishInitExit publishes the init's exit; c.mu is held.
func (s *service) publishInitExit(c *container) {
	e := *c.initExit
	if err := writeExit(c.bundle, e); err != nil {
		log.G(s.ctx).WithError(err).WithField("id", c.id).Warn("record exit status")
	}
	if c.oomStop != nil {
		c.oomStop()
		c.oomStop = nil
	}
	c.init.SetExited(e.Status, e.ExitedAt)
	s.send(&eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          c.id,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.ExitedAt),
	})
}

func (s *service) watchExec(c *container, e *process.Exec) {
	status, err := e.WaitExit()
	if err != nil {
		log.G(s.ctx).WithError(err).WithField("exec", e.ID()).Error("wait for exec")
		status = 255
	}
	at := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.SetExited(status, at)
	s.send(&eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          e.ID(),
		Pid:         uint32(e.Pid()),
		ExitStatus:  uint32(status),
		ExitedAt:    protobuf.ToTimestamp(at),
	})
	c.running--
	if c.running == 0 && c.initExit != nil && c.init.State() != process.Stopped && c.init.State() != process.Deleted {
		s.publishInitExit(c)
	}
}

// Start starts the init or an exec.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	defer scheduleTrim()
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.ExecID == "" {
		defer timed("start", r.ID)()
		d := timed("start.init", r.ID)
		if err := c.init.Start(ctx); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		d()
		d = timed("start.event", r.ID)
		s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: uint32(c.init.Pid())})
		d()
		return &taskAPI.StartResponse{Pid: uint32(c.init.Pid())}, nil
	}
	e := c.execs[r.ExecID]
	if e == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %s in %s", r.ExecID, r.ID)
	}
	if c.initExit != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s init process is not running", c.id)
	}
	if err := e.Start(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	c.running++
	s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: e.ID(), Pid: uint32(e.Pid())})
	go s.watchExec(c, e)
	return &taskAPI.StartResponse{Pid: uint32(e.Pid())}, nil
}

// Delete deletes an exec, or the container once its init has stopped (a
// created container is killed first).
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	defer scheduleTrim()
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		e := c.execs[r.ExecID]
		if e == nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %s in %s", r.ExecID, r.ID)
		}
		if err := e.Delete(ctx); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		delete(c.execs, r.ExecID)
		return &taskAPI.DeleteResponse{Pid: uint32(e.Pid()), ExitStatus: uint32(e.ExitStatus()),
			ExitedAt: protobuf.ToTimestamp(e.ExitedAt())}, nil
	}
	if c.init.State() == process.Created {
		if err := c.init.KillForDelete(); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		if err := c.init.Wait(ctx); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.init.Delete(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	for id, e := range c.execs {
		e.Delete(ctx)
		delete(c.execs, id)
	}
	p := c.init
	if err := c.rootfs.unmount(); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("unmount rootfs")
	} else if err := writeDeleted(c.bundle, p.Pid(), p.ExitStatus(), p.ExitedAt()); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("record delete")
	}
	s.mu.Lock()
	delete(s.containers, c.id)
	s.mu.Unlock()
	s.send(&eventstypes.TaskDelete{ContainerID: c.id, Pid: uint32(p.Pid()), ExitStatus: uint32(p.ExitStatus()),
		ExitedAt: protobuf.ToTimestamp(p.ExitedAt()), ID: c.id})
	return &taskAPI.DeleteResponse{Pid: uint32(p.Pid()), ExitStatus: uint32(p.ExitStatus()),
		ExitedAt: protobuf.ToTimestamp(p.ExitedAt())}, nil
}

// Exec records an exec; Start runs it.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var spec specs.Process
	if r.Spec == nil || quickjson.Unmarshal(r.Spec.Value, &spec) != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec %s: bad process spec", r.ExecID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[r.ExecID]; ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "exec %s in %s", r.ExecID, r.ID)
	}
	if err := c.init.State().Check(process.OpExec, c.id); err != nil || c.initExit != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is not running", c.id)
	}
	c.execs[r.ExecID] = c.init.NewExec(r.ExecID,
		process.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}, &spec)
	s.send(&eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: r.ExecID})
	return empty, nil
}

// proc is what State, Wait, ResizePty and CloseIO need of either kind.
type proc interface {
	ID() string
	Pid() int
	State() process.State
	Stdio() process.Stdio
	ExitStatus() int
	ExitedAt() time.Time
	Wait(context.Context) error
	Resize(w, h uint32) error
	CloseIO() error
}

func (s *service) process(id, execID string) (*container, proc, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	if execID == "" {
		return c, c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.execs[execID]
	if e == nil {
		return nil, nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %s in %s", execID, id)
	}
	return c, e, nil
}

// ResizePty resizes a process's terminal.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*ptypes.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Resize(r.Width, r.Height); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return empty, nil
}

// State reports a process's state.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status := task.Status_UNKNOWN
	switch p.State() {
	case process.Created:
		status = task.Status_CREATED
	case process.Running:
		status = task.Status_RUNNING
	case process.Paused:
		status = task.Status_PAUSED
	case process.Stopped, process.Deleted:
		status = task.Status_STOPPED
	}
	id := p.ID()
	if id == "" {
		id = c.id
	}
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID: id, Bundle: c.bundle, Pid: uint32(p.Pid()), Status: status,
		Stdin: sio.Stdin, Stdout: sio.Stdout, Stderr: sio.Stderr, Terminal: sio.Terminal,
		ExitStatus: uint32(p.ExitStatus()), ExitedAt: protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}

// Pause freezes the container.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Pause(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.send(&eventstypes.TaskPaused{ContainerID: c.id})
	return empty, nil
}

// Resume thaws the container.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Resume(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.send(&eventstypes.TaskResumed{ContainerID: c.id})
	return empty, nil
}

// Kill signals a process (with All, every process of the container).
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	sig := unix.Signal(r.Signal)
	if r.ExecID == "" {
		err = c.init.Kill(ctx, sig, r.All)
	} else {
		c.mu.Lock()
		e := c.execs[r.ExecID]
		c.mu.Unlock()
		if e == nil {
			return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %s in %s", r.ExecID, r.ID)
		}
		err = e.Kill(ctx, sig)
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return empty, nil
}

// Pids lists the container's processes; execs are named.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var pids []int
	if cg := c.init.Container().Cgroup(); cg != nil {
		if pids, err = cg.Pids(); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
	} else if pid := c.init.Pid(); pid > 0 {
		pids = []int{pid}
	}
	execs := map[int]string{}
	c.mu.Lock()
	for id, e := range c.execs {
		execs[e.Pid()] = id
	}
	c.mu.Unlock()
	var out []*task.ProcessInfo
	for _, pid := range pids {
		info := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execs[pid]; ok {
			a, err := typeurl.MarshalAnyToProto(&runcoptions.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, errgrpc.ToGRPC(err)
			}
			info.Info = a
		}
		out = append(out, info)
	}
	return &taskAPI.PidsResponse{Processes: out}, nil
}

// CloseIO closes a process's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*ptypes.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		if err := p.CloseIO(); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
	}
	return empty, nil
}

// Checkpoint is not supported.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*ptypes.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "checkpoint: not supported by fre")
}

// Update applies new resource limits to the container's cgroup.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.State().Check(process.OpUpdate, c.id); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	var res specs.LinuxResources
	if r.Resources == nil || json.Unmarshal(r.Resources.Value, &res) != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "update %s: bad resources", r.ID)
	}
	if c.init.Container().Cgroup() == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "update %s: no cgroup", r.ID)
	}
	// containerd sends the spec's whole resources (Update keeps the
	// device rules, as runc's update does).
	if err := c.init.Container().Update(&res); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return empty, nil
}

// Wait waits for a process's exit.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.WaitResponse{ExitStatus: uint32(p.ExitStatus()), ExitedAt: protobuf.ToTimestamp(p.ExitedAt())}, nil
}

// Connect reports the shim's and the task's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	var pid int
	if c, err := s.get(r.ID); err == nil {
		pid = c.init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown ends the shim once it serves no container.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.containers) > 0 {
		return empty, nil
	}
	s.sd.Shutdown()
	return empty, nil
}

// Stats returns the cgroup's metrics in containerd's cgroup v1 or v2 type.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	cg := c.init.Container().Cgroup()
	if cg == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s has no cgroup", r.ID)
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	var m any
	if cg.Version() == 1 {
		m = metricsV1(st)
	} else {
		m = metricsV2(st)
	}
	a, err := typeurl.MarshalAnyToProto(m)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}
