package task

import (
	"errors"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/fre-runtime/fre/netns"
)

// FuzzOptions: the shim's options as CRI passes them (a JSON or TOML
// body in runtimeoptions) and its per-container annotations are read or
// refused with ErrInvalidArgument, never a panic; a policy that is read
// is one FRE knows.
func FuzzOptions(f *testing.F) {
	f.Add([]byte(`{"root": "/run/fre", "netns_policy": "pool", "netns_pool_size": 4, "store": true}`), "true", "host")
	f.Add([]byte("SystemdCgroup = true\nBinaryName = \"/usr/bin/runc\"\n[sub]\nx = 1\n"), "false", "new")
	f.Add([]byte(`{"netns_policy": "bogus"}`), "yes", "/proc/1/ns/net")
	f.Add([]byte(`{"tenant_root": 7}`), "", "")
	f.Add([]byte(`= = =`), "1", "pool")
	f.Fuzz(func(t *testing.T, body []byte, store, policy string) {
		a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: body})
		if err != nil {
			t.Fatal(err)
		}
		o, err := parseOptions(a)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("parseOptions: %v is not ErrInvalidArgument", err)
			}
			return
		}
		if o.NetnsPolicy != "" {
			if _, err := netns.ParsePolicy(o.NetnsPolicy); err != nil {
				t.Fatalf("accepted policy %q: %v", o.NetnsPolicy, err)
			}
		}
		if _, err := o.withAnnotations(map[string]string{AnnotationStore: store}); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("withAnnotations: %v", err)
		}
		netns.PolicyFromAnnotations(map[string]string{netns.Annotation: policy}, netns.DefaultPolicy)
	})
}
