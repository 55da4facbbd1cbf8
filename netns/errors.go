package netns

import (
	"errors"
	"fmt"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnknownPolicy is returned for a network namespace policy other
	// than host, new or pool.
	ErrUnknownPolicy = errors.New("netns: unknown policy")
	// ErrInvalidName is returned by New for a name that is not a single
	// path element.
	ErrInvalidName = errors.New("netns: invalid name")
	// ErrNotNetns is returned by Remove for a path that is neither a
	// pinned network namespace nor a plain file left by an unpin.
	ErrNotNetns = errors.New("netns: not a network namespace pin")
	// ErrPoolClosed is returned by Take, Fill and Run after Close.
	ErrPoolClosed = errors.New("netns: pool closed")
	// ErrNotSupported is returned on platforms without network namespaces.
	ErrNotSupported = errors.New("netns: not supported on this platform")
)

// Error records the operation and path that failed.
type Error struct {
	Op   string // e.g. "unshare", "pin", "claim"
	Path string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("netns: %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
