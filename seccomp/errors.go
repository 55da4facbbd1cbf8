package seccomp

import "errors"

// Sentinel errors; errors from Compile wrap one of them.
var (
	// ErrInvalidProfile: the profile breaks the OCI spec (unknown action,
	// architecture, operator or flag, argument index over 5…).
	ErrInvalidProfile = errors.New("seccomp: invalid profile")
	// ErrNotSupported: valid OCI, but FRE cannot do it (SCMP_ACT_NOTIFY,
	// an unsupported native architecture).
	ErrNotSupported = errors.New("seccomp: not supported")
	// ErrTooLarge: the program exceeds the kernel's BPF_MAXINSNS.
	ErrTooLarge = errors.New("seccomp: program too large")
)

// FieldError names the profile field that Compile rejected, as a JSON path
// into config.json (e.g. linux.seccomp.syscalls[3].args[0].op).
type FieldError struct {
	Field string
	Msg   string
	Err   error // ErrInvalidProfile or ErrNotSupported
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func (e *FieldError) Unwrap() error { return e.Err }
