package spawn

/*
#define _GNU_SOURCE
#include "spawn.h"
*/
import "C"

import (
	"time"

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
	SetAttr MountKind = C.FRE_MNT_SETATTR // recursive attributes (AttrSet, AttrClr: MOUNT_ATTR_*)
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
	// AttrSet and AttrClr (SetAttr) are MOUNT_ATTR_* flags set and
	// cleared on Target's mount and every mount below it.
	AttrSet, AttrClr uint64
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
	// SourcesFromParent: the Bind sources of Mounts are opened by the
	// parent (Release), as root of the host, in the child's mount
	// namespace, and bound from those fds: in a user namespace the
	// container's root may not reach them (runc's mount fds). The child
	// must wait for Release before its mounts (not LateRelease, no
	// ReleaseAtMount).
	SourcesFromParent bool
	Sysctl            [][2]string
	AttrWrites        [][2]string // LSM attributes (path, value) written right before exec
	Hostname          *string
	Domainname        *string

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
