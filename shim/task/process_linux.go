package task

import (
	"context"
	"encoding/json"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/shim/process"
)

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
	if len(pids) == 0 && c.init.State() == process.Stopped {
		// Not an empty list: a containerd that restarts takes a task of
		// no process for a shim whose task was never created, deletes it
		// and so loses the exit status (CRI then reports 255).
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is not running: its init has exited", r.ID)
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
