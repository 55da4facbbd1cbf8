package main

// fastpath.c answers the delete command before the Go runtime starts when
// the shim already deleted the container, and forks the start command so
// that one Go start serves as both start command and daemon (see the
// file's comment).

// #include <stddef.h>
// extern int fre_start_pipe;
// extern long long fre_exec_ns;
// extern char fre_start_addr[160];
// extern const unsigned char *fre_start_stdin;
// extern size_t fre_start_stdin_len;
import "C"

import "unsafe"

// startPipe is the pipe to the start command when this process is the
// child fastpath.c forked for it, or -1.
func startPipe() int { return int(C.fre_start_pipe) }

// execNanos is CLOCK_MONOTONIC when the process started, in ns.
func execNanos() int64 { return int64(C.fre_exec_ns) }

// startAddr is the daemon's socket address when the start command made
// its sockets and answered before Go started (this process is the daemon
// it forked), or "".
func startAddr() string { return C.GoString(&C.fre_start_addr[0]) }

// startStdin is what the start command read of its stdin before it left
// the job to Go, and whether it read it.
func startStdin() ([]byte, bool) {
	if C.fre_start_stdin == nil {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(C.fre_start_stdin), C.int(C.fre_start_stdin_len)), true
}
