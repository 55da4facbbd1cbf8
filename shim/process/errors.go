package process

import (
	"errors"

	"github.com/containerd/errdefs"
)

// Sentinel errors. They wrap containerd's errdefs so that the ttrpc edge
// maps them to the gRPC code containerd expects.
var (
	// ErrBadState: the operation is not allowed in the process's state.
	ErrBadState = errors.Join(errors.New("process: operation not allowed in this state"), errdefs.ErrFailedPrecondition)
	// ErrExited: the process has already exited (containerd treats
	// NotFound on kill as "already finished").
	ErrExited = errors.Join(errors.New("process already finished"), errdefs.ErrNotFound)
	// ErrStdio: a stdio URI the shim cannot serve.
	ErrStdio = errors.Join(errors.New("process: unsupported stdio"), errdefs.ErrInvalidArgument)
	// ErrNoConsole: ResizePty on a process without a terminal.
	ErrNoConsole = errors.Join(errors.New("process has no terminal"), errdefs.ErrFailedPrecondition)
)
