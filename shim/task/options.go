package task

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/fre-runtime/fre/netns"
	freruntime "github.com/fre-runtime/fre/runtime"
)

// DefaultRoot is where the runtime's state lives; each containerd
// namespace gets a directory below it, as with runc's /run/containerd/runc.
const DefaultRoot = "/run/containerd/fre"

// Annotations that change the shim's behaviour for one container.
const (
	// AnnotationStore ("true"/"false") turns the shared-store rootfs on or
	// off for the container, whatever the runtime options say.
	AnnotationStore = "run.fre.store"
	// AnnotationGroup puts containers with the same value in one shim.
	AnnotationGroup = "run.fre.group"
)

// Options are the shim's settings, from containerd's runtime `options`
// table: either runc's options type (ctr, the plain runtime config: Root is
// read) or CRI's runtimeoptions (ConfigPath names a JSON file of Options,
// ConfigBody holds one inline).
type Options struct {
	// Root is the runtime state root; the namespace is appended.
	Root string `json:"root,omitempty"`
	// NetnsPolicy: host, new or pool (netns.Policy); annotation
	// run.fre.netns overrides it per container.
	NetnsPolicy string `json:"netns_policy,omitempty"`
	// NetnsPoolSize is how many idle namespaces the pool keeps warm.
	NetnsPoolSize int `json:"netns_pool_size,omitempty"`
	// CgroupPoolDir and NetnsPoolDir are the pools' state (default: the
	// host-wide ones every fre-runc and shim shares, runtime.Options).
	CgroupPoolDir string `json:"cgroup_pool_dir,omitempty"`
	NetnsPoolDir  string `json:"netns_pool_dir,omitempty"`
	// Store turns on the shared-store rootfs for overlay mounts.
	Store bool `json:"store,omitempty"`
	// StoreRoot is the store's directory (rootfs.DefaultRoot when empty).
	StoreRoot string `json:"store_root,omitempty"`
	// SyncCreate runs the init's set-up in runc's order, before the
	// shim's own work for the container. By default the two overlap (and
	// the init mounts containerd's rootfs itself); either way Create
	// returns the set-up's error.
	SyncCreate bool `json:"sync_create,omitempty"`
	// SystemdCgroup: the systemd cgroup driver, the runc shim's option of
	// that name (cgroupsPath "slice:prefix:name", a transient scope per
	// container), so a node switches from runc to FRE by runtime_type
	// alone.
	SystemdCgroup bool `json:"SystemdCgroup,omitempty"`
	// TenantRoot and ChannelRoot: where tenants' workDirs and instances'
	// channels live (runtime's defaults when empty; annotations
	// run.fre.tenant and run.fre.channel).
	TenantRoot  string `json:"tenant_root,omitempty"`
	ChannelRoot string `json:"channel_root,omitempty"`
}

// parseOptions reads containerd's options Any.
func parseOptions(a *anypb.Any) (Options, error) {
	var o Options
	if a == nil || len(a.GetValue()) == 0 && a.GetTypeUrl() == "" {
		return o, nil
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return o, fmt.Errorf("%w: runtime options %s: %v", errdefs.ErrInvalidArgument, a.GetTypeUrl(), err)
	}
	switch v := v.(type) {
	case *runcoptions.Options:
		o.Root = v.Root
		o.SystemdCgroup = v.SystemdCgroup
	case *runtimeoptions.Options:
		body := v.ConfigBody
		if len(body) == 0 && v.ConfigPath != "" {
			if body, err = os.ReadFile(v.ConfigPath); err != nil {
				return o, fmt.Errorf("%w: runtime options: %v", errdefs.ErrInvalidArgument, err)
			}
		}
		if len(body) > 0 && !isJSON(body) {
			// CRI passes a runtime's whole options table as TOML when it
			// names no ConfigPath (keys as in the runc shim's, e.g.
			// SystemdCgroup = true).
			if body, err = tomlToJSON(body); err != nil {
				return o, fmt.Errorf("%w: runtime options: %v", errdefs.ErrInvalidArgument, err)
			}
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &o); err != nil {
				return o, fmt.Errorf("%w: runtime options %s: %v", errdefs.ErrInvalidArgument, v.ConfigPath, err)
			}
		}
	default:
		return o, fmt.Errorf("%w: runtime options of type %T", errdefs.ErrInvalidArgument, v)
	}
	if o.NetnsPolicy != "" {
		if _, err := netns.ParsePolicy(o.NetnsPolicy); err != nil {
			return o, fmt.Errorf("%w: runtime options: %v", errdefs.ErrInvalidArgument, err)
		}
	}
	return o, nil
}

// isJSON: body is a JSON object (after white space), not TOML.
func isJSON(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// tomlToJSON re-encodes a TOML options table as JSON, for Options' JSON
// keys (matched without regard to case, as encoding/json does).
func tomlToJSON(body []byte) ([]byte, error) {
	var m map[string]any
	if err := toml.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// warmUpEarly builds what a new shim's first Create of a typical spec
// needs most: the options' protobuf reflection data and encoding/json's
// codecs for the options, a typical spec and the state file (about 0.5 ms
// of a cold process). The task service does it before it serves: run
// alongside, it was still running when the first Create came, which then
// built the same codecs itself on the other core. (All of WarmUp started
// at the daemon's main delayed its registration by about 1 ms.)
var warmUpEarly = sync.OnceFunc(func() {
	warmOptions()
	freruntime.WarmUpSpec()
	Milestone("shim.warm-early")
})

// WarmUp is warmUpEarly and then the rest of what a first Create builds:
// the runtime's caches and encoding/json's codecs for every section of a
// spec. The task service starts it.
var WarmUp = sync.OnceFunc(func() {
	warmUpEarly()
	freruntime.WarmUp()
	Milestone("shim.warm")
})

// warmOptions decodes both options types once, off the start path: the
// first decode of a protobuf message type builds its reflection data
// (about 0.1 ms, in every new shim's first Create otherwise).
func warmOptions() {
	json.Marshal(Options{})
	for _, m := range []proto.Message{&runcoptions.Options{Root: "/"}, &runtimeoptions.Options{ConfigBody: []byte("{}")}} {
		if a, err := typeurl.MarshalAnyToProto(m); err == nil {
			parseOptions(a)
		}
	}
}

// withAnnotations applies the per-container annotations.
func (o Options) withAnnotations(ann map[string]string) (Options, error) {
	if v, ok := ann[AnnotationStore]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%w: annotation %s: %v", errdefs.ErrInvalidArgument, AnnotationStore, err)
		}
		o.Store = b
	}
	return o, nil
}

// RuntimeRoot is the state root for a namespace.
func (o Options) RuntimeRoot(ns string) string {
	root := o.Root
	if root == "" {
		root = DefaultRoot
	}
	return filepath.Join(root, ns)
}

const optionsFile = "fre-options.json"

// writeBundleOptions keeps the options beside the bundle for the shim's
// delete command, which runs after the shim is gone.
func writeBundleOptions(bundle string, o Options) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, optionsFile), b, 0o600)
}

// ReadBundleOptions reads what writeBundleOptions wrote (zero Options when
// there is none).
func ReadBundleOptions(bundle string) (Options, error) {
	var o Options
	b, err := os.ReadFile(filepath.Join(bundle, optionsFile))
	if os.IsNotExist(err) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	return o, json.Unmarshal(b, &o)
}
