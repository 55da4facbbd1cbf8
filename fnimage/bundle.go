package fnimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/fret"
	"github.com/fre-runtime/fre/internal/defaultspec"
	"github.com/fre-runtime/fre/rootfs"
)

// cpuPeriod is the CFS period a template's CPU limit is a quota of.
const cpuPeriod = 100000

// writeBundle writes dir/config.json: runc's default spec running the
// template's entrypoint on the store's tree (read-only, through the store:
// annotation run.fre.rootfs=shared, so its read-only overlay), with the
// template's env and limits, and no terminal.
func writeBundle(dir string, t *fret.Template, tree *rootfs.Tree) error {
	s, err := BundleSpec(t, tree.Path())
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return fmt.Errorf("bundle %s: has a config.json already", dir)
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// BundleSpec is the spec of a template's bundle whose root is root.
func BundleSpec(t *fret.Template, root string) (*specs.Spec, error) {
	s := defaultspec.Runc()
	s.Root = &specs.Root{Path: root, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = t.Entrypoint
	s.Process.Cwd = "/" + CodeDir
	s.Process.Env = imageEnv(t)
	s.Hostname = t.ID
	// The tenant's workDir (runtime/instance.go): <tenant root>/<tenant>
	// at the template's workDir.
	s.Annotations = map[string]string{"run.fre.rootfs": "shared", LabelID: t.ID, LabelVersion: t.Version, LabelTenant: t.Tenant,
		"run.fre.tenant": t.Tenant, "run.fre.workdir": "/" + workDir(t)}
	r := s.Linux.Resources
	if r == nil {
		r = &specs.LinuxResources{}
		s.Linux.Resources = r
	}
	if m := t.Resources.Memory; m != "" {
		v, err := fret.ParseBytes(m)
		if err != nil {
			return nil, fmt.Errorf("resources.memory: %w", err)
		}
		r.Memory = &specs.LinuxMemory{Limit: &v}
	}
	if c := t.Resources.CPU; c != "" {
		milli, err := fret.ParseCPU(c)
		if err != nil {
			return nil, fmt.Errorf("resources.cpu: %w", err)
		}
		quota, period := milli*cpuPeriod/1000, uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if p := t.Resources.Pids; p != 0 {
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	return s, nil
}
