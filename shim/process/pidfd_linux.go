package process

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitPidfd waits, on the netpoller, until the child behind pidfd exits,
// reaps it and returns its exit status (128+signal when killed). pidfd is
// not consumed: a duplicate is polled.
func waitPidfd(pidfd int) (int, error) {
	fd, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup pidfd: %w", err)
	}
	// Non-blocking makes os.NewFile register the fd with the netpoller; a
	// pidfd polls readable once the process has exited.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	status := -1
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			var info unix.Siginfo
			werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
			switch werr {
			case unix.EINTR:
				continue
			case unix.EAGAIN: // a non-blocking pidfd of a live process
				werr = nil
				return false
			case nil:
				pid, st := siginfoExit(&info)
				if pid == 0 {
					return false // not exited yet
				}
				status = st
			}
			return true
		}
	})
	if err != nil {
		return -1, err
	}
	if werr != nil {
		return -1, fmt.Errorf("waitid: %w", werr)
	}
	return status, nil
}

// siginfoExit reads si_pid and the exit status from a SIGCHLD siginfo
// (x/sys/unix does not expose the union's fields).
func siginfoExit(info *unix.Siginfo) (pid, status int) {
	b := (*[128]byte)(unsafe.Pointer(info))
	code := int32(binary.NativeEndian.Uint32(b[8:12]))
	pid = int(int32(binary.NativeEndian.Uint32(b[16:20])))
	st := int(int32(binary.NativeEndian.Uint32(b[24:28])))
	const cldExited = 1
	if code == cldExited {
		return pid, st
	}
	return pid, 128 + st
}
