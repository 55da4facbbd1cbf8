package task

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"time"

	"github.com/containerd/console"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/runtime"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

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
	creating   map[string]chan struct{}       // closed when the ID's Create returns
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

// SocketEnv names the daemon's own socket address, set by the start
// command: the daemon removes the socket when it ends.
const SocketEnv = "FRE_SHIM_SOCKET"

// DebugSocketFile, in the bundle, holds the address of the shim's debug
// socket (containerd at log level debug asks for one).
const DebugSocketFile = "fre-debug-socket"

// NewTaskService starts the service's event forwarder, stranger reaper
// and console epoller.
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
		creating:   map[string]chan struct{}{},
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
	// The debug socket too: read now, while the first container's bundle
	// (the daemon's cwd) is there; a group's shim outlives it.
	var debugSocket []string
	if b, err := os.ReadFile(DebugSocketFile); err == nil && len(b) > 0 {
		debugSocket = append(debugSocket, string(b))
	}
	if address != "" {
		// Every socket goes before the record that names them: a shim
		// killed in between leaves the rest to the next shim's sweep.
		sockets := append([]string{address}, debugSocket...)
		sd.RegisterCallback(func(context.Context) error {
			var errs []error
			for _, a := range sockets {
				if err := shim.RemoveSocket(a); err != nil && !os.IsNotExist(err) {
					errs = append(errs, err)
				}
			}
			UnregisterShim(address)
			return errors.Join(errs...)
		})
	} else if len(debugSocket) > 0 {
		sd.RegisterCallback(func(context.Context) error { return shim.RemoveSocket(debugSocket[0]) })
	}
	// This shim's sockets, for the sweep of the next shim should this one
	// be killed where containerd cannot clean up after it; and the sockets
	// of those (registry_linux.go). Off the start path.
	go func() {
		if address != "" {
			if err := RegisterShim(os.Getpid(), append([]string{address}, debugSocket...)); err != nil {
				log.G(ctx).WithError(err).Warn("register the shim's sockets")
			}
		}
		for _, a := range SweepDeadShims() {
			log.G(ctx).WithField("socket", a).Info("removed a dead shim's socket")
		}
	}()
	return s, nil
}

// UnaryServerInterceptor marks the shim's first request in the timing
// log (the shim library chains it before the handlers, so it sees the
// request before it is decoded), and runs the RPC's failpoints in a
// build with them (Failpoint).
func (s *service) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	var first sync.Once
	return func(ctx context.Context, un ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
		first.Do(func() { Milestone("shim.first-request " + path.Base(info.FullMethod)) })
		if !failpointsBuilt {
			return m(ctx, un)
		}
		after := Failpoint(path.Base(info.FullMethod))
		r, err := m(ctx, un)
		after()
		return r, err
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
	c, created := s.containers[id], s.creating[id]
	s.mu.Unlock()
	if c == nil && created != nil {
		// Its Create is under way: its outcome is the answer.
		<-created
		s.mu.Lock()
		c = s.containers[id]
		s.mu.Unlock()
	}
	if c == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s not created", id)
	}
	return c, nil
}

// runtimeFor returns the (shared) runtime for a state root.
func (s *service) runtimeFor(ctx context.Context, o Options, ns string) (*freruntime.Runtime, error) {
	root := o.RuntimeRoot(ns)
	key := fmt.Sprintf("%s|%s|%d|%t|%s|%s|%s|%s", root, o.NetnsPolicy, o.NetnsPoolSize, o.SystemdCgroup, o.TenantRoot, o.ChannelRoot, o.CgroupPoolDir, o.NetnsPoolDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt := s.runtimes[key]; rt != nil {
		return rt, nil
	}
	// containerd (ctr, and clients that take its default spec) puts a
	// container's cgroup at /<namespace>/<id>: that parent is pooled. A
	// pod's cgroup (kubelet's) is not: kubelet must be able to remove it.
	rt, err := freruntime.New(root, freruntime.Options{NetnsPolicy: netns.Policy(o.NetnsPolicy), NetnsPoolSize: o.NetnsPoolSize,
		CgroupPoolParents: []string{"/" + ns}, SystemdCgroup: o.SystemdCgroup,
		TenantRoot: o.TenantRoot, ChannelRoot: o.ChannelRoot, CgroupPoolDir: o.CgroupPoolDir, NetnsPoolDir: o.NetnsPoolDir})
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
	if len(s.containers) > 0 || len(s.creating) > 0 {
		return empty, nil
	}
	s.sd.Shutdown()
	return empty, nil
}
