// Package sysmon puts the Go runtime's system monitor thread in
// SCHED_BATCH for the start path of a short-lived process (fre-runc).
//
// sysmon wakes every 20 µs at first, and takes the P from every system
// call that lasts longer than that, handing it to another thread when a
// goroutine is runnable. fre-runc makes many such calls (clone, mount,
// renames in cgroupfs, reads of its child's socket) on one pinned CPU, and
// each wake-up of sysmon preempted the main thread: a thread switch that
// gains nothing. A SCHED_BATCH thread never preempts the running one when
// it wakes; it gets its fair share of the CPU all the same. (SCHED_IDLE,
// tried first, was no faster, and a thread inherits its creator's policy:
// the Ms sysmon starts would have run Go code at idle priority, starved on
// a busy host. They run in SCHED_BATCH now, which only gives up wake-up
// preemption.)
//
// What needs sysmon to be timely (a timer or a signal's goroutine while
// the main goroutine sits in a blocking system call such as waitid) calls
// Normal first, and gets preemption back.
package sysmon

import (
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	mu  sync.Mutex
	tid int // the quieted thread, 0 if none
)

// Quiet puts the sysmon thread in SCHED_BATCH; call it first thing in main.
// sysmon is the first thread the runtime starts after the main one
// (runtime.main, before any package init), and /proc/self/task lists a
// process's threads in the order they were created.
func Quiet() {
	// Raw calls: an *os.File would set up the poller, and Readdirnames
	// its buffers, in every process.
	fd, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var buf [512]byte
	n, err := unix.Getdents(fd, buf[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return
	}
	_, _, names := unix.ParseDirent(buf[:n], 3, nil) // ".." and "." are skipped
	if len(names) < 2 {
		return
	}
	t, err := strconv.Atoi(names[1])
	if err != nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if unix.SchedSetAttr(t, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}, 0) == nil {
		tid = t
	}
}

// Normal gives sysmon back its normal policy. Safe to call any number of
// times, and without Quiet.
func Normal() {
	mu.Lock()
	defer mu.Unlock()
	if tid == 0 {
		return
	}
	unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
	tid = 0
}
