package cgroup

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// v2 is a cgroup in the unified hierarchy mounted at mount.
type v2 struct {
	mount string
	path  string
	// fresh: Create made the directory, so no device program of FRE's is
	// attached and the first Set need not look for one (cleared once a
	// device program is). made: Create made the directory (kept).
	fresh, made bool
}

func newV2(mount, p string) *v2 { return &v2{mount: mount, path: p} }

func (m *v2) Version() int             { return 2 }
func (m *v2) Path() string             { return m.path }
func (m *v2) dir() string              { return m.mount + m.path }
func (m *v2) Paths() map[string]string { return map[string]string{"": m.dir()} }
func (m *v2) Add(pid int) error        { return writeFile(m.dir(), "cgroup.procs", strconv.Itoa(pid)) }

// SelfJoinFiles is nil: on v2 "0" in cgroup.procs moves the whole thread
// group and takes the global lock anyway.
func (m *v2) SelfJoinFiles() []string { return nil }

func (m *v2) Pids() ([]int, error)            { return treePids(m.dir()) }
func (m *v2) WaitEmpty(t time.Duration) error { return waitEmpty(m, t) }

// Create makes the cgroup. When it is new, every level above it gets the
// controllers it may delegate enabled in cgroup.subtree_control, so the
// new cgroup has them; an existing cgroup is left as it is (no reads on
// the common path).
func (m *v2) Create() error {
	dir := m.dir()
	err := unix.Mkdir(dir, 0o755)
	if err == unix.EEXIST {
		return nil
	}
	if err != nil && err != unix.ENOENT {
		return &Error{Op: "mkdir", Path: dir, Err: err}
	}
	made := err == nil
	cur := m.mount
	for _, e := range strings.Split(m.path[1:], "/") {
		if err := enableSubtree(cur); err != nil {
			return err
		}
		cur += "/" + e
		err := unix.Mkdir(cur, 0o755)
		if err != nil && err != unix.EEXIST {
			return &Error{Op: "mkdir", Path: cur, Err: err}
		}
		made = made || err == nil && cur == dir
	}
	m.fresh, m.made = made, made
	return nil
}

// EnableAbove enables, in every level above the cgroup (from the
// hierarchy's root down to its parent), every controller the level has:
// what Create does for a cgroup it makes, for one another made (systemd's
// scope, whose slices get only the controllers systemd knows, not hugetlb,
// rdma or misc; runc does the same after starting the unit).
func (m *v2) EnableAbove() error {
	cur := m.mount
	parts := strings.Split(m.path[1:], "/")
	for _, e := range parts[:len(parts)-1] {
		if err := enableSubtree(cur); err != nil {
			return err
		}
		cur += "/" + e
	}
	return enableSubtree(cur)
}

// enableSubtree enables in dir's cgroup.subtree_control every controller
// dir has and does not delegate yet. Controllers the kernel refuses one by
// one (a cgroup with processes cannot delegate most) are left out: Set
// then names the missing file.
func enableSubtree(dir string) error {
	avail, err := readFile(dir, "cgroup.controllers")
	if err != nil || avail == "" {
		return err
	}
	have, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	on := map[string]bool{}
	for _, c := range strings.Fields(have) {
		on[c] = true
	}
	var add []string
	for _, c := range strings.Fields(avail) {
		if !on[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")) == nil {
		return nil
	}
	for _, c := range add {
		_ = writeFile(dir, "cgroup.subtree_control", c)
	}
	return nil
}

func (m *v2) Freeze() error {
	dir := m.dir()
	if !exists(dir, "cgroup.freeze") {
		return &Error{Op: "freeze", Path: dir, Err: ErrNotSupported}
	}
	if err := writeFile(dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	if err := poll(freezeTimeout, m.Frozen); err != nil {
		_ = writeFile(dir, "cgroup.freeze", "0")
		if err == ErrTimeout {
			return &Error{Op: "freeze", Path: dir, Err: ErrTimeout}
		}
		return err
	}
	return nil
}

func (m *v2) Thaw() error {
	if !exists(m.dir(), "cgroup.freeze") {
		return &Error{Op: "thaw", Path: m.dir(), Err: ErrNotSupported}
	}
	return writeFile(m.dir(), "cgroup.freeze", "0")
}

func (m *v2) Frozen() (bool, error) {
	kv, err := readKV(m.dir(), "cgroup.events")
	if err != nil {
		return false, err
	}
	return kv["frozen"] == 1, nil
}

// Kill uses cgroup.kill for SIGKILL (Linux 5.14): the kernel kills the
// whole subtree at once, with no race against forks. Other signals, and
// older kernels, freeze, signal each process and thaw.
func (m *v2) Kill(sig syscall.Signal) error {
	dir := m.dir()
	if sig == syscall.SIGKILL && exists(dir, "cgroup.kill") {
		return writeFile(dir, "cgroup.kill", "1")
	}
	frozen := false
	if exists(dir, "cgroup.freeze") {
		if err := m.Freeze(); err != nil {
			return err
		}
		frozen = true
	}
	err := signalAll(m, sig)
	if frozen {
		if terr := m.Thaw(); err == nil {
			err = terr
		}
	}
	return err
}

func (m *v2) Destroy() error { return rmTree(m.dir(), time.Now().Add(destroyTimeout)) }

func (m *v2) Rename(newPath string) error {
	np, err := cleanPath(newPath)
	if err != nil {
		return err
	}
	if !sameParent(m.path, np) {
		return &Error{Op: "rename", Path: m.path + " -> " + np, Err: ErrInvalidPath}
	}
	if err := unix.Rename(m.dir(), m.mount+np); err != nil {
		e := error(err)
		if err == unix.EPERM {
			// cgroup2 has no rename operation: the kernel says EPERM.
			e = errors.Join(ErrNotSupported, err)
		}
		return &Error{Op: "rename", Path: m.dir() + " -> " + m.mount + np, Err: e}
	}
	m.path = np
	return nil
}

func (m *v2) OOMKillCount() (uint64, error) {
	kv, err := readKV(m.dir(), "memory.events")
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, &Error{Op: "oom count", Path: m.dir(), Err: ErrNotSupported}
		}
		return 0, err
	}
	return kv["oom_kill"], nil
}
