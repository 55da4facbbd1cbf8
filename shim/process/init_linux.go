package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime"
)

// InitConfig describes a container's init process.
type InitConfig struct {
	ID, Bundle, Namespace string
	Stdio                 Stdio
	// Spec is the bundle's config.json, already read by the caller.
	Spec    *specs.Spec
	Runtime *runtime.Runtime
	// Epoller serves every terminal of the shim from one goroutine.
	Epoller *console.Epoller
	// Async: runtime.Create returns once the init is cloned, and the
	// shim's own work (stdio, the console) overlaps the init's set-up;
	// NewInit still returns the set-up's error (runtime.CreateOpts.Async).
	Async bool
	// RootMount is mounted on the rootfs by the init in its own mount
	// namespace (runtime.CreateOpts.RootMount).
	RootMount *specs.Mount
	// Trace, when set, gets the time of each step of NewInit.
	Trace func(step string, d time.Duration)
}

// Init is a container's init process.
type Init struct {
	base
	cfg InitConfig
	ctr *runtime.Container
}

// NewInit creates the container (runtime.Create, in-process): on return
// the init is set up and waits for Start.
func NewInit(ctx context.Context, cfg InitConfig) (_ *Init, retErr error) {
	p := &Init{base: newBase("", cfg.Stdio), cfg: cfg}
	t0 := time.Now()
	step := func(name string) {
		if cfg.Trace != nil {
			t := time.Now()
			cfg.Trace(name, t.Sub(t0))
			t0 = t
		}
	}
	opts := runtime.CreateOpts{ID: cfg.ID, Bundle: cfg.Bundle, Spec: cfg.Spec, Async: cfg.Async, RootMount: cfg.RootMount}
	var sock *consoleSocket
	if cfg.Stdio.Terminal {
		var err error
		if sock, err = newConsoleSocket(); err != nil {
			return nil, err
		}
		defer sock.Close()
		opts.Console = sock.theirs
	} else {
		pio, err := newPipeIO(ctx, cfg.ID, cfg.Namespace, cfg.Stdio)
		if err != nil {
			return nil, err
		}
		p.pio = pio
		defer func() {
			if retErr != nil {
				pio.closeChild()
				pio.Close()
			}
		}()
		copy(opts.Stdio[:], pio.child[:])
	}
	step("io")
	release := Spawning()
	ctr, err := cfg.Runtime.Create(ctx, opts)
	if err == nil {
		Track(ctr.Pid())
	}
	release()
	step("runtime")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.ID, runtimeErr(err))
	}
	p.ctr, p.pid = ctr, ctr.Pid()
	defer func() {
		if retErr != nil {
			// Delete kills and waits but leaves the reaping to us.
			ctr.Delete(true)
			waitPidfd(ctr.PidFD())
			ctr.Close()
			Untrack(p.pid)
		}
	}()
	if p.pio != nil {
		p.pio.afterStart()
	}
	if sock != nil {
		c, err := sock.receive()
		if err != nil {
			return nil, err
		}
		if p.tty, err = newTTYIO(ctx, cfg.Epoller, c, cfg.ID, cfg.Namespace, cfg.Stdio); err != nil {
			c.Close()
			return nil, err
		}
	}
	if cfg.Async {
		// containerd's NewTask fails when the set-up does (a program not
		// found in the container's root), as with runc's create: the
		// shim's own work above overlapped the set-up, not its result.
		if err := ctr.Ready(); err != nil {
			return nil, fmt.Errorf("create %s: %w", cfg.ID, runtimeErr(err))
		}
	}
	step("after")
	return p, nil
}

// Container is the runtime's container.
func (p *Init) Container() *runtime.Container { return p.ctr }

// WaitExit waits for the init to exit and reaps it. The task service
// calls it once, from the goroutine that publishes the exit.
func (p *Init) WaitExit() (int, error) {
	defer Untrack(p.pid)
	return waitPidfd(p.ctr.PidFD())
}

// Start lets the init exec the container's program.
func (p *Init) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.Check(OpStart, p.cfg.ID); err != nil {
		// An async create whose set-up failed: the init has exited and
		// the reaper may have marked it stopped before Start came. The
		// set-up error, not the state, is what the caller needs.
		if serr := p.ctr.Ready(); serr != nil {
			return fmt.Errorf("start %s: %w", p.cfg.ID, runtimeErr(serr))
		}
		return err
	}
	if err := p.ctr.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.ID, runtimeErr(err))
	}
	p.state = Running
	return nil
}

// Kill signals the init, or with all every process of the container.
func (p *Init) Kill(ctx context.Context, sig unix.Signal, all bool) error {
	if err := p.State().Check(OpKill, p.cfg.ID); err != nil {
		return err
	}
	if err := p.ctr.Signal(sig, all); err != nil {
		return fmt.Errorf("kill %s: %w", p.cfg.ID, runtimeErr(err))
	}
	return nil
}

// Pause freezes the container.
func (p *Init) Pause(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.Check(OpPause, p.cfg.ID); err != nil {
		return err
	}
	if err := p.ctr.Pause(); err != nil {
		return fmt.Errorf("pause %s: %w", p.cfg.ID, runtimeErr(err))
	}
	p.state = Paused
	return nil
}

// Resume thaws the container.
func (p *Init) Resume(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.Check(OpResume, p.cfg.ID); err != nil {
		return err
	}
	if err := p.ctr.Resume(); err != nil {
		return fmt.Errorf("resume %s: %w", p.cfg.ID, runtimeErr(err))
	}
	p.state = Running
	return nil
}

// KillForDelete SIGKILLs an init that is still created (containerd deletes
// a created task without starting it); the exit follows as usual. The task
// service waits for that exit before Delete: runtime's Delete would kill
// too (and leaves the reaping to the shim), but the exit must be recorded
// and published (TaskExit, status 137) before the TaskDelete.
func (p *Init) KillForDelete() error {
	if err := unix.PidfdSendSignal(p.ctr.PidFD(), unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill %s: %w", p.cfg.ID, err)
	}
	return nil
}

// Delete removes the stopped container (cgroup, netns, state) and
// releases the stdio.
func (p *Init) Delete(ctx context.Context) error {
	if err := p.State().Check(OpDelete, p.cfg.ID); err != nil {
		return err
	}
	p.closeIO()
	err := p.ctr.Delete(true)
	if err != nil && !errors.Is(err, runtime.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", p.cfg.ID, err)
	}
	p.ctr.Close()
	p.setState(Deleted)
	return nil
}

// runtimeErr maps runtime/'s sentinel errors onto containerd's errdefs.
func runtimeErr(err error) error {
	switch {
	case errors.Is(err, runtime.ErrNotExist):
		return errors.Join(err, errdefs.ErrNotFound)
	case errors.Is(err, runtime.ErrExist):
		return errors.Join(err, errdefs.ErrAlreadyExists)
	case errors.Is(err, runtime.ErrInvalidID), errors.Is(err, runtime.ErrInvalidConfig):
		return errors.Join(err, errdefs.ErrInvalidArgument)
	case errors.Is(err, runtime.ErrNotRunning):
		return errors.Join(err, errdefs.ErrNotFound)
	case errors.Is(err, runtime.ErrNotStopped), errors.Is(err, runtime.ErrNotCreated), errors.Is(err, runtime.ErrNotPaused):
		return errors.Join(err, errdefs.ErrFailedPrecondition)
	case errors.Is(err, runtime.ErrNotSupported):
		return errors.Join(err, errdefs.ErrNotImplemented)
	case errors.Is(err, os.ErrNotExist):
		return errors.Join(err, errdefs.ErrNotFound)
	}
	return err
}
