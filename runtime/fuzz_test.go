package runtime

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/contract"
	"github.com/fre-runtime/fre/internal/quickjson"
)

// FuzzConvert: any config.json is refused with ErrInvalidConfig or
// converted, never a panic, and converting the same spec twice gives the
// same Config. This is the whole spec → Config path fre-runc and the shim
// run at create (LoadSpec's decoder and Convert's checks), not only the
// JSON decoder's own fuzz target.
func FuzzConvert(f *testing.F) {
	def, err := json.Marshal(DefaultSpec())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	rich := DefaultSpec()
	rich.Annotations = map[string]string{"run.fre.netns": "pool", "run.fre.rootfs": "shared", "run.fre.tenant": "acme", "run.fre.tenant.size": "1Mi"}
	rich.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20))}, Pids: &specs.LinuxPids{Limit: ptr(int64(3))},
		Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}}}
	rich.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	rich.Linux.GIDMappings = rich.Linux.UIDMappings
	rich.Linux.Namespaces = append(rich.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	rich.Mounts = append(rich.Mounts, specs.Mount{Destination: "/data", Source: "/tmp", Type: "bind", Options: []string{"rbind", "ro", "rprivate"}})
	rich.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}}
	rich.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}}
	if b, err := json.Marshal(rich); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"},"linux":{}}`))
	f.Add([]byte(`{"ociVersion":"2.0.0"}`))
	f.Add([]byte(`{"ociVersion":"1.0.0","root":{"path":"../../etc"},"process":{"cwd":"rel"},"linux":{"namespaces":[{"type":"bogus"}]}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))

	bundle := f.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		f.Fatal(err)
	}
	for _, sp := range []*specs.Spec{DefaultSpec(), rich} {
		if _, err := Convert(sp, bundle); err != nil {
			f.Fatalf("a seed the fuzzer grows from is refused: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec specs.Spec
		if err := quickjson.DecodeFirst(data, &spec); err != nil {
			return // LoadSpec refuses it: "config.json ... is malformed"
		}
		c, err := Convert(&spec, bundle)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Convert: %v is not ErrInvalidConfig", err)
			}
			return
		}
		var again specs.Spec
		if err := quickjson.DecodeFirst(data, &again); err != nil {
			t.Fatal(err)
		}
		c2, err := Convert(&again, bundle)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("converting the same spec again: %v", err)
		}
		if !filepath.IsAbs(c.Rootfs) {
			t.Fatalf("rootfs %q is not absolute", c.Rootfs)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// FuzzInstanceAnnotations: the values of run.fre.tenant (a plain name)
// and run.fre.tenant.size are read or refused, never a panic; a name
// that passes cannot leave the tenant root, a size that passes is >= 0.
func FuzzInstanceAnnotations(f *testing.F) {
	for _, s := range []string{"acme", "../etc", "a/b", "..", ".hidden", "Acme", "1Mi", "100k", "-1", "9223372036854775807Gi", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if contract.ValidName(v) == nil {
			if strings.ContainsAny(v, "/\x00") || v == "." || v == ".." || filepath.Clean(v) != v {
				t.Fatalf("tenant name %q accepted", v)
			}
			if got := filepath.Join("/tenants", v); filepath.Dir(got) != "/tenants" {
				t.Fatalf("tenant %q resolves to %s", v, got)
			}
		}
		if n, err := ParseSize(v); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", v, n)
		}
	})
}
