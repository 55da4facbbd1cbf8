package devfilter

import (
	"errors"
	"strings"
)

var (
	// ErrInvalidRule: a device rule breaks the OCI spec (unknown type,
	// access letters other than r, w and m, a number above 32 bits).
	ErrInvalidRule = errors.New("devfilter: invalid device rule")
	// ErrTooLarge: more rules than one program's jumps can reach.
	ErrTooLarge = errors.New("devfilter: too many device rules")
)

// FieldError names the rule field that Compile rejected, as a JSON path
// into config.json (linux.resources.devices[2].access).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func (e *FieldError) Unwrap() error { return ErrInvalidRule }

// LoadError is a BPF_PROG_LOAD the kernel refused, with the verifier's log
// when it wrote one.
type LoadError struct {
	Err error // the errno
	Log string
}

func (e *LoadError) Error() string {
	s := "devfilter: BPF_PROG_LOAD: " + e.Err.Error()
	if l := strings.TrimSpace(e.Log); l != "" {
		s += "\nverifier log:\n" + l
	}
	return s
}

func (e *LoadError) Unwrap() error { return e.Err }

// PathError is a failed bpf(2) or open on a cgroup directory.
type PathError struct {
	Op   string // "open", "query", "attach", "replace", "detach"
	Path string
	Err  error // the errno
}

func (e *PathError) Error() string { return "devfilter: " + e.Op + " " + e.Path + ": " + e.Err.Error() }

func (e *PathError) Unwrap() error { return e.Err }
