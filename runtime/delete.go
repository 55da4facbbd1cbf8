package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
)

// Delete removes a container: its processes (force, or a created one),
// cgroup, pooled netns and state. Afterwards nothing of it is left.
func (c *Container) Delete(force bool) error {
	lock, err := lockDir(c.dir, true)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer lock.Close()
	ph := c.rt.phases()
	s := c.Status()
	if !s.CanDelete() && !force {
		return fmt.Errorf("cannot delete container %s that is not stopped: %s: %w", c.id, s, ErrNotStopped)
	}
	if s != Stopped {
		if err := c.killAndWait(); err != nil {
			return err
		}
	}
	// An Async create's set-up may still be claiming the cgroup: the init
	// is gone now, so it ends at once.
	c.waitSetup()
	ph.done("delete: kill")
	if err := c.release(ph); err != nil {
		return err
	}
	ph.done("delete: cgroup+netns+rootfs")
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("delete %s: remove state: %w", c.id, err)
	}
	ph.done("delete: state")
	if hasHooks(c.state.Hooks, poststopHooks) {
		state := hookState(c.id, c.state.Bundle, 0, "stopped", c.state.Annotations)
		if err := runHooks("poststop", c.state.Hooks.Poststop, state); err != nil {
			c.rt.warnf("%v", err)
		}
	}
	return nil
}

// killAndWait SIGKILLs the init and waits until it has gone.
func (c *Container) killAndWait() error {
	fd, err := c.pidfdOpen()
	if err != nil {
		return nil // already gone
	}
	if fd != c.pidfd {
		defer unix.Close(fd)
	}
	if cg := c.cgroup(); cg != nil {
		cg.Thaw()
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill %s: %w", c.id, err)
	}
	// A pidfd polls readable once the process has exited (zombie or reaped).
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for %s: %w", c.id, err)
		}
		if n > 0 {
			// Exited. Its parent reaps it (and keeps its exit status): a
			// shim, or fre-runc run through Wait.
			return nil
		}
	}
	return fmt.Errorf("kill %s: init still alive after 10s", c.id)
}

// Wait waits for the init to exit and returns its exit code (128+signal
// when killed). Only the process that created the container can wait.
func (c *Container) Wait() (int, error) {
	if c.pidfd < 0 {
		return -1, errors.New("wait: not the init's parent")
	}
	return waitPidfd(c.pidfd)
}

// waitPidfd reaps a child by its pidfd and returns its exit code.
func waitPidfd(fd int) (int, error) {
	info, err := waitPidfdInfo(fd)
	if err != nil {
		return -1, err
	}
	return exitCode(&info), nil
}

// waitPidfdInfo waits for the child behind fd, reaps it and returns its
// SIGCHLD siginfo.
func waitPidfdInfo(fd int) (unix.Siginfo, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED, nil)
		if err != unix.EINTR {
			return info, err
		}
	}
}

// exitCode is a SIGCHLD siginfo's exit status, 128+signal when killed.
func exitCode(info *unix.Siginfo) int {
	exited, status := siginfoStatus(info)
	if exited {
		return status
	}
	return 128 + status
}

// siginfoStatus reads si_code and si_status: whether the child exited
// (else a signal ended it) and its status or signal.
func siginfoStatus(info *unix.Siginfo) (exited bool, status int) {
	b := (*[128]byte)(unsafePointer(info))
	const cldExited = 1
	return int32(ne.Uint32(b[8:12])) == cldExited, int(int32(ne.Uint32(b[24:28])))
}

// release gives back what the container holds: its cgroup (emptied, then
// reset into the pool or removed) or systemd scope, its pooled netns, its
// store hold and its channel. Delete, and RemoveAbandoned for a create
// that died, share it.
func (c *Container) release(ph *phases) error {
	if c.state.SystemdUnit != "" {
		if err := c.stopScope(c.cgroup(), ph); err != nil {
			return fmt.Errorf("delete %s: cgroup: %w", c.id, err)
		}
	} else if cg := c.cgroup(); cg != nil {
		// Release kills what is left (a host-pid-namespace container can
		// leave processes), resets the limits and returns the cgroup to
		// the pool, or removes it.
		pool, err := c.rt.CgroupPool()
		if err != nil {
			return err
		}
		slot := c.state.CgroupSlot - 1
		release := func(m cgroup.Manager) error { return pool.ReleaseAt(m, slot) }
		if c.state.CgroupSelective && !fileExists(filepath.Join(c.dir, cgroupChangedFile)) {
			release = func(m cgroup.Manager) error { return pool.ReleaseOnlyAt(m, c.state.CgroupLimits, slot) }
		}
		if err := release(cg); err != nil {
			return fmt.Errorf("delete %s: cgroup: %w", c.id, err)
		}
	}
	// Emptied with the v1 cgroup (the same processes).
	if err := cgroup.RemoveHybrid(c.state.CgroupUnified); err != nil {
		return fmt.Errorf("delete %s: cgroup: %w", c.id, err)
	}
	if p := c.state.NetnsPooled; p != "" {
		// Unpinned now (never reused), before the state that records it
		// goes: a delete killed after that would leave the pin to no one.
		// The unmount is quick; the kernel's teardown of the namespace
		// runs on its own.
		if err := c.rt.NetnsPool().ReleaseNow(p); err != nil {
			return fmt.Errorf("delete %s: netns: %w", c.id, err)
		}
	}
	if err := c.rt.releaseRootfs(c.state); err != nil {
		return fmt.Errorf("delete %s: rootfs: %w", c.id, err)
	}
	if err := c.removeChannel(); err != nil {
		return fmt.Errorf("delete %s: %w", c.id, err)
	}
	return nil
}
