// Package spawn starts a container's init process: one clone() from a
// small C part (spawn*.c) that executes a plan prepared in Go. Go decides;
// C only carries the plan out, because after a fork in a multithreaded Go
// process only raw system calls are safe, and setns into mount and user
// namespaces needs a single-threaded caller. Nothing is re-executed on the
// start path: the child goes from clone() straight to the container's
// program.
package spawn

/*
#cgo CFLAGS: -O2 -Wall
#define _GNU_SOURCE
#include <stdlib.h>
#include "spawn.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoCloneIntoCgroup: the kernel has no clone3 with CLONE_INTO_CGROUP;
// start the child without Config.CgroupDir and move it in.
var ErrNoCloneIntoCgroup = errors.New("spawn: clone3 with CLONE_INTO_CGROUP not supported")

type arena struct{ ptrs []unsafe.Pointer }

func (a *arena) alloc(n uintptr) unsafe.Pointer {
	p := C.calloc(1, C.size_t(n))
	a.ptrs = append(a.ptrs, p)
	return p
}

func (a *arena) str(s string) *C.char {
	p := C.CString(s)
	a.ptrs = append(a.ptrs, unsafe.Pointer(p))
	return p
}

func (a *arena) strs(ss []string) **C.char {
	arr := (*[1 << 20]*C.char)(a.alloc(uintptr(len(ss)+1) * unsafe.Sizeof((*C.char)(nil))))
	for i, s := range ss {
		arr[i] = a.str(s)
	}
	return &arr[0]
}

// pairs lays (path, value) pairs out as two C string arrays.
func (a *arena) pairs(kvs [][2]string) (**C.char, **C.char, C.int) {
	if len(kvs) == 0 {
		return nil, nil, 0
	}
	paths := make([]string, len(kvs))
	vals := make([]string, len(kvs))
	for i, kv := range kvs {
		paths[i], vals[i] = kv[0], kv[1]
	}
	return a.strs(paths), a.strs(vals), C.int(len(kvs))
}

func (a *arena) free() {
	for _, p := range a.ptrs {
		C.free(p)
	}
}

func (a *arena) mounts(ops []MountOp) (*C.struct_fre_mount, C.int) {
	if len(ops) == 0 {
		return nil, 0
	}
	arr := unsafe.Slice((*C.struct_fre_mount)(a.alloc(uintptr(len(ops))*C.sizeof_struct_fre_mount)), len(ops))
	for i, m := range ops {
		c := &arr[i]
		c.kind = C.int(m.Kind)
		if m.Source != "" {
			c.source = a.str(m.Source)
		}
		c.target = a.str(m.Target)
		if m.Fstype != "" {
			c.fstype = a.str(m.Fstype)
		}
		if m.Data != "" {
			c.data = a.str(m.Data)
		}
		c.flags = C.ulong(m.Flags)
		c.propagation = C.ulong(m.Propagation)
		if m.IsFile {
			c.is_file = 1
		}
		c.mode = C.uint(m.Mode)
		c.dev = C.ulonglong(m.Dev)
		c.uid = C.uint(m.UID)
		c.gid = C.uint(m.GID)
		c.attr_set = C.ulonglong(m.AttrSet)
		c.attr_clr = C.ulonglong(m.AttrClr)
		c.src = -1
	}
	return &arr[0], C.int(len(ops))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Start clones the child. It returns once the child exists and waits for
// Release; the caller joins it to its cgroup and writes id maps meanwhile.
func Start(cfg *Config) (*Process, error) {
	if len(cfg.Args) == 0 {
		return nil, errors.New("spawn: no program")
	}
	// The child runs in our memory (CLONE_VM) until it execs: the plan
	// and its stack stay allocated until Wait or Kill (Process.finish).
	a := &arena{}
	started := false
	defer func() {
		if !started {
			a.free()
		}
	}()
	s := (*C.struct_fre_spawn)(a.alloc(C.sizeof_struct_fre_spawn))

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawn: socketpair: %w", err)
	}
	parentSync := os.NewFile(uintptr(fds[0]), "sync")
	defer unix.Close(fds[1])

	var closeAfter []int
	defer func() {
		for _, fd := range closeAfter {
			unix.Close(fd)
		}
	}()
	s.trace = cbool(cfg.Trace)
	s.clone_flags = C.int(cfg.CloneFlags)
	s.unshare_flags = C.int(cfg.UnshareFlags)
	s.cgroupns_new = cbool(cfg.NewCgroupNS)
	s.pidns_fd = -1
	s.cgroup_dir_fd = -1
	if cfg.CgroupDir != "" {
		fd, err := unix.Open(cfg.CgroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			parentSync.Close()
			return nil, fmt.Errorf("open cgroup %s: %w", cfg.CgroupDir, err)
		}
		closeAfter = append(closeAfter, fd)
		s.cgroup_dir_fd = C.int(fd)
	}
	if len(cfg.Join) > 0 {
		arr := unsafe.Slice((*C.struct_fre_ns)(a.alloc(uintptr(len(cfg.Join))*C.sizeof_struct_fre_ns)), len(cfg.Join))
		for i, j := range cfg.Join {
			fd, err := unix.Open(j.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				parentSync.Close()
				return nil, fmt.Errorf("open namespace %s: %w", j.Path, err)
			}
			closeAfter = append(closeAfter, fd)
			arr[i]._type = C.int(j.Type)
			arr[i].fd = C.int(fd)
		}
		s.join = &arr[0]
		s.njoin = C.int(len(cfg.Join))
	}
	if len(cfg.CgroupJoin) > 0 {
		arr := unsafe.Slice((*C.int)(a.alloc(uintptr(len(cfg.CgroupJoin))*C.sizeof_int)), len(cfg.CgroupJoin))
		for i, f := range cfg.CgroupJoin {
			fd, err := unix.Open(f, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				parentSync.Close()
				return nil, fmt.Errorf("open cgroup %s: %w", f, err)
			}
			closeAfter = append(closeAfter, fd)
			arr[i] = C.int(fd)
		}
		s.cgroup_fds = &arr[0]
		s.ncgroup_fds = C.int(len(cfg.CgroupJoin))
	}
	if n := len(cfg.CgroupJoinLate); n > 0 {
		s.cgroup_late = a.strs(cfg.CgroupJoinLate)
		s.ncgroup_late = C.int(n)
	}
	tainted := false
	if cfg.PidNS != "" {
		fd, err := unix.Open(cfg.PidNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			parentSync.Close()
			return nil, fmt.Errorf("open namespace %s: %w", cfg.PidNS, err)
		}
		closeAfter = append(closeAfter, fd)
		s.pidns_fd = C.int(fd)
		tainted = true
	}
	s.sync_fd = C.int(fds[1])
	s.parent_sync_fd = C.int(fds[0])
	s.fifo_fd = C.int(cfg.FifoFD)
	s.console_fd = C.int(cfg.ConsoleFD)
	for i, fd := range cfg.Stdio {
		s.stdio[i] = C.int(fd)
	}
	s.cons_rows = C.ushort(cfg.ConsoleRows)
	s.cons_cols = C.ushort(cfg.ConsoleCols)

	s.mount_ns = cbool(cfg.MountNS)
	s.rootfs = a.str(cfg.Rootfs)
	s.root_propagation = C.ulong(cfg.RootPropagation)
	s.readonly_root = cbool(cfg.ReadonlyRoot)
	s.root_is_mount = cbool(cfg.RootIsMount)
	if m := cfg.RootMount; m != nil {
		s.root_mount_source = a.str(m.Source)
		s.root_mount_type = a.str(m.Fstype)
		s.root_mount_flags = C.ulong(m.Flags)
		s.root_mount_data = a.str(m.Data)
	}
	s.no_pivot = cbool(cfg.NoPivot)
	s.hook_pause = cbool(cfg.HookPause)
	s.late_go = cbool(cfg.LateRelease && !cfg.HookPause)
	s.final_go = cbool(cfg.FinalRelease && !(cfg.LateRelease && !cfg.HookPause))
	s.go_at_mount, s.go2_at_mount = -1, -1
	if cfg.ReleaseAtMount >= 0 && cfg.MountNS && !cfg.LateRelease && !cfg.HookPause {
		s.go_at_mount = C.int(cfg.ReleaseAtMount)
		if cfg.ReleaseAgainAtMount >= cfg.ReleaseAtMount {
			s.go2_at_mount = C.int(cfg.ReleaseAgainAtMount)
		}
	}
	s.mounts, s.nmounts = a.mounts(cfg.Mounts)
	s.post_mounts, s.npost_mounts = a.mounts(cfg.PostMounts)
	var srcPaths []string
	if cfg.SourcesFromParent && cfg.MountNS {
		if cfg.LateRelease || cfg.ReleaseAtMount >= 0 {
			parentSync.Close()
			return nil, errors.New("spawn: SourcesFromParent needs the release before the mounts")
		}
		mounts := unsafe.Slice(s.mounts, len(cfg.Mounts))
		for i, m := range cfg.Mounts {
			if m.Kind == Bind && len(srcPaths) < C.FRE_MAX_SRC_FDS {
				mounts[i].src = C.int(len(srcPaths))
				srcPaths = append(srcPaths, m.Source)
			}
		}
		if n := len(srcPaths); n > 0 {
			arr := unsafe.Slice((*C.int)(a.alloc(uintptr(n)*C.sizeof_int)), n)
			for i := range arr {
				arr[i] = -1
			}
			s.src_fds, s.nsrc_fds = &arr[0], C.int(n)
		}
	}
	s.sysctl_paths, s.sysctl_values, s.nsysctl = a.pairs(cfg.Sysctl)
	s.attr_paths, s.attr_values, s.nattr = a.pairs(cfg.AttrWrites)
	if cfg.Hostname != nil {
		s.hostname = a.str(*cfg.Hostname)
	}
	if cfg.Domainname != nil {
		s.domainname = a.str(*cfg.Domainname)
	}

	if cfg.PathEnv != "" {
		s.path_env = a.str(cfg.PathEnv)
	}
	s.argv = a.strs(cfg.Args)
	if cfg.ExecPath != "" {
		s.exec_path = a.str(cfg.ExecPath)
	}
	s.envp = a.strs(cfg.Env)
	if cfg.Cwd != "" {
		s.cwd = a.str(cfg.Cwd)
	}
	s.set_user = cbool(cfg.SetUser)
	s.uid = C.uint(cfg.UID)
	s.gid = C.uint(cfg.GID)
	if n := len(cfg.Groups); n > 0 {
		arr := unsafe.Slice((*C.uint)(a.alloc(uintptr(n)*4)), n)
		for i, g := range cfg.Groups {
			arr[i] = C.uint(g)
		}
		s.groups = &arr[0]
		s.ngroups = C.int(n)
	}
	s.umask = C.int(cfg.Umask)
	if n := len(cfg.Rlimits); n > 0 {
		arr := unsafe.Slice((*C.struct_fre_rlimit)(a.alloc(uintptr(n)*C.sizeof_struct_fre_rlimit)), n)
		for i, r := range cfg.Rlimits {
			arr[i].resource = C.int(r.Resource)
			arr[i].soft = C.ulonglong(r.Soft)
			arr[i].hard = C.ulonglong(r.Hard)
		}
		s.rlimits = &arr[0]
		s.nrlimits = C.int(n)
	}
	s.no_new_privs = cbool(cfg.NoNewPrivs)
	if cfg.Caps != nil {
		s.set_caps = 1
		s.cap_bounding = C.uint64_t(cfg.Caps.Bounding)
		s.cap_effective = C.uint64_t(cfg.Caps.Effective)
		s.cap_permitted = C.uint64_t(cfg.Caps.Permitted)
		s.cap_inheritable = C.uint64_t(cfg.Caps.Inheritable)
		s.cap_ambient = C.uint64_t(cfg.Caps.Ambient)
		s.cap_last = C.int(cfg.CapLast)
	}
	s.userns_root = cbool(cfg.UsernsRoot)
	s.preserve_fds = C.int(cfg.PreserveFDs)
	s.personality = C.long(cfg.Personality)
	s.ioprio = C.int(cfg.IOPrio)
	if cfg.Sched != nil {
		s.set_sched = 1
		s.sched_policy = C.uint(cfg.Sched.Policy)
		s.sched_nice = C.int(cfg.Sched.Nice)
		s.sched_priority = C.uint(cfg.Sched.Priority)
		s.sched_flags = C.ulonglong(cfg.Sched.Flags)
		s.sched_runtime = C.ulonglong(cfg.Sched.Runtime)
		s.sched_deadline = C.ulonglong(cfg.Sched.Deadline)
		s.sched_period = C.ulonglong(cfg.Sched.Period)
	}
	s.time_ns = cbool(cfg.TimeNS)
	if cfg.TimeOffsets != "" {
		s.time_offsets = a.str(cfg.TimeOffsets)
	}
	dfd, err := dmzFD()
	if err != nil {
		parentSync.Close()
		return nil, err
	}
	s.dmz_fd = C.int(dfd)
	s.seccomp_fd = -1
	if n := len(cfg.Seccomp); n > 0 {
		sfd, err := seccompMemfd(cfg.Seccomp)
		if err != nil {
			parentSync.Close()
			return nil, err
		}
		closeAfter = append(closeAfter, sfd)
		s.seccomp_fd = C.int(sfd)
		s.seccomp_len = C.int(n)
		s.seccomp_flags = C.uint(cfg.SeccompFlag)
	}
	s.dmz_argv = a.strs(dmzArgs(fds[1], cfg.FifoFD, int(s.seccomp_fd), cfg.SeccompFlag, len(cfg.Seccomp), cfg.Args))

	// The child dies with the thread that cloned it (PDEATHSIG) until it
	// is set up. Go ends a thread only when a goroutine exits while locked
	// to it, and no goroutine of FRE does (see below and netns): so a
	// child cloned from the caller's thread (the cgo call runs on it) is
	// safe, whichever goroutine runs there later. (Handing every clone to
	// a goroutine of its own cost 0.2-0.3 ms in the shim: the caller then
	// waited to be scheduled again while the child, just cloned, took a
	// CPU.) A clone into another pid namespace does take a locked
	// goroutine: setns(CLONE_NEWPID) changes that thread's children's
	// namespace, which is set back to its own once the child is set up,
	// before the thread is given back to Go.
	type result struct{ pid, pidfd int }
	var r result
	var release chan struct{}
	if !tainted {
		var pidfd C.int
		pid := C.fre_spawn_start(s, &pidfd)
		r = result{int(pid), int(pidfd)}
	} else {
		res := make(chan result, 1)
		release = make(chan struct{})
		go func() {
			runtime.LockOSThread()
			own, oerr := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			var pidfd C.int
			pid := C.fre_spawn_start(s, &pidfd)
			res <- result{int(pid), int(pidfd)}
			<-release
			if oerr == nil && unix.Setns(own, unix.CLONE_NEWPID) == nil {
				unix.Close(own)
				runtime.UnlockOSThread()
				return
			}
			// Still tainted: keep the thread from Go for good rather than
			// end it (which would kill what else it cloned, PDEATHSIG).
			select {}
		}()
		r = <-res
	}
	if r.pid < 0 {
		if release != nil {
			close(release)
		}
		parentSync.Close()
		C.fre_spawn_free(s)
		if cfg.CgroupDir != "" && syscall.Errno(-r.pid) == unix.ENOSYS {
			return nil, ErrNoCloneIntoCgroup
		}
		return nil, fmt.Errorf("clone: %w", syscall.Errno(-r.pid))
	}
	started = true
	return &Process{Pid: r.pid, PidFD: r.pidfd, SeccompListener: -1, sync: parentSync, release: release, plan: s, mem: a, srcPaths: srcPaths}, nil
}

// seccompMemfd puts a filter where fre-dmz can read it after set-up.
func seccompMemfd(prog []unix.SockFilter) (int, error) {
	fd, err := unix.MemfdCreate("fre-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("memfd for seccomp: %w", err)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(prog)*int(unsafe.Sizeof(prog[0])))
	if _, err := unix.Pwrite(fd, b, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("write seccomp filter: %w", err)
	}
	return fd, nil
}

// UnpinThread gives the calling OS thread back the CPUs the process started
// with, undoing fre-runc's one-CPU start (see cmd/fre-runc/pin.go) for a
// process that is about to fork a helper (a hook, ps). The caller holds
// runtime.LockOSThread. A no-op in processes that never pinned. It gives
// the process back transparent huge pages too (RestoreTHP).
func UnpinThread() error {
	RestoreTHP()
	if r := C.fre_unpin_thread(); r < 0 {
		return fmt.Errorf("sched_setaffinity: %w", syscall.Errno(-r))
	}
	return nil
}

// RestoreTHP gives the process back the host's transparent huge page
// policy, when fre-runc's start turned THP off (cmd/fre-runc/pin.go), so
// that a program it execs (a hook, ps) inherits the host's setting, not
// fre-runc's; spawn's children do it themselves before their exec. Once;
// a no-op in other processes.
func RestoreTHP() { C.fre_thp_restore() }

// StartAffinity returns the CPUs the process had before fre-runc's one-CPU
// start, and false when it did not pin itself.
func StartAffinity() (unix.CPUSet, bool) {
	var set unix.CPUSet
	var cs C.cpu_set_t
	if C.fre_start_affinity(&cs) == 0 {
		return set, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&set)), unsafe.Sizeof(set)), unsafe.Slice((*byte)(unsafe.Pointer(&cs)), unsafe.Sizeof(cs)))
	return set, true
}
