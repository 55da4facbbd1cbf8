package cgpool

import "errors"

var (
	// ErrDisabled: the pool is off (by configuration or because the host's
	// cgroups cannot rename).
	ErrDisabled = errors.New("cgpool: pool disabled")
	// ErrBadParent: a parent that is not an absolute cgroup path.
	ErrBadParent = errors.New("cgpool: invalid parent cgroup")
)
