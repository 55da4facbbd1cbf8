package process

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"syscall"

	"github.com/containerd/console"
	"github.com/containerd/fifo"
	"golang.org/x/sys/unix"
)

// consoleSocket is the pair whose one end runtime/ gives the process (it
// sends the pty master through it, as with runc's --console-socket) and
// whose other end the shim receives the master on.
type consoleSocket struct {
	ours, theirs *os.File
}

func newConsoleSocket() (*consoleSocket, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socketpair: %w", err)
	}
	return &consoleSocket{ours: os.NewFile(uintptr(fds[0]), "console-socket"), theirs: os.NewFile(uintptr(fds[1]), "console-socket-peer")}, nil
}

func (s *consoleSocket) Close() {
	s.ours.Close()
	if s.theirs != nil {
		s.theirs.Close()
	}
}

// receive reads the pty master. The process sent it during set-up, which
// runtime/ waited for, so it is already queued.
func (s *consoleSocket) receive() (console.Console, error) {
	// Our end must not wait for a peer that died without sending.
	s.theirs.Close()
	s.theirs = nil
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(s.ours.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	if n == 0 || oobn == 0 {
		return nil, fmt.Errorf("receive pty master: no fd was sent")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: bad control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive pty master: bad rights: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "pty-master")
	c, err := console.ConsoleFromFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// ttyIO copies between a pty master and containerd's stdio.
type ttyIO struct {
	cons    *console.EpollConsole
	epoller *console.Epoller
	copies  sync.WaitGroup
	in      io.Closer
	logger  *pipeIO // for binary://
	once    sync.Once
	down    sync.Once
}

func newTTYIO(ctx context.Context, ep *console.Epoller, c console.Console, id, ns string, sio Stdio) (_ *ttyIO, retErr error) {
	ec, err := ep.Add(c)
	if err != nil {
		return nil, err
	}
	t := &ttyIO{cons: ec, epoller: ep}
	defer func() {
		if retErr != nil {
			t.Close()
		}
	}()
	if sio.Stdin != "" {
		in, err := openFifoReader(sio.Stdin)
		if err != nil {
			return nil, err
		}
		t.in = in
		go func() {
			if waitForWriter(in) == nil {
				copyBuf(ec, in)
			}
			// stdin closed: hang up the terminal as runc's shim does.
			t.shutdown()
		}()
	}
	u, err := url.Parse(sio.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%w: stdout %q: %v", ErrStdio, sio.Stdout, err)
	}
	var out io.WriteCloser
	var extra io.Closer
	switch u.Scheme {
	case "", "fifo":
		if sio.Stdout == "" {
			out = nopWriteCloser{io.Discard}
			break
		}
		fw, err := fifo.OpenFifo(context.Background(), sio.Stdout, syscall.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open fifo %s: %w", sio.Stdout, err)
		}
		fr, err := fifo.OpenFifo(context.Background(), sio.Stdout, syscall.O_RDONLY, 0)
		if err != nil {
			fw.Close()
			return nil, fmt.Errorf("open fifo %s: %w", sio.Stdout, err)
		}
		out, extra = fw, fr
	case "file":
		f, err := os.OpenFile(u.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		out = f
	case "binary", "binary-v2":
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return nil, err
		}
		errW.Close() // a terminal has no separate stderr
		t.logger = &pipeIO{}
		err = t.logger.runLogger(u, id, ns, outR, errR)
		outR.Close()
		errR.Close()
		if err != nil {
			outW.Close()
			return nil, err
		}
		out = outW
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrStdio, u.Scheme)
	}
	t.copies.Add(1)
	go func() {
		defer t.copies.Done()
		copyBuf(out, ec)
		out.Close()
		if extra != nil {
			extra.Close()
		}
	}()
	return t, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Resize sets the terminal's window size.
func (t *ttyIO) Resize(width, height uint32) error {
	return t.cons.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}

// CloseStdin stops copying stdin.
func (t *ttyIO) CloseStdin() error {
	if t.in != nil {
		return t.in.Close()
	}
	return nil
}

// shutdown ends the output copy once the pty has nothing more to read.
func (t *ttyIO) shutdown() {
	t.down.Do(func() { t.cons.Shutdown(t.epoller.CloseConsole) })
}

// Close shuts the console down; the output copy ends with it.
func (t *ttyIO) Close() error {
	t.once.Do(func() {
		t.CloseStdin()
		t.shutdown()
		t.cons.Close()
		if t.logger != nil {
			t.logger.Close()
		}
	})
	return nil
}
