package cgroup

import (
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// New returns the Manager of cgroupsPath (OCI cgroupfs form) on this host:
// v1 controllers on legacy and hybrid hosts, the unified hierarchy
// otherwise. It touches no cgroup file; Create makes the directories.
func New(cgroupsPath string) (Manager, error) {
	p, err := cleanPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	hm, err := hostCgroupMounts()
	if err != nil {
		return nil, err
	}
	switch {
	case len(hm.v1) > 0:
		return newV1(hm.v1, p), nil
	case hm.v2 != "":
		return newV2(hm.v2, p), nil
	}
	return nil, ErrNoCgroupFS
}

// NewV2 returns a cgroup v2 Manager of cgroupsPath below the cgroup2 mount
// point mountpoint, whatever the host's mode: on a hybrid host, the
// unified hierarchy.
func NewV2(mountpoint, cgroupsPath string) (Manager, error) {
	p, err := cleanPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	return newV2(strings.TrimSuffix(mountpoint, "/"), p), nil
}

// Load returns the Manager of a cgroup whose Paths were saved.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		return nil, &Error{Op: "load", Path: "(no paths)", Err: ErrInvalidPath}
	}
	hm, err := hostCgroupMounts()
	if err != nil {
		return nil, err
	}
	if dir, ok := paths[""]; ok {
		mp := hm.v2
		inner, ok := strings.CutPrefix(dir, mp)
		if mp == "" || !ok {
			return nil, &Error{Op: "load", Path: dir, Err: ErrInvalidPath}
		}
		return NewV2(mp, inner)
	}
	var inner string
	var used []v1Mount
	for _, mnt := range hm.v1 {
		dir, ok := paths[mnt.controllers[0]]
		if !ok {
			continue
		}
		in, ok := strings.CutPrefix(dir, mnt.mountpoint)
		if !ok || (inner != "" && in != inner) {
			return nil, &Error{Op: "load", Path: dir, Err: ErrInvalidPath}
		}
		inner = in
		used = append(used, mnt)
	}
	if len(used) == 0 {
		return nil, &Error{Op: "load", Path: "(no known controller)", Err: ErrInvalidPath}
	}
	p, err := cleanPath(inner)
	if err != nil {
		return nil, err
	}
	return newV1(used, p), nil
}

// cleanPath makes cgroupsPath absolute and clean; "" and "/" are refused
// (a container never owns a hierarchy's root).
func cleanPath(cgroupsPath string) (string, error) {
	if cgroupsPath == "" || strings.ContainsAny(cgroupsPath, "\n\x00") {
		return "", &Error{Op: "path", Path: cgroupsPath, Err: ErrInvalidPath}
	}
	p := path.Clean("/" + cgroupsPath)
	if p == "/" {
		return "", &Error{Op: "path", Path: cgroupsPath, Err: ErrInvalidPath}
	}
	return p, nil
}

// mkdirCgroup makes dir and its missing ancestors down from root; made is
// called for each directory this call created, parents first (cpuset
// needs its values copied from the parent).
func mkdirCgroup(root, dir string, made func(dir string) error) error {
	err := unix.Mkdir(dir, 0o755)
	switch err {
	case nil:
		if made != nil {
			return made(dir)
		}
		return nil
	case unix.EEXIST:
		return nil
	case unix.ENOENT:
		parent := path.Dir(dir)
		if len(parent) <= len(root) {
			return &Error{Op: "mkdir", Path: dir, Err: err}
		}
		if err := mkdirCgroup(root, parent, made); err != nil {
			return err
		}
		return mkdirCgroup(root, dir, made)
	}
	return &Error{Op: "mkdir", Path: dir, Err: err}
}

// destroyTimeout bounds how long Destroy waits for dying processes to leave
// a cgroup (rmdir answers EBUSY meanwhile).
const destroyTimeout = 5 * time.Second

// rmTree removes dir and every descendant, deepest first.
func rmTree(dir string, deadline time.Time) error {
	kids, err := subdirs(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	for _, k := range kids {
		if err := rmTree(k, deadline); err != nil {
			return err
		}
	}
	delay := time.Millisecond
	for {
		err := unix.Rmdir(dir)
		switch err {
		case nil, unix.ENOENT:
			return nil
		case unix.EBUSY, unix.EAGAIN, unix.EINTR:
			if time.Now().After(deadline) {
				return &Error{Op: "rmdir", Path: dir, Err: ErrTimeout}
			}
			time.Sleep(delay)
			if delay < 50*time.Millisecond {
				delay *= 2
			}
			continue
		}
		return &Error{Op: "rmdir", Path: dir, Err: err}
	}
}

func isNotExist(err error) bool {
	var e *Error
	if ok := asError(err, &e); ok {
		return e.Err == unix.ENOENT
	}
	return false
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// WaitGone polls until dir does not exist (a cgroup another removes: a
// stopped systemd scope's) or timeout passes (ErrTimeout).
func WaitGone(dir string, timeout time.Duration) error {
	return poll(timeout, func() (bool, error) {
		var st unix.Stat_t
		return unix.Stat(dir, &st) == unix.ENOENT, nil
	})
}

// poll calls done until it answers true or timeout passes.
func poll(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

func sameParent(a, b string) bool { return path.Dir(a) == path.Dir(b) }
