package rootfs

import (
	"errors"
	"fmt"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnsafePath: an absolute path, a ".." component, an entry below a
	// symlink or non-directory, or a symlink climbing out of the tree.
	ErrUnsafePath = errors.New("rootfs: unsafe path")
	// ErrBadLink: a hard link whose target is not a regular file already in
	// the tree.
	ErrBadLink = errors.New("rootfs: bad hard link")
	// ErrDevice: a device node (images may not carry devices).
	ErrDevice = errors.New("rootfs: device node not allowed")
	// ErrSetuid: a setuid/setgid file that breaks the policy in the
	// package documentation.
	ErrSetuid = errors.New("rootfs: setuid/setgid file not allowed")
	// ErrTooLarge: the input is larger than Options.MaxSize or has more
	// than Options.MaxEntries entries.
	ErrTooLarge = errors.New("rootfs: input too large")
	// ErrBadLayer: a layer that is truncated, corrupt, of an unknown
	// compression, or whose entry sizes do not match.
	ErrBadLayer = errors.New("rootfs: bad layer")
	// ErrUnsupported: an entry type the store cannot represent.
	ErrUnsupported = errors.New("rootfs: unsupported entry type")
	// ErrSourceChanged: a source file changed while it was imported.
	ErrSourceChanged = errors.New("rootfs: source changed during import")
	// ErrNotFound: no tree with that ID.
	ErrNotFound = errors.New("rootfs: tree not found")
	// ErrInvalidID: a tree or container ID that cannot name a file.
	ErrInvalidID = errors.New("rootfs: invalid ID")
)

// ImportError says which input and which entry of it an import refused.
type ImportError struct {
	Op     string // "import dir", "import layer", "import lowerdir"
	Source string // the directory or layer file
	Entry  string // path inside the source, "" for the source as a whole
	Err    error
}

func (e *ImportError) Error() string {
	if e.Entry == "" {
		return fmt.Sprintf("%s %s: %v", e.Op, e.Source, e.Err)
	}
	return fmt.Sprintf("%s %s: entry %q: %v", e.Op, e.Source, e.Entry, e.Err)
}

func (e *ImportError) Unwrap() error { return e.Err }

// reason wraps a sentinel with detail: errors.Is still finds the sentinel.
func reason(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}
