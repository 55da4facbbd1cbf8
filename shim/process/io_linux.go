package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Stdio is what containerd asked for: fifo paths, or a binary:// or
// file:// URI in Stdout, and whether the process has a terminal.
type Stdio struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// IsNull reports whether no stdio at all was asked for.
func (s Stdio) IsNull() bool { return s.Stdin == "" && s.Stdout == "" && s.Stderr == "" }

// pipeIO connects a process without a terminal to containerd's stdio:
// the process writes containerd's fifos itself (or a file, a logging
// binary's pipes, /dev/null); its stdin is a pipe the shim feeds from the
// stdin fifo, so that CloseIO can close it.
type pipeIO struct {
	// child are the process's stdin, stdout, stderr; closed in the shim
	// once the process has them (afterStart).
	child   [3]*os.File
	stdin   io.WriteCloser // our end of the stdin pipe, for CloseIO
	closers []io.Closer
	logger  *exec.Cmd
	mu      sync.Mutex
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyBuf(dst io.Writer, src io.Reader) error {
	b := bufPool.Get().(*[]byte)
	defer bufPool.Put(b)
	_, err := io.CopyBuffer(dst, src, *b)
	return err
}

func devNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_RDWR, 0) }

// newPipeIO sets up stdio for a process without a terminal. id and ns are
// given to a binary logger.
func newPipeIO(ctx context.Context, id, ns string, sio Stdio) (_ *pipeIO, retErr error) {
	p := &pipeIO{}
	defer func() {
		if retErr != nil {
			p.closeChild()
			p.Close()
		}
	}()
	if sio.Stdin != "" {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.child[0], p.stdin = r, w
		in, err := openFifoReader(sio.Stdin)
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, in)
		go func() {
			// Pipe to pipe: io.Copy splices, no buffer is held while the
			// client is silent.
			if waitForWriter(in) == nil {
				io.Copy(w, in)
			}
			p.CloseStdin()
		}()
	}
	u, err := url.Parse(sio.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%w: stdout %q: %v", ErrStdio, sio.Stdout, err)
	}
	switch u.Scheme {
	case "", "fifo":
		for i, path := range []string{sio.Stdout, sio.Stderr} {
			if path == "" {
				continue
			}
			if err := p.fifoOutput(i+1, path); err != nil {
				return nil, err
			}
		}
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, err
		}
		// The process writes the file itself: no copy through the shim.
		f, err := os.OpenFile(u.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		p.child[1] = f
		p.child[2] = f
	case "binary", "binary-v2":
		if err := p.startLogger(ctx, u, id, ns); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrStdio, u.Scheme)
	}
	for i := range p.child {
		if p.child[i] == nil {
			f, err := devNull()
			if err != nil {
				return nil, err
			}
			p.child[i] = f
		}
	}
	return p, nil
}

// fifoOutput gives the process the fifo at path itself as fd 1 or 2: its
// output goes straight to containerd's reader, with no copy, goroutine or
// buffer in the shim. The shim holds a read end of its own (never read),
// so the process never gets EPIPE while containerd, restarting, has the
// fifo closed; it blocks when the fifo is full, as it would behind a copy.
func (p *pipeIO) fifoOutput(fd int, path string) error {
	// Non-blocking, so that it does not wait for containerd's reader (ctr
	// opens its fifos asynchronously): Create never waits on the client.
	fr, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open fifo %s: %w", path, err)
	}
	// A reader exists (ours), so this open does not block; the process's
	// end stays blocking (os.NewFile leaves the flags as they are).
	wfd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fr.Close()
		return fmt.Errorf("open fifo %s: %w", path, err)
	}
	p.child[fd] = os.NewFile(uintptr(wfd), path)
	p.closers = append(p.closers, fr)
	return nil
}

// openFifoReader opens a fifo's read end without waiting for a writer and
// without a thread blocked in open(2) (what containerd/fifo does for
// O_NONBLOCK): the fd is non-blocking and in Go's poller.
func openFifoReader(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open fifo %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// waitForWriter waits until a writer has connected to the fifo read end f
// and it is readable (data, or the writer gone). Before that a read would
// return 0 and look like end of file. poll(2) tells the two apart: a fifo
// shows POLLHUP only once a writer has come and gone. Returns an error
// once f is closed.
func waitForWriter(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil && err != unix.EINTR {
			perr = err
			return true
		}
		return n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	})
	if err != nil {
		return err
	}
	return perr
}

// binaryCmd is the logging binary of a binary:// URI, as containerd's
// shims run it.
func binaryCmd(u *url.URL, id, ns string) *exec.Cmd {
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	cmd := exec.Command(u.Path, args...)
	cmd.Env = append(cmd.Env, "CONTAINER_ID="+id, "CONTAINER_NAMESPACE="+ns)
	return cmd
}

// startLogger runs the logging binary with the read ends of the process's
// stdout and stderr pipes (fds 3, 4) and a readiness pipe (fd 5).
func (p *pipeIO) startLogger(ctx context.Context, u *url.URL, id, ns string) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return err
	}
	defer errR.Close()
	p.child[1], p.child[2] = outW, errW
	return p.runLogger(u, id, ns, outR, errR)
}

func (p *pipeIO) runLogger(u *url.URL, id, ns string, outR, errR *os.File) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	cmd := binaryCmd(u, id, ns)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	release := Spawning()
	err = cmd.Start()
	if err == nil {
		Track(cmd.Process.Pid)
	}
	release()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	p.logger = cmd
	b := make([]byte, 1)
	n, err := readyR.Read(b)
	if err != nil && err != io.EOF {
		return fmt.Errorf("logging binary %s: %w", u.Path, err)
	}
	if u.Scheme == "binary-v2" && n == 0 {
		return fmt.Errorf("logging binary %s did not signal ready", u.Path)
	}
	return nil
}

// afterStart closes the shim's copies of the process's ends.
func (p *pipeIO) afterStart() { p.closeChild() }

func (p *pipeIO) closeChild() {
	seen := map[*os.File]bool{}
	for i, f := range p.child {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
		p.child[i] = nil
	}
}

// CloseStdin closes the process's stdin (CloseIO).
func (p *pipeIO) CloseStdin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin == nil {
		return nil
	}
	err := p.stdin.Close()
	p.stdin = nil
	return err
}

// Wait: the process writes its output fifos itself, so once it has
// exited its output is complete.
func (p *pipeIO) Wait(time.Duration) bool { return true }

// Close releases everything; a logging binary gets SIGTERM and time to
// flush.
func (p *pipeIO) Close() error {
	var errs []error
	p.CloseStdin()
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	p.closers = nil
	if cmd := p.logger; cmd != nil {
		p.logger = nil
		stopLogger(cmd)
	}
	return errors.Join(errs...)
}

func stopLogger(cmd *exec.Cmd) {
	defer Untrack(cmd.Process.Pid)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second): // it normally exits on EOF
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.L.WithField("logger", cmd.Path).Warn("logging binary ignored SIGTERM; killing it")
		cmd.Process.Kill()
		<-done
	}
}
