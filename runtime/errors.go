package runtime

import "errors"

// Sentinel errors; wrap them with the container ID or path they concern.
var (
	ErrNotExist      = errors.New("container does not exist")
	ErrExist         = errors.New("container with given ID already exists")
	ErrInvalidID     = errors.New("invalid container ID format")
	ErrInvalidConfig = errors.New("invalid configuration")
	ErrNotRunning    = errors.New("container is not running")
	ErrNotStopped    = errors.New("container is not stopped")
	ErrNotCreated    = errors.New("container is not in created state")
	ErrNotPaused     = errors.New("container is not paused")
	ErrNotSupported  = errors.New("not supported")
)
