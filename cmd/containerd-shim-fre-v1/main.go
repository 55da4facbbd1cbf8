// Command containerd-shim-fre-v1 is FRE's containerd shim (runtime type
// io.containerd.fre.v1). It runs containers with runtime/ in-process: no
// OCI runtime binary is executed per operation.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/fre-runtime/fre/shim/manager"
	"github.com/fre-runtime/fre/shim/task"
	_ "github.com/fre-runtime/fre/shim/task/plugin"
)

func main() {
	task.SetExecTime(execNanos())
	if fd := startPipe(); fd >= 0 {
		// Forked by the start command before Go started: do its work
		// and go on as the daemon.
		task.Milestone("shim.main")
		manager.ForkedStart(fd)
		task.Milestone("shim.replied")
	}
	// NoReaper: the shim reaps its own processes through their pidfds and
	// strangers with process.RunReaper; the library's reaper would steal
	// their exit statuses.
	shim.RunShim(context.Background(), manager.NewShimManager("io.containerd.fre.v1"),
		func(c *shim.Config) { c.NoReaper = true })
}
