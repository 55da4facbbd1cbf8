package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/internal/quickjson"
)

// Status is a container's life-cycle state.
type Status int

const (
	Stopped Status = iota
	Created
	Running
	Paused
	Creating
)

func (s Status) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Creating:
		return "creating"
	}
	return "stopped"
}

// The life-cycle rules, in one place.

// CanStart reports whether start is allowed.
func (s Status) CanStart() bool { return s == Created }

// CanKill reports whether kill is allowed.
func (s Status) CanKill() bool { return s == Created || s == Running || s == Paused }

// CanDelete reports whether delete (without force) is allowed.
func (s Status) CanDelete() bool { return s == Stopped || s == Created }

// CanPause reports whether pause is allowed.
func (s Status) CanPause() bool { return s == Running || s == Created }

// CanResume reports whether resume is allowed.
func (s Status) CanResume() bool { return s == Paused }

// savedState is what a container leaves under <root>/<id>/state.json.
type savedState struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pid_start"` // /proc/<pid>/stat starttime: guards against pid reuse
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	CgroupPool  bool              `json:"cgroup_pool,omitempty"`
	// CgroupUnified is the container's cgroup in a hybrid host's unified
	// hierarchy (cgroup.HybridDir), removed at delete.
	CgroupUnified string `json:"cgroup_unified,omitempty"`
	// CgroupSelective: nothing but the runtime could write the cgroup's
	// files, so delete resets only CgroupLimits (the controllers create
	// set) and the freezer; otherwise, or once cgroupChangedFile exists
	// (update, a privileged exec), it resets every limit.
	CgroupSelective bool     `json:"cgroup_selective,omitempty"`
	CgroupLimits    []string `json:"cgroup_limits,omitempty"`
	// CgroupSlot is 1 + the pool slot the cgroup was claimed from (0:
	// none known), where delete puts it back first.
	CgroupSlot  int    `json:"cgroup_slot,omitempty"`
	NetnsPooled string `json:"netns_pooled,omitempty"` // a pooled netns to destroy at delete
	// Tenant owns the container's workDir; Channel is its channel's
	// directory on the host, removed at delete (instance.go).
	Tenant  string `json:"tenant,omitempty"`
	Channel string `json:"channel,omitempty"`
	// SystemdUnit is the container's scope under the systemd driver.
	SystemdUnit string `json:"systemd_unit,omitempty"`
	// Hooks run after create (poststop at delete). Only what later
	// operations need is kept: encoding the whole config costs time on
	// the start path.
	Hooks *specs.Hooks `json:"hooks,omitempty"`
	// Process is the init's process spec: exec's defaults.
	Process *specs.Process `json:"process,omitempty"`
	// Seccomp applies to exec'd processes too.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// RootfsStore is the container's hold on the shared-layer store (its
	// tree, ref and mount), for delete; nil for a plain rootfs.
	RootfsStore *rootfsState `json:"rootfs_store,omitempty"`
}

const stateFile = "state.json"

func (st *savedState) save(dir string) error {
	b, err := quickjson.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	// Atomic replace: readers see the old or the new file, never half.
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func loadSavedState(dir string) (*savedState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	st := &savedState{}
	if err := quickjson.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state of %s is corrupt: %w", dir, err)
	}
	return st, nil
}

// State is the OCI state of a container, as runc prints it.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

// OCIState is the spec's state, as given to hooks on stdin.
func (s *State) OCIState() *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          s.ID,
		Status:      specs.ContainerState(s.Status),
		Pid:         s.Pid,
		Bundle:      s.Bundle,
		Annotations: s.Annotations,
	}
}
