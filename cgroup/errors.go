package cgroup

import (
	"errors"
	"strings"
)

var (
	// ErrNotSupported: the host's cgroups cannot do what was asked (a
	// controller is not mounted, a file does not exist, v2 has no such
	// knob, cgroup v2 cannot rename).
	ErrNotSupported = errors.New("cgroup: not supported")
	// ErrInvalidPath: a cgroups path that is empty or leaves its hierarchy.
	ErrInvalidPath = errors.New("cgroup: invalid cgroups path")
	// ErrInvalidResources: linux.resources values that cannot be applied as
	// given (swap below memory, swap without a memory limit on v2...).
	ErrInvalidResources = errors.New("cgroup: invalid resources")
	// ErrTimeout: a freeze, an emptying or a removal did not finish before
	// its deadline.
	ErrTimeout = errors.New("cgroup: timed out")
	// ErrFrozen: a container's cgroup that exists already is frozen (its
	// init would stop for good as it joined); runc's words.
	ErrFrozen = errors.New("container's cgroup unexpectedly frozen")
	// ErrNotEmpty: a container's cgroup that exists already has processes
	// (runc 1.2's refusal; 1.1 warned).
	ErrNotEmpty = errors.New("container's cgroup is not empty")
	// ErrV1NoUnified: linux.resources.unified on a v1 host (runc's words).
	ErrV1NoUnified = errors.New("invalid configuration: cannot use unified on cgroup v1")
	// ErrNoCgroupFS: no cgroup hierarchy is mounted.
	ErrNoCgroupFS = errors.New("cgroup: no cgroup filesystem mounted")
)

// Error is a failed operation on a cgroup file or directory.
type Error struct {
	Op    string // "mkdir", "write", "read", "rmdir", "rename", "freeze"...
	Path  string
	Value string // what was written, if anything
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cgroup: ")
	b.WriteString(e.Op)
	if e.Value != "" {
		b.WriteString(" \"")
		b.WriteString(strings.TrimSpace(e.Value))
		b.WriteString("\" to")
	}
	b.WriteString(" ")
	b.WriteString(e.Path)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
