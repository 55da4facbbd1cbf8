package process

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime"
)

// Exec is a process started in a running container (ctr task exec,
// kubectl exec). It exists from the Exec RPC; Start runs it.
type Exec struct {
	base
	parent *Init
	spec   *specs.Process
	proc   *runtime.Process // nil until started
}

// NewExec records an exec; nothing runs until Start.
func (p *Init) NewExec(id string, sio Stdio, spec *specs.Process) *Exec {
	return &Exec{base: newBase(id, sio), parent: p, spec: spec}
}

// Start runs the exec in the container's namespaces and cgroup.
func (e *Exec) Start(ctx context.Context) (retErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.state.Check(OpStart, e.id); err != nil {
		return err
	}
	cfg := e.parent.cfg
	opts := runtime.ExecOpts{Process: e.spec}
	var sock *consoleSocket
	if e.stdio.Terminal {
		var err error
		if sock, err = newConsoleSocket(); err != nil {
			return err
		}
		defer sock.Close()
		opts.Console = sock.theirs
	} else {
		pio, err := newPipeIO(ctx, cfg.ID, cfg.Namespace, e.stdio)
		if err != nil {
			return err
		}
		e.pio = pio
		defer func() {
			if retErr != nil {
				pio.closeChild()
				pio.Close()
			}
		}()
		copy(opts.Stdio[:], pio.child[:])
	}
	release := Spawning()
	proc, err := e.parent.ctr.Exec(ctx, opts)
	if err == nil {
		Track(proc.Pid)
	}
	release()
	if err != nil {
		return fmt.Errorf("exec %s in %s: %w", e.id, cfg.ID, runtimeErr(err))
	}
	e.pid, e.proc = proc.Pid, proc
	defer func() {
		if retErr != nil {
			proc.Signal(unix.SIGKILL)
			waitPidfd(proc.PidFD)
			proc.Close()
			Untrack(proc.Pid)
			e.proc = nil
		}
	}()
	if e.pio != nil {
		e.pio.afterStart()
	}
	if sock != nil {
		c, err := sock.receive()
		if err != nil {
			return err
		}
		if e.tty, err = newTTYIO(ctx, cfg.Epoller, c, cfg.ID, cfg.Namespace, e.stdio); err != nil {
			c.Close()
			return err
		}
	}
	e.state = Running
	return nil
}

// WaitExit waits for the exec to exit and reaps it.
func (e *Exec) WaitExit() (int, error) {
	defer Untrack(e.pid)
	return waitPidfd(e.proc.PidFD)
}

// Kill signals the exec.
func (e *Exec) Kill(ctx context.Context, sig unix.Signal) error {
	if err := e.State().Check(OpKill, e.id); err != nil {
		return err
	}
	e.mu.Lock()
	proc := e.proc
	e.mu.Unlock()
	if proc == nil {
		return fmt.Errorf("kill exec %s: %w", e.id, ErrBadState)
	}
	if err := proc.Signal(sig); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("kill exec %s: %w", e.id, ErrExited)
		}
		return fmt.Errorf("kill exec %s: %w", e.id, err)
	}
	return nil
}

// Delete releases a stopped (or never started) exec.
func (e *Exec) Delete(ctx context.Context) error {
	if err := e.State().Check(OpDelete, e.id); err != nil {
		return err
	}
	e.closeIO()
	if e.proc != nil {
		e.proc.Close()
	}
	e.setState(Deleted)
	return nil
}
