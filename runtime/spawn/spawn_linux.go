// Package spawn starts a container's init process: one clone() from a
// small C part (spawn.c) that executes a plan prepared in Go. Go decides;
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
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MountKind says what a Mount operation does.
type MountKind int

const (
	Mount   MountKind = C.FRE_MNT_MOUNT   // mount(2) a filesystem
	Bind    MountKind = C.FRE_MNT_BIND    // bind, then remount with flags
	Mknod   MountKind = C.FRE_MNT_MKNOD   // a device node
	Symlink MountKind = C.FRE_MNT_SYMLINK // Source is the link's target
	Mkdir   MountKind = C.FRE_MNT_MKDIR   // a directory
	Mask    MountKind = C.FRE_MNT_MASK    // maskedPaths entry
	RO      MountKind = C.FRE_MNT_RO      // readonlyPaths entry
)

// MountOp is one step of the root file system plan. Target is absolute
// inside the container; the child resolves it inside the root with
// RESOLVE_IN_ROOT, so no symlink in the image leads outside.
type MountOp struct {
	Kind        MountKind
	Source      string
	Target      string
	Fstype      string
	Data        string
	Flags       uintptr
	Propagation uintptr
	IsFile      bool
	Mode        uint32
	Dev         uint64
	UID, GID    uint32
}

// Join is a namespace entered with setns.
type Join struct {
	Type int // CLONE_NEW*
	Path string
}

// Rlimit is one resource limit.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64
}

// Caps are the five capability sets as bit masks.
type Caps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// Config is the whole plan of the child.
type Config struct {
	CloneFlags   int    // namespaces created by clone
	UnshareFlags int    // namespaces created after joining (owned by a joined user namespace)
	NewCgroupNS  bool   // unshare the cgroup namespace once in the cgroup
	Join         []Join // user namespace first
	PidNS        string // join this pid namespace (setns before clone)
	// CgroupJoin are cgroup v1 "tasks" files the child writes "0" to
	// before anything else (see cgroup.Manager.SelfJoinFiles).
	CgroupJoin []string
	// CgroupJoinLate are "tasks" files the child opens and writes "0" to
	// after Release (not LateRelease): the parent claims the cgroup while
	// the child makes its namespaces. Only without a user namespace.
	CgroupJoinLate []string
	// CgroupDir is a cgroup v2 directory the child is born in (clone3's
	// CLONE_INTO_CGROUP): nothing to join afterwards. Start fails with
	// ErrNoCloneIntoCgroup where the kernel cannot (before Linux 5.7).
	CgroupDir string

	FifoFD      int    // exec fifo (O_RDWR) to wait on, or -1: exec right away
	ConsoleFD   int    // console socket, or -1
	Stdio       [3]int // fds to become 0, 1, 2 (-1: inherit)
	ConsoleRows uint16
	ConsoleCols uint16

	MountNS         bool
	Rootfs          string
	RootPropagation uintptr
	ReadonlyRoot    bool
	NoPivot         bool
	// RootIsMount: Rootfs is the root of a mount (FRE's overlay of the
	// shared store, the shim's of containerd's snapshots), so it needs no
	// bind onto itself before pivot_root.
	RootIsMount bool
	// RootMount is mounted on Rootfs first thing in the new mount
	// namespace (Kind Mount; Target is Rootfs).
	RootMount *MountOp
	HookPause bool // stop after the mounts (see WaitHookPoint)
	// LateRelease: the child sets itself up without waiting for Release
	// and waits for it after its mounts, before seccomp and credentials.
	// Only when its set-up needs nothing of the parent's (no id maps to
	// write, no hooks, its cgroup joined by itself).
	LateRelease bool
	// FinalRelease: besides the waits above, the child waits for one more
	// Release at the end of its set-up, just before anything of the
	// container's runs (where LateRelease waits; not with it).
	FinalRelease bool
	// ReleaseAtMount, when not -1, makes the child wait for Release
	// (and then join CgroupJoinLate and unshare the cgroup namespace)
	// before Mounts[ReleaseAtMount], or after the last mount when it is
	// len(Mounts), instead of before its mounts. Needs a mount namespace.
	ReleaseAtMount int
	// ReleaseAgainAtMount, when not -1 (and ReleaseAtMount is not), makes
	// the child wait for a second Release before Mounts[i] (len(Mounts):
	// after the last), i >= ReleaseAtMount.
	ReleaseAgainAtMount int
	Mounts              []MountOp // before pivot_root
	PostMounts          []MountOp // after pivot_root
	Sysctl              [][2]string
	AttrWrites          [][2]string // LSM attributes (path, value) written right before exec
	Hostname            *string
	Domainname          *string

	Args        []string
	ExecPath    string // run this file instead of looking up Args[0]
	Env         []string
	PathEnv     string
	Cwd         string
	SetUser     bool
	UID, GID    uint32
	Groups      []uint32
	Umask       int // -1: inherit
	Rlimits     []Rlimit
	NoNewPrivs  bool
	Caps        *Caps
	CapLast     int
	UsernsRoot  bool
	PreserveFDs int
	Personality int    // -1: leave
	Sched       *Sched // nil: leave
	IOPrio      int    // -1: leave
	TimeNS      bool
	TimeOffsets string
	Seccomp     []unix.SockFilter
	SeccompFlag uint

	// Trace makes the child time its set-up (Process.Steps).
	Trace bool
}

