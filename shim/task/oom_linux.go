package task

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
)

// watchOOM calls fn (from its own goroutine) whenever the kernel reports
// memory pressure that may be an OOM kill in the container's cgroup: v1
// through memory.oom_control's eventfd, v2 through inotify on
// memory.events. fn checks the kill counter itself, so spurious wake-ups
// (the eventfd also fires when the cgroup is removed) are harmless.
func watchOOM(cg cgroup.Manager, fn func()) (stop func(), err error) {
	var f *os.File
	if cg.Version() == 1 {
		f, err = oomEventfdV1(cg.Paths()["memory"])
	} else {
		f, err = oomInotifyV2(cg.Paths()[""])
	}
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return // closed by stop
			}
			fn()
		}
	}()
	return func() { f.Close() }, nil
}

// pollable wraps a non-blocking fd so reads park on the netpoller.
func pollable(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

func oomEventfdV1(dir string) (*os.File, error) {
	if dir == "" {
		return nil, fmt.Errorf("no memory cgroup")
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("register oom eventfd in %s: %w", dir, err)
	}
	return pollable(efd, "oom-eventfd"), nil
}

func oomInotifyV2(dir string) (*os.File, error) {
	if dir == "" {
		return nil, fmt.Errorf("no cgroup v2 directory")
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(dir, "memory.events"), unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s/memory.events: %w", dir, err)
	}
	return pollable(fd, "oom-inotify"), nil
}
