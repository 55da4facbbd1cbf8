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
	task.DeferGC()
	if addr := startAddr(); addr != "" {
		// The start command answered containerd before Go started and
		// forked this process to serve addr (fastpath.c).
		task.Milestone("shim.main")
		stdin, _ := startStdin()
		manager.AdoptedStart(addr, stdin)
	} else if fd := startPipe(); fd >= 0 {
		// Forked by the start command before Go started: do its work
		// and go on as the daemon.
		task.Milestone("shim.main")
		stdin, read := startStdin()
		manager.ForkedStart(fd, stdin, read)
		task.Milestone("shim.replied")
	}
	// NoReaper: the shim reaps its own processes through their pidfds and
	// strangers with process.RunReaper; the library's reaper would steal
	// their exit statuses.
	shim.RunShim(context.Background(), manager.NewShimManager("io.containerd.fre.v1"),
		func(c *shim.Config) { c.NoReaper = true })
}
