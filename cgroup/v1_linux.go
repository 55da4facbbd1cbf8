package cgroup

import (
	"path"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// v1 is a cgroup in every managed v1 hierarchy.
type v1 struct {
	path  string    // "/a/b"
	hiers []v1Mount // sorted; the cgroup's dir in each is mountpoint+path
}

func newV1(hiers []v1Mount, p string) *v1 { return &v1{path: p, hiers: hiers} }

func (m *v1) Version() int { return 1 }
func (m *v1) Path() string { return m.path }

// dir is the cgroup's directory in the hierarchy carrying ctrl, "" if
// that controller is not mounted.
func (m *v1) dir(ctrl string) string {
	for _, h := range m.hiers {
		for _, c := range h.controllers {
			if c == ctrl {
				return h.mountpoint + m.path
			}
		}
	}
	return ""
}

func (m *v1) Paths() map[string]string {
	out := make(map[string]string, len(m.hiers)+1)
	for _, h := range m.hiers {
		for _, c := range h.controllers {
			out[c] = h.mountpoint + m.path
		}
	}
	return out
}

func (m *v1) Create() error {
	for _, h := range m.hiers {
		dir := h.mountpoint + m.path
		var made func(string) error
		if h.controllers[0] == "cpuset" {
			made = copyCpuset
		}
		if err := mkdirCgroup(h.mountpoint, dir, made); err != nil {
			return err
		}
		if made != nil {
			// An existing cpuset cgroup may have been left half made.
			if err := ensureCpuset(h.mountpoint, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyCpuset gives a new cpuset cgroup its parent's cpus and mems: the
// kernel starts them empty and refuses processes until they are set.
func copyCpuset(dir string) error {
	parent := path.Dir(dir)
	for _, f := range [...]string{"cpuset.cpus", "cpuset.mems"} {
		v, err := readFile(parent, f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, v); err != nil {
			return err
		}
	}
	return nil
}

// ensureCpuset copies cpus and mems down to dir where either is still
// empty: a cgroup made concurrently by another (the shared parent of two
// containers created at once) may have its cpus and not yet its mems, and
// a child that copied then would refuse every process (ENOSPC). Copying
// the parent's values again is harmless.
func ensureCpuset(root, dir string) error {
	if len(dir) <= len(root) {
		return nil
	}
	var empty []string
	for _, f := range [...]string{"cpuset.cpus", "cpuset.mems"} {
		v, err := readFile(dir, f)
		if err != nil {
			return err
		}
		if v == "" {
			empty = append(empty, f)
		}
	}
	if len(empty) == 0 {
		return nil
	}
	if err := ensureCpuset(root, path.Dir(dir)); err != nil {
		return err
	}
	for _, f := range empty {
		v, err := readFile(path.Dir(dir), f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) Add(pid int) error {
	s := strconv.Itoa(pid)
	for _, h := range m.hiers {
		if err := writeFile(h.mountpoint+m.path, "cgroup.procs", s); err != nil {
			return err
		}
	}
	return nil
}

// SelfJoinFiles: moving one thread (itself, "0") through "tasks" does not
// take cgroup_threadgroup_rwsem, whose write side costs an RCU grace
// period (6-20 ms measured here) whenever it was idle; cgroup.procs with a
// pid always takes it.
func (m *v1) SelfJoinFiles() []string {
	out := make([]string, len(m.hiers))
	for i, h := range m.hiers {
		out[i] = h.mountpoint + m.path + "/tasks"
	}
	return out
}

// procsDir is the directory whose cgroup.procs is read for the member
// list: the freezer's, as Kill freezes there.
func (m *v1) procsDir() string {
	if d := m.dir("freezer"); d != "" {
		return d
	}
	return m.hiers[0].mountpoint + m.path
}

func (m *v1) Pids() ([]int, error) { return treePids(m.procsDir()) }

// freezeTimeout bounds the wait for FREEZING to become FROZEN.
const freezeTimeout = 10 * time.Second

func (m *v1) Freeze() error {
	dir := m.dir("freezer")
	if dir == "" {
		return &Error{Op: "freeze", Path: m.path, Err: ErrNotSupported}
	}
	// While tasks are still FREEZING, writing FROZEN again makes the kernel
	// retry the ones it could not stop yet (as runc does).
	err := poll(freezeTimeout, func() (bool, error) {
		if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
			return false, err
		}
		s, err := readFile(dir, "freezer.state")
		return s == "FROZEN", err
	})
	if err == ErrTimeout {
		_ = writeFile(dir, "freezer.state", "THAWED")
		return &Error{Op: "freeze", Path: dir, Err: ErrTimeout}
	}
	return err
}

func (m *v1) Thaw() error {
	dir := m.dir("freezer")
	if dir == "" {
		return &Error{Op: "thaw", Path: m.path, Err: ErrNotSupported}
	}
	return writeFile(dir, "freezer.state", "THAWED")
}

func (m *v1) Frozen() (bool, error) {
	dir := m.dir("freezer")
	if dir == "" {
		return false, nil
	}
	s, err := readFile(dir, "freezer.state")
	return s == "FROZEN", err
}

// Kill freezes the cgroup so nothing forks meanwhile, signals every
// member, then thaws so the signals are delivered.
func (m *v1) Kill(sig syscall.Signal) error {
	frozen := false
	if m.dir("freezer") != "" {
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

func signalAll(m Manager, sig syscall.Signal) error {
	pids, err := m.Pids()
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return &Error{Op: "kill", Path: m.Path() + " pid " + strconv.Itoa(pid), Err: err}
		}
	}
	return nil
}

func (m *v1) WaitEmpty(timeout time.Duration) error { return waitEmpty(m, timeout) }

func waitEmpty(m Manager, timeout time.Duration) error {
	err := poll(timeout, func() (bool, error) {
		pids, err := m.Pids()
		if err != nil && isNotExist(err) {
			return true, nil
		}
		return len(pids) == 0, err
	})
	if err == ErrTimeout {
		return &Error{Op: "wait empty", Path: m.Path(), Err: ErrTimeout}
	}
	return err
}

func (m *v1) Destroy() error {
	deadline := time.Now().Add(destroyTimeout)
	var first error
	for _, h := range m.hiers {
		if err := rmTree(h.mountpoint+m.path, deadline); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Rename renames in hierarchy order. Callers racing for the same source
// (cgpool) all fail at the first hierarchy but one, so the first
// hierarchy's rename is the claim.
func (m *v1) Rename(newPath string) error {
	np, err := cleanPath(newPath)
	if err != nil {
		return err
	}
	if !sameParent(m.path, np) {
		return &Error{Op: "rename", Path: m.path + " -> " + np, Err: ErrInvalidPath}
	}
	for i, h := range m.hiers {
		if err := unix.Rename(h.mountpoint+m.path, h.mountpoint+np); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = unix.Rename(m.hiers[j].mountpoint+np, m.hiers[j].mountpoint+m.path)
			}
			return &Error{Op: "rename", Path: h.mountpoint + m.path + " -> " + np, Err: err}
		}
	}
	m.path = np
	return nil
}

func (m *v1) OOMKillCount() (uint64, error) {
	dir := m.dir("memory")
	if dir == "" {
		return 0, &Error{Op: "oom count", Path: m.path, Err: ErrNotSupported}
	}
	kv, err := readKV(dir, "memory.oom_control")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}
