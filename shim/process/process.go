package process

import (
	"context"
	"sync"
	"time"
)

// outputTimeout bounds how long Delete waits for a process's output to be
// copied: a grandchild holding stdout open must not block Delete forever.
const outputTimeout = 5 * time.Second

// base is what init and exec processes share.
type base struct {
	id    string
	stdio Stdio

	mu       sync.Mutex
	state    State
	pid      int
	status   int
	exitedAt time.Time
	done     chan struct{} // closed once the exit is published

	pio *pipeIO
	tty *ttyIO
}

func newBase(id string, sio Stdio) base {
	return base{id: id, stdio: sio, state: Created, done: make(chan struct{})}
}

// ID is the exec ID ("" for the init: containerd's convention is the
// container ID, which the task service fills in).
func (b *base) ID() string { return b.id }

// Pid is the process's pid on the host (0 before it exists).
func (b *base) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pid
}

// State is the process's state.
func (b *base) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *base) setState(s State) {
	b.mu.Lock()
	b.state = s
	b.mu.Unlock()
}

// Stdio is what containerd asked for.
func (b *base) Stdio() Stdio { return b.stdio }

// ExitStatus is the exit status once stopped.
func (b *base) ExitStatus() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// ExitedAt is when the exit was seen.
func (b *base) ExitedAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exitedAt
}

// SetExited records the exit; Wait returns from now on. The task service
// calls it when it publishes the exit, so Wait and TaskExit agree.
func (b *base) SetExited(status int, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Stopped || b.state == Deleted {
		return
	}
	b.state, b.status, b.exitedAt = Stopped, status, at
	// The terminal's output ends with the process, as with runc's shim:
	// what is left in the pty is still read, then the copy closes the
	// client's fifo, so that its IO().Wait() returns (a client's stdin
	// held open must not keep it waiting).
	if b.tty != nil {
		b.tty.shutdown()
	}
	close(b.done)
}

// Wait blocks until the process has exited (and its exit is published).
func (b *base) Wait(ctx context.Context) error {
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed once the process has exited.
func (b *base) Done() <-chan struct{} { return b.done }

// Resize resizes the process's terminal.
func (b *base) Resize(width, height uint32) error {
	if err := b.State().Check(OpResize, b.id); err != nil {
		return err
	}
	if b.tty == nil {
		return ErrNoConsole
	}
	return b.tty.Resize(width, height)
}

// CloseIO closes the process's stdin.
func (b *base) CloseIO() error {
	switch {
	case b.tty != nil:
		return b.tty.CloseStdin()
	case b.pio != nil:
		return b.pio.CloseStdin()
	}
	return nil
}

// closeIO waits (bounded) for the output to be copied and releases the
// stdio.
func (b *base) closeIO() {
	if b.pio != nil {
		b.pio.Wait(outputTimeout)
		b.pio.Close()
	}
	if b.tty != nil {
		waitGroup(&b.tty.copies, outputTimeout)
		b.tty.Close()
	}
}

func waitGroup(wg *sync.WaitGroup, timeout time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
