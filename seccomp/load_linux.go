package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs prog with flags (both from Compile) on the calling thread,
// after setting no_new_privs, which an unprivileged seccomp(2) requires.
// Without SECCOMP_FILTER_FLAG_TSYNC only this thread is filtered: lock the
// goroutine to its thread (runtime.LockOSThread) and load right before
// exec, as the filter also confines the Go runtime itself.
func Load(prog []unix.SockFilter, flags uint) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("%w: program of %d instructions", ErrInvalidProfile, len(prog))
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, %#x): %w", flags, errno)
	}
	if tid != 0 { // TSYNC: this thread could not be synchronized
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): thread %d has a diverging filter", tid)
	}
	return nil
}
