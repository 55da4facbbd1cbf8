package process

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// The shim is a child subreaper, so orphans of its containers (a host-pid
// container's daemons) are re-parented to it and must be reaped. Its own
// processes are reaped through their pidfds; the reaper must never take
// their exit status, so it reaps only zombies whose pid is not registered.
var reg = struct {
	// spawn is held shared while a child is being started and
	// registered, and exclusively while strangers are reaped, so that a
	// child that exits at once is never taken for a stranger.
	spawn sync.RWMutex
	mu    sync.Mutex
	pids  map[int]int
}{pids: map[int]int{}}

// Spawning holds off the reaper until the returned func is called; call
// Track for the new child before that.
func Spawning() func() {
	reg.spawn.RLock()
	return reg.spawn.RUnlock
}

// Track marks pid as the shim's own: the reaper leaves it alone.
func Track(pid int) {
	reg.mu.Lock()
	reg.pids[pid]++
	reg.mu.Unlock()
}

// Untrack undoes Track once the pid has been reaped.
func Untrack(pid int) {
	reg.mu.Lock()
	if reg.pids[pid]--; reg.pids[pid] <= 0 {
		delete(reg.pids, pid)
	}
	reg.mu.Unlock()
}

func tracked(pid int) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.pids[pid] > 0
}

// RunReaper reaps exited children that are not the shim's own, on every
// SIGCHLD, until ctx is done.
func RunReaper(ctx context.Context) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			reapStrangers(ctx)
		}
	}
}

func reapStrangers(ctx context.Context) {
	reg.spawn.Lock()
	defer reg.spawn.Unlock()
	for _, pid := range children() {
		if tracked(pid) || !zombie(pid) {
			continue
		}
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil); err != nil {
			log.G(ctx).WithError(err).WithField("pid", pid).Debug("reap")
		}
	}
}

// children lists the shim's child processes (/proc/<pid>/task/*/children:
// children are per thread).
func children() []int {
	self := strconv.Itoa(os.Getpid())
	tasks, err := os.ReadDir("/proc/" + self + "/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + self + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
