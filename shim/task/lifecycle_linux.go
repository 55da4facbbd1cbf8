package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/shim/process"
)

// firstCreate marks the shim's first Create in the timing log.
var firstCreate sync.Once

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
	// While it is created, requests for the ID wait for it (get), and
	// the shim does not shut down: a containerd restarted meanwhile asks
	// for its pids, and must not take it for a shim of no container.
	s.mu.Lock()
	_, exists := s.containers[r.ID]
	if _, creating := s.creating[r.ID]; exists || creating {
		s.mu.Unlock()
		return nil, fmt.Errorf("container %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	created := make(chan struct{})
	s.creating[r.ID] = created
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.creating, r.ID)
		s.mu.Unlock()
		close(created)
	}()
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
