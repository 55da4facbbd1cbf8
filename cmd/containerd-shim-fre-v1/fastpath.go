package main

// fastpath.c answers the delete command before the Go runtime starts when
// the shim already deleted the container, and forks the start command so
// that one Go start serves as both start command and daemon (see the
// file's comment).

// extern int fre_start_pipe;
// extern long long fre_exec_ns;
import "C"

// startPipe is the pipe to the start command when this process is the
// child fastpath.c forked for it, or -1.
func startPipe() int { return int(C.fre_start_pipe) }

// execNanos is CLOCK_MONOTONIC when the process started, in ns.
func execNanos() int64 { return int64(C.fre_exec_ns) }
