package spawn

/*
#define _GNU_SOURCE
#include "spawn.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a cloned child waiting for Release.
type Process struct {
	Pid   int
	PidFD int
	// SeccompListener is the seccomp notify fd the child sent (-1: none);
	// the caller hands it on and closes it.
	SeccompListener int
	// OnSeccompListener, when set, gets that fd as soon as it arrives,
	// during Wait (and owns it): from its filter on, the child's own
	// system calls may be ones the agent must answer (runc's "important
	// syscalls" case), so the agent has it before the child goes on.
	OnSeccompListener func(fd int) error

	// Steps are the child's set-up steps, timed (Config.Trace), after Wait.
	Steps []Step

	sync    *os.File
	release chan struct{}
	plan    *C.struct_fre_spawn // shared with the child until it execs
	mem     *arena
	// srcPaths are the bind sources the first Release opens in the
	// child's mount namespace and sends (Config.SourcesFromParent).
	srcPaths []string

	finished sync.Once // free, once: after Wait, or after the exec Wait no longer waits for
}

// ChildError is a set-up failure reported by the child.
type ChildError struct {
	Op  string
	Err syscall.Errno
}

func (e *ChildError) Error() string {
	if e.Err == 0 {
		return e.Op
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *ChildError) Unwrap() error { return e.Err }

// Release lets the child go on with its set-up.
func (p *Process) Release() error {
	var err error
	if p.srcPaths != nil {
		srcs := p.srcPaths
		p.srcPaths = nil
		var fds []int
		if fds, err = p.openSources(srcs); err != nil {
			return err
		}
		err = p.sendRights([]byte{'G'}, fds)
		for _, fd := range fds {
			unix.Close(fd)
		}
	} else {
		_, err = p.sync.Write([]byte{'G'})
	}
	if err != nil {
		if werr := p.Wait(); werr != nil {
			return fmt.Errorf("release child: %w", werr)
		}
		return fmt.Errorf("release child: container init exited: %w", err)
	}
	return nil
}

// openSources opens each bind source in the child's mount namespace,
// through /proc/<pid>/root (the child has not moved its root yet), with
// symlinks resolved on the host's side (the child's namespace is its
// copy). On an error nothing stays open.
func (p *Process) openSources(srcs []string) ([]int, error) {
	fds := make([]int, 0, len(srcs))
	root := fmt.Sprintf("/proc/%d/root", p.Pid)
	for _, src := range srcs {
		resolved, err := filepath.EvalSymlinks(src)
		if err == nil {
			var fd int
			if fd, err = unix.Open(root+resolved, unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
				fds = append(fds, fd)
				continue
			}
			err = fmt.Errorf("open in the container's mount namespace: %w", err)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("bind mount %s: %w", src, err)
	}
	return fds, nil
}

// sendRights sends msg with fds (SCM_RIGHTS) on the sync socket.
func (p *Process) sendRights(msg []byte, fds []int) error {
	rc, err := p.sync.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), msg, unix.UnixRights(fds...), nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// WaitHookPoint waits until a child started with HookPause has made its
// mounts; Release lets it go on.
func (p *Process) WaitHookPoint() error {
	buf := make([]byte, 8192)
	n, err := p.sync.Read(buf)
	if err != nil || n == 0 {
		return errors.New("container init exited during set-up")
	}
	switch buf[0] {
	case 'H':
		return nil
	case 'E':
		return childError(buf[:n])
	}
	return fmt.Errorf("container init: unexpected message %q", buf[:n])
}

func childError(msg []byte) error {
	if len(msg) < 5 {
		return errors.New("container init failed")
	}
	errno := syscall.Errno(binary.NativeEndian.Uint32(msg[1:5]))
	return &ChildError{Op: string(msg[5:]), Err: errno}
}

// Wait waits until the child is set up: about to exec fre-dmz, which
// waits for start (with an exec fifo), or exec'd (without). It returns
// the child's error. After a ready child's Wait, its plan and stack are
// freed once fre-dmz runs.
// A seccomp listener fd the child sent is left in SeccompListener.
func (p *Process) Wait() error {
	handedOn := false
	defer func() {
		if !handedOn {
			p.finish()
		}
	}()
	buf := make([]byte, 8192)
	oob := make([]byte, unix.CmsgSpace(4))
	execing := false
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(p.sync.Fd()), buf, oob, 0)
		if err == unix.EINTR || err == unix.ECONNRESET {
			// ECONNRESET: the child exited with a Release of ours unread;
			// reported once, before what it sent (its error) is read.
			continue
		}
		if err != nil || n == 0 {
			if execing {
				p.steps(monotonicNow())
				return nil
			}
			return errors.New("container init exited during set-up")
		}
		switch buf[0] {
		case 'R':
			// Sent just before the child execs fre-dmz, which waits for
			// start: the set-up is done, but the child runs on our memory
			// until that exec. fre-dmz closes the socket once it runs.
			p.steps(monotonicNow())
			handedOn = true
			go p.finishAfterExec(int(p.sync.Fd()))
			return nil
		case 'X':
			execing = true
			continue
		case 'S':
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) > 0 {
					if p.OnSeccompListener != nil {
						if err := p.OnSeccompListener(fds[0]); err != nil {
							return err
						}
					} else {
						p.SeccompListener = fds[0]
					}
				}
			}
			continue
		case 'E':
			return childError(buf[:n])
		}
		return fmt.Errorf("container init: unexpected message %q", buf[:n])
	}
}

// steps reads the child's timestamps (shared memory) into Steps, in the
// order they happened; done is when the parent saw it ready.
func (p *Process) steps(done int64) {
	if p.plan == nil || p.plan.trace == 0 {
		return
	}
	type point struct {
		t    int64
		name string // what ended at t
	}
	pts := []point{{done, "exec fre-dmz, ready"}}
	for i := 0; i < C.FRE_TS_N; i++ {
		if t := int64(p.plan.ts[i]); t != 0 {
			pts = append(pts, point{t, stepNames[i]})
		}
	}
	sort.Slice(pts, func(a, b int) bool { return pts[a].t < pts[b].t })
	for i := 1; i < len(pts); i++ {
		p.Steps = append(p.Steps, Step{pts[i].name, time.Duration(pts[i].t - pts[i-1].t)})
	}
}

func monotonicNow() int64 {
	var t unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &t)
	return t.Nano()
}

// finishAfterExec frees the child's plan and stack once the socket's
// other end is closed: by fre-dmz, or by the child's exit if the exec
// failed (its error, sent after ready, has nobody to go to).
func (p *Process) finishAfterExec(fd int) {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break
		}
	}
	p.finish()
}

func (p *Process) finish() { p.finished.Do(p.free) }

func (p *Process) free() {
	if p.release != nil {
		close(p.release)
		p.release = nil
	}
	p.sync.Close()
	if p.mem != nil {
		C.fre_spawn_free(p.plan)
		p.mem.free()
		p.mem = nil
	}
}

// Kill kills a child that failed or is not wanted, and reaps it.
func (p *Process) Kill() {
	unix.PidfdSendSignal(p.PidFD, unix.SIGKILL, nil, 0)
	var info unix.Siginfo
	unix.Waitid(unix.P_PIDFD, p.PidFD, &info, unix.WEXITED, nil)
	p.finish()
}
