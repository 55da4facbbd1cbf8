package systemd

import (
	"errors"
	"fmt"
)

// ErrUnitExists is StartScope's error when a unit of that name is already
// loaded and active: two containers asked for the same cgroup.
var ErrUnitExists = errors.New("systemd: unit already exists")

// ErrInvalidPath wraps ParseCgroupsPath's and ExpandSlice's errors: the
// cgroupsPath or slice cannot name a systemd unit.
var ErrInvalidPath = errors.New("invalid systemd cgroup path")

// ErrInvalidResources wraps Properties' errors: a resource that cannot be
// turned into its unit property.
var ErrInvalidResources = errors.New("invalid resources for systemd")

// JobError is a systemd job that ended with a result other than "done"
// ("failed", "canceled", "timeout", "dependency", "skipped"...).
type JobError struct {
	Op     string // "start" or "stop"
	Unit   string
	Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("systemd: %s %s: job result %q", e.Op, e.Unit, e.Result)
}