// Step is one timed step of the child's set-up.
type Step struct {
	Name string
	D    time.Duration
}

// stepNames name what ends at each FRE_TS_* point (FRE_TS_START: none).
var stepNames = [...]string{"", "wait for parent", "root bind", "mounts", "pivot_root", "post mounts, sysctls", "process set-up", "until the wait for parent"}

// Sched is sched_setattr(2)'s attributes.
type Sched struct {
	Policy                    uint32
	Nice                      int32
	Priority                  uint32
	Flags                     uint64
	Runtime, Deadline, Period uint64
}

// Process is a cloned child waiting for Release.
type Process struct {
	Pid   int
	PidFD int
	// SeccompListener is the seccomp notify fd the child sent (-1: none);
	// the caller hands it on and closes it.
	SeccompListener int

	// Steps are the child's set-up steps, timed (Config.Trace), after Wait.
	Steps []Step

	sync    *os.File
	release chan struct{}
	plan    *C.struct_fre_spawn // shared with the child until it execs
	mem     *arena

	finished sync.Once // free, once: after Wait, or after the exec Wait no longer waits for
}

// ErrNoCloneIntoCgroup: the kernel has no clone3 with CLONE_INTO_CGROUP;
// start the child without Config.CgroupDir and move it in.
var ErrNoCloneIntoCgroup = errors.New("spawn: clone3 with CLONE_INTO_CGROUP not supported")

// ChildError is a set-up failure reported by the child.
type ChildError struct {
	Op  string
	Err syscall.Errno
}

func (e *ChildError) Error() string {
	if e.Err == 0 {
		return e.Op
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *ChildError) Unwrap() error { return e.Err }

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
	return &Process{Pid: r.pid, PidFD: r.pidfd, SeccompListener: -1, sync: parentSync, release: release, plan: s, mem: a}, nil
}

// Release lets the child go on with its set-up.
func (p *Process) Release() error {
	if _, err := p.sync.Write([]byte{'G'}); err != nil {
		if werr := p.Wait(); werr != nil {
			return fmt.Errorf("release child: %w", werr)
		}
		return fmt.Errorf("release child: container init exited: %w", err)
	}
	return nil
}

// WaitHookPoint waits until a child started with HookPause has made its
// mounts; Release lets it go on.
func (p *Process) WaitHookPoint() error {
	buf := make([]byte, 8192)
	n, err := p.sync.Read(buf)
	if err != nil || n == 0 {
		return errors.New("container init exited during set-up")
	}
	switch buf[0] {
	case 'H':
		return nil
	case 'E':
		return childError(buf[:n])
	}
	return fmt.Errorf("container init: unexpected message %q", buf[:n])
}

