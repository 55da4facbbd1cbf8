// Package sysmon lowers the Go runtime's system monitor thread to
// SCHED_IDLE for the start path of a short-lived process (fre-runc).
//
// sysmon wakes every 20 µs at first, and takes the P from every system
// call that lasts longer than that, handing it to another thread when a
// goroutine is runnable. fre-runc makes many such calls (clone, mount,
// renames in cgroupfs, reads of its child's socket) on one pinned CPU, so
// each take is a thread switch that gains nothing. At SCHED_IDLE sysmon
// runs only when the CPU has nothing else to do, which on the start path
// is when fre-runc waits for its child: goroutines then run when the main
// one blocks, not in the middle of its system calls.
//
// What needs sysmon to be timely (a timer or a signal's goroutine while
// the main goroutine sits in a blocking system call such as waitid) must
// call Normal first: a busy host could otherwise hold those off for long.
package sysmon

import (
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	mu  sync.Mutex
	tid int // the quieted thread, 0 if none
)

// Quiet puts the sysmon thread at SCHED_IDLE; call it first thing in main.
// sysmon is the first thread the runtime starts after the main one
// (runtime.main, before any package init), and /proc/self/task lists a
// process's threads in the order they were created.
func Quiet() {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(3)
	d.Close()
	if len(names) < 2 {
		return
	}
	t, err := strconv.Atoi(names[1])
	if err != nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if unix.SchedSetAttr(t, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0) == nil {
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
