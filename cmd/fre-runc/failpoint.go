package main

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime"
)

// failpoint is a traced phase ("clone", "delete: state", ...) after which
// the process SIGKILLs itself: the fault tests' kill -9 at a named step.
// Only a build with the tag failpoints sets it ($FRE_FAILPOINT,
// failpoint_on.go); fre-runc as shipped never reads it.
var failpoint string

// armFailpoint makes rt's traced phase failpoint fatal (after any trace
// already set).
func armFailpoint(rt *runtime.Runtime) {
	prev := rt.Trace
	rt.Trace = func(phase string, d time.Duration) {
		if prev != nil {
			prev(phase, d)
		}
		if phase == failpoint {
			unix.Kill(unix.Getpid(), unix.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