func childError(msg []byte) error {
	if len(msg) < 5 {
		return errors.New("container init failed")
	}
	errno := syscall.Errno(binary.NativeEndian.Uint32(msg[1:5]))
	return &ChildError{Op: string(msg[5:]), Err: errno}
}

// Wait waits until the child is set up: about to exec fre-dmz, which
// waits for start (with an exec fifo), or exec'd (without). It returns
// the child's error. After a ready child's Wait, its plan and stack are
// freed once fre-dmz runs.
// A seccomp listener fd the child sent is left in SeccompListener.
func (p *Process) Wait() error {
	handedOn := false
	defer func() {
		if !handedOn {
			p.finish()
		}
	}()
	buf := make([]byte, 8192)
	oob := make([]byte, unix.CmsgSpace(4))
	execing := false
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(p.sync.Fd()), buf, oob, 0)
		if err == unix.EINTR || err == unix.ECONNRESET {
			// ECONNRESET: the child exited with a Release of ours unread;
			// reported once, before what it sent (its error) is read.
			continue
		}
		if err != nil || n == 0 {
			if execing {
				p.steps(monotonicNow())
				return nil
			}
			return errors.New("container init exited during set-up")
		}
		switch buf[0] {
		case 'R':
			// Sent just before the child execs fre-dmz, which waits for
			// start: the set-up is done, but the child runs on our memory
			// until that exec. fre-dmz closes the socket once it runs.
			p.steps(monotonicNow())
			handedOn = true
			go p.finishAfterExec(int(p.sync.Fd()))
			return nil
		case 'X':
			execing = true
			continue
		case 'S':
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) > 0 {
					p.SeccompListener = fds[0]
				}
			}
			continue
		case 'E':
			return childError(buf[:n])
		}
		return fmt.Errorf("container init: unexpected message %q", buf[:n])
	}
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

// steps reads the child's timestamps (shared memory) into Steps, in the
// order they happened; done is when the parent saw it ready.
func (p *Process) steps(done int64) {
	if p.plan == nil || p.plan.trace == 0 {
		return
	}
	type point struct {
		t    int64
		name string // what ended at t
	}
	pts := []point{{done, "exec fre-dmz, ready"}}
	for i := 0; i < C.FRE_TS_N; i++ {
		if t := int64(p.plan.ts[i]); t != 0 {
			pts = append(pts, point{t, stepNames[i]})
		}
	}
	sort.Slice(pts, func(a, b int) bool { return pts[a].t < pts[b].t })
	for i := 1; i < len(pts); i++ {
		p.Steps = append(p.Steps, Step{pts[i].name, time.Duration(pts[i].t - pts[i-1].t)})
	}
}

func monotonicNow() int64 {
	var t unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &t)
	return t.Nano()
}

// finishAfterExec frees the child's plan and stack once the socket's
// other end is closed: by fre-dmz, or by the child's exit if the exec
// failed (its error, sent after ready, has nobody to go to).
func (p *Process) finishAfterExec(fd int) {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break
		}
	}
	p.finish()
}

func (p *Process) finish() { p.finished.Do(p.free) }

func (p *Process) free() {
	if p.release != nil {
		close(p.release)
		p.release = nil
	}
	p.sync.Close()
	if p.mem != nil {
		C.fre_spawn_free(p.plan)
		p.mem.free()
		p.mem = nil
	}
}

// Kill kills a child that failed or is not wanted, and reaps it.
func (p *Process) Kill() {
	unix.PidfdSendSignal(p.PidFD, unix.SIGKILL, nil, 0)
	var info unix.Siginfo
	unix.Waitid(unix.P_PIDFD, p.PidFD, &info, unix.WEXITED, nil)
	p.finish()
}

// UnpinThread gives the calling OS thread back the CPUs the process started
// with, undoing fre-runc's one-CPU start (see cmd/fre-runc/pin.go) for a
// process that is about to fork a helper (a hook, ps). The caller holds
// runtime.LockOSThread. A no-op in processes that never pinned.
func UnpinThread() error {
	if r := C.fre_unpin_thread(); r < 0 {
		return fmt.Errorf("sched_setaffinity: %w", syscall.Errno(-r))
	}
	return nil
}

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
