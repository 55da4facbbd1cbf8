package task

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TimingLogEnv names a file to which the shim appends how long its own
// Create and Start of each container took ("<op> <id> <nanoseconds>", one
// line per RPC), the runtime's phases, and when after its start the
// process reached its milestones (shim.main, shim.replied, shim.service,
// shim.register, shim.create). It is for benchmarks (frebench shim): set it in
// containerd's environment, which the shim inherits. Unset, nothing is
// measured or written.
const TimingLogEnv = "FRE_SHIM_TIMING_LOG"

var timing = struct {
	once sync.Once
	f    *os.File

	mu     sync.Mutex // buf, queued
	buf    []byte
	queued bool
	wmu    sync.Mutex // writes to f, in order
}{}

// timingFlushDelay: records are kept in memory and written this long after
// the first one since the last write (and at shutdown), so the timed RPCs
// do not pay a write(2) per record.
const timingFlushDelay = 50 * time.Millisecond

func timingLog() *os.File {
	timing.once.Do(func() {
		if p := os.Getenv(TimingLogEnv); p != "" {
			timing.f, _ = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		}
	})
	return timing.f
}

// timed returns a func that records op's duration for id since now, when
// the timing log is on.
func timed(op, id string) func() {
	f := timingLog()
	if f == nil {
		return func() {}
	}
	start := time.Now()
	return func() { record(op, id, time.Since(start)) }
}

func record(op, id string, d time.Duration) {
	if timingLog() == nil {
		return
	}
	op = strings.ReplaceAll(op, " ", "_")
	timing.mu.Lock()
	timing.buf = fmt.Appendf(timing.buf, "%s %s %d\n", op, id, d.Nanoseconds())
	if !timing.queued {
		timing.queued = true
		time.AfterFunc(timingFlushDelay, FlushTimings)
	}
	timing.mu.Unlock()
}

// FlushTimings writes the records kept so far to the timing log.
func FlushTimings() {
	f := timingLog()
	if f == nil {
		return
	}
	timing.wmu.Lock()
	defer timing.wmu.Unlock()
	timing.mu.Lock()
	b := timing.buf
	timing.buf, timing.queued = nil, false
	timing.mu.Unlock()
	if len(b) > 0 {
		f.Write(b)
	}
}

var execTime int64

// SetExecTime sets the base of Milestone: CLOCK_MONOTONIC in ns when the
// process started (the shim's C constructor reads it).
func SetExecTime(ns int64) { execTime = ns }

// Milestone records, in the timing log, how long after the process
// started it reached name ("shim.*" lines, id "-").
func Milestone(name string) {
	if execTime == 0 || timingLog() == nil {
		return
	}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return
	}
	record(name, "-", time.Duration(ts.Nano()-execTime))
}

// traceInit is process.InitConfig.Trace for id when timing is on.
func traceInit(id string) func(string, time.Duration) {
	if timingLog() == nil {
		return nil
	}
	return func(step string, d time.Duration) { record("create.init."+step, id, d) }
}
