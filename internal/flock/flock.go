// Package flock is flock(2) as FRE's lock files use it: retried on EINTR
// (a signal to the process, Go's preemption among them, interrupts a
// blocking flock).
package flock

import "golang.org/x/sys/unix"

// Lock applies how (unix.LOCK_SH, LOCK_EX, with LOCK_NB or not) to fd.
func Lock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}
