package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/runtime/spawn"
)

// Config is a container's configuration, converted once from the OCI spec
// and validated. Everything after Convert reads this, never the spec.
type Config struct {
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"` // absolute
	ReadonlyRoot bool              `json:"readonly_root,omitempty"`
	Hostname     *string           `json:"hostname,omitempty"`
	Domainname   *string           `json:"domainname,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`

	// Namespaces: New lists the ones to create; Join the ones given by path.
	NewNamespaces []specs.LinuxNamespaceType          `json:"new_namespaces,omitempty"`
	Join          map[specs.LinuxNamespaceType]string `json:"join,omitempty"`
	// NetRequested: the spec asked for a network namespace without a
	// path; the netns policy decides what that means.
	NetRequested bool                   `json:"net_requested,omitempty"`
	UIDMappings  []specs.LinuxIDMapping `json:"uid_mappings,omitempty"`
	GIDMappings  []specs.LinuxIDMapping `json:"gid_mappings,omitempty"`

	Mounts          []Mount             `json:"mounts,omitempty"`
	Devices         []specs.LinuxDevice `json:"devices,omitempty"`
	SetupDev        bool                `json:"setup_dev,omitempty"` // /dev is ours to populate
	MaskedPaths     []string            `json:"masked_paths,omitempty"`
	ReadonlyPaths   []string            `json:"readonly_paths,omitempty"`
	RootPropagation uintptr             `json:"root_propagation,omitempty"`
	Sysctl          map[string]string   `json:"sysctl,omitempty"`
	Personality     int                 `json:"personality"` // -1: leave
	TimeOffsets     string              `json:"time_offsets,omitempty"`

	CgroupsPath string                `json:"cgroups_path,omitempty"`
	Resources   *specs.LinuxResources `json:"resources,omitempty"`

	Process *ProcessConfig      `json:"process"`
	Hooks   *specs.Hooks        `json:"hooks,omitempty"`
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

// Mount is a spec mount with its options parsed.
type Mount struct {
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	Type        string    `json:"type"`
	Flags       uintptr   `json:"flags"`
	Propagation []uintptr `json:"propagation,omitempty"`
	Data        string    `json:"data,omitempty"`
	Bind        bool      `json:"bind,omitempty"`
	// SourceIsFile: a bind of a file (its target is made as a file).
	SourceIsFile bool `json:"source_is_file,omitempty"`
	// RecAttrSet and RecAttrClr are the recursive options' (rro, rnosuid,
	// ...) MOUNT_ATTR_* flags, applied with mount_setattr(AT_RECURSIVE)
	// once the mount is made.
	RecAttrSet uint64 `json:"rec_attr_set,omitempty"`
	RecAttrClr uint64 `json:"rec_attr_clr,omitempty"`
}

// ProcessConfig is the container's program and its credentials.
type ProcessConfig struct {
	Terminal        bool         `json:"terminal,omitempty"`
	ConsoleRows     uint16       `json:"console_rows,omitempty"`
	ConsoleCols     uint16       `json:"console_cols,omitempty"`
	Args            []string     `json:"args"`
	Env             []string     `json:"env,omitempty"`
	Cwd             string       `json:"cwd"`
	UID             uint32       `json:"uid"`
	GID             uint32       `json:"gid"`
	AdditionalGids  []uint32     `json:"additional_gids,omitempty"`
	Umask           *uint32      `json:"umask,omitempty"`
	Rlimits         []Rlimit     `json:"rlimits,omitempty"`
	NoNewPrivs      bool         `json:"no_new_privs,omitempty"`
	Caps            *CapSets     `json:"caps,omitempty"`
	OOMScoreAdj     *int         `json:"oom_score_adj,omitempty"`
	ApparmorProfile string       `json:"apparmor_profile,omitempty"`
	SelinuxLabel    string       `json:"selinux_label,omitempty"`
	Sched           *spawn.Sched `json:"sched,omitempty"`
	IOPrio          int          `json:"ioprio"` // -1: leave
}

// Rlimit is a resource limit by number.
type Rlimit struct {
	Type int    `json:"type"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// CapSets are capability bit masks.
type CapSets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

func (c *Config) hasNew(t specs.LinuxNamespaceType) bool {
	for _, n := range c.NewNamespaces {
		if n == t {
			return true
		}
	}
	return false
}

// hasNS reports whether the container has its own namespace of type t
// (new or joined).
func (c *Config) hasNS(t specs.LinuxNamespaceType) bool {
	_, joined := c.Join[t]
	return joined || c.hasNew(t)
}
