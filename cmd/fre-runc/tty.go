package main

import (
	"errors"
	"io"
	"os"
	"os/signal"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// foregroundTTY is `run` with process.terminal and no --console-socket:
// fre-runc itself receives the pty master and joins it to its own stdio,
// as runc does.
type foregroundTTY struct {
	ours, theirs *os.File // the socket pair; theirs goes to the container
	master       chan *os.File
}

func newForegroundTTY() (*foregroundTTY, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	t := &foregroundTTY{ours: os.NewFile(uintptr(fds[0]), "console"), theirs: os.NewFile(uintptr(fds[1]), "console"), master: make(chan *os.File, 1)}
	go func() {
		m, err := recvFd(t.ours)
		if err != nil {
			m = nil
		}
		t.master <- m
	}()
	return t, nil
}

func recvFd(f *os.File) (*os.File, error) {
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(f.Fd()), buf, oob, 0)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("no pty master received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("no pty master received")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// attach copies between our stdio and the pty until the container ends;
// it returns a function that restores the terminal.
func (t *foregroundTTY) attach() (func(), error) { return t.attachSized(nil) }

// attachSized is attach with the process's consoleSize, which sets the
// pty's size when fre-runc's own stdin is no terminal to take it from.
func (t *foregroundTTY) attachSized(size *specs.Box) (func(), error) {
	t.theirs.Close()
	m := <-t.master
	t.ours.Close()
	if m == nil {
		return func() {}, errors.New("no pty master received from the container")
	}
	restore := func() {}
	if size != nil {
		unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)})
	}
	if cur, err := console.ConsoleFromFile(os.Stdin); err == nil {
		if err := cur.SetRaw(); err == nil {
			restore = func() { cur.Reset() }
		}
		if ws, err := cur.Size(); err == nil {
			unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Height, Col: ws.Width})
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for range winch {
				if ws, err := cur.Size(); err == nil {
					unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Height, Col: ws.Width})
				}
			}
		}()
	}
	go io.Copy(m, os.Stdin)
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, m)
		close(done)
	}()
	return func() {
		<-done
		restore()
	}, nil
}
