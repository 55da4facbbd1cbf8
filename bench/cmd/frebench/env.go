package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bench is one runtime ready to be measured.
type bench struct {
	name string
	r    runner
	note string // caveat printed beside its figures
}

// env is what every scenario shares: a busybox rootfs, the sequential
// bundle, and the runtimes that passed a smoke run.
type env struct {
	opts    options
	dir     string
	rootfs  string
	bundle  string
	benches []*bench
	skipped []string // "name: reason"
	seq     atomic.Int64
}

func newEnv(o options) (*env, error) {
	// State roots and bundles live on a tmpfs (as /run does on most
	// hosts; here /run is on the disk), the same for every runtime.
	dir, err := os.MkdirTemp(o.workDir, "frebench-")
	if err != nil {
		return nil, err
	}
	e := &env{opts: o, dir: dir}
	e.rootfs = filepath.Join(dir, "rootfs")
	if err := testutil.WriteBusyboxRootfs(e.rootfs); err != nil {
		e.close()
		return nil, err
	}
	e.bundle = filepath.Join(dir, "bundle")
	spec, source, err := runcDefaultSpec(e.bundle)
	if err != nil {
		e.close()
		return nil, err
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/bin/true"}
	spec.Root.Path = e.rootfs
	if err := testutil.WriteSpec(e.bundle, spec); err != nil {
		e.close()
		return nil, err
	}
	fmt.Printf("bundle: busybox /bin/true, spec from %s (terminal false), %s\n", source, e.bundle)

	for _, name := range o.runtimes {
		b, err := e.newBench(name)
		if err != nil {
			e.skipped = append(e.skipped, fmt.Sprintf("%s: %v", name, err))
			fmt.Printf("SKIP %s: %v\n", name, err)
			continue
		}
		// A smoke run: a runtime that cannot run the bundle is reported
		// and left out rather than failing the whole bench.
		if _, err := b.r.run(e.bundle, e.id(name)); err != nil {
			b.r.close()
			e.skipped = append(e.skipped, fmt.Sprintf("%s: %v", name, firstLine(err.Error())))
			fmt.Printf("SKIP %s: smoke run failed: %v\n", name, err)
			continue
		}
		e.benches = append(e.benches, b)
	}
	if len(e.benches) == 0 {
		e.close()
		return nil, fmt.Errorf("no runtime could run the bundle")
	}
	return e, nil
}

// runcDefaultSpec writes `runc spec` into bundle and reads it back, so the
// bundle carries exactly runc's default (device rule, masked paths...). It
// falls back to testutil's copy of runc 1.1's default without runc.
func runcDefaultSpec(bundle string) (*specs.Spec, string, error) {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return nil, "", err
	}
	if runc, err := exec.LookPath("runc"); err == nil {
		if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("runc spec: %v: %s", err, out)
		}
		s, err := testutil.ReadSpec(bundle)
		return s, "`runc spec`", err
	}
	return testutil.DefaultSpec(), "testutil.DefaultSpec (runc not found)", nil
}

func (e *env) newBench(name string) (*bench, error) {
	root := filepath.Join(e.dir, "state", name)
	switch name {
	case "fre-runc", "fre-runc-shared", "fre-runc-nopool", "fre-runc-named", "fre-runc-alongside":
		path := filepath.Join(e.opts.binDir, "fre-runc")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s missing (make build failed?)", path)
		}
		// FRE's defaults (netns policy host, cgroup pool, the bundle's
		// rootfs as it is); fre-runc-shared runs it on the shared-layer
		// store (opt-in for a plain-directory bundle), the store on the
		// same tmpfs as every runtime's bundle and state.
		cfg := map[string]any{}
		note := "defaults: netns host, cgroup pool, bundle's rootfs"
		switch {
		case e.opts.systemd:
			note = "defaults: netns host, bundle's rootfs (no cgroup pool under systemd)"
		case cgroup.Mode() == cgroup.Unified:
			note = "defaults: netns host, bundle's rootfs (cgroup pool off on v2)"
		}
		switch name {
		case "fre-runc-shared":
			cfg = map[string]any{"rootfs": "shared", "storeRoot": filepath.Join(e.dir, "store")}
			note = "defaults but rootfs shared (the store)"
		case "fre-runc-nopool":
			// The pool's A/B beside fre-runc in the same interleaved run
			// (on cgroup v2: the named pool of cgroups FRE names itself).
			cfg["cgroupPool"] = false
			note = "defaults but cgroup pool off"
		case "fre-runc-named":
			// cgroup v2's A/B: the pool of cgroups FRE names itself, off
			// by default there.
			if cgroup.Mode() != cgroup.Unified {
				return nil, fmt.Errorf("only on cgroup v2 (the named pool; v1's pool is on by default)")
			}
			cfg["cgroupPool"] = true
			note = "defaults but the named cgroup pool on"
		case "fre-runc-alongside":
			// The systemd driver's A/B: the scope started alongside the
			// init's set-up rather than before it.
			if !e.opts.systemd {
				return nil, fmt.Errorf("only with -systemd-cgroup (the scope's start alongside the set-up)")
			}
			cfg["systemdScopeAlongside"] = true
			note = "defaults but the scope started alongside the set-up"
		}
		cfgFile := filepath.Join(e.dir, name+".json")
		data, _ := json.Marshal(cfg)
		if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
			return nil, err
		}
		global := []string{"--root", root, "--config", cfgFile}
		if e.opts.systemd {
			if name == "fre-runc-nopool" {
				return nil, fmt.Errorf("the systemd driver never takes from the cgroup pool (systemd owns the tree): no A/B")
			}
			global = append(global, "--systemd-cgroup")
			note += ", --systemd-cgroup"
		}
		return &bench{name: name, r: &local{path: path, global: global}, note: note}, nil
	case "runc":
		path, err := exec.LookPath("runc")
		if err != nil {
			return nil, err
		}
		if e.opts.systemd {
			return &bench{name: name, r: &local{path: path, global: []string{"--systemd-cgroup", "--root", root}},
				note: "--systemd-cgroup"}, nil
		}
		return &bench{name: name, r: &local{path: path, global: []string{"--root", root}}}, nil
	case "crun":
		path, err := exec.LookPath("crun")
		if err != nil {
			return nil, err
		}
		if e.opts.systemd {
			return &bench{name: name, r: &local{path: path, global: []string{"--cgroup-manager=systemd", "--root", root}},
				note: "--cgroup-manager=systemd"}, nil
		}
		if cgroup.Mode() == cgroup.Unified {
			// A cgroup v2 host (the v2 guest of make bench-v2): crun runs
			// as it would there, its own cgroupfs manager doing the
			// cgroup work the other runtimes do.
			return &bench{name: name, r: &local{path: path, global: []string{"--cgroup-manager=cgroupfs", "--root", root}},
				note: "cgroup v2 host, --cgroup-manager=cgroupfs"}, nil
		}
		w, err := newCgroup2Worker(path, []string{"--cgroup-manager=disabled", "--root", root})
		if err != nil {
			return nil, err
		}
		return &bench{name: name, r: w,
			note: "cgroup2 mount ns, --cgroup-manager=disabled: no cgroup work"}, nil
	}
	return nil, fmt.Errorf("unknown runtime")
}

// id returns a container ID unique to this process and call.
func (e *env) id(runtime string) string {
	return fmt.Sprintf("frebench-%d-%s-%d", os.Getpid(), runtime, e.seq.Add(1))
}

func (e *env) bench(name string) *bench {
	for _, b := range e.benches {
		if b.name == name {
			return b
		}
	}
	return nil
}

func (e *env) close() {
	for _, b := range e.benches {
		// fre-runc keeps idle cgroups in its pool by design; a bench
		// leaves none behind.
		if l, ok := b.r.(*local); ok && strings.HasPrefix(b.name, "fre-runc") {
			l.command("pool", "drain").Run()
		}
		b.r.close()
	}
	e.benches = nil
	if e.dir != "" && !e.opts.keep {
		// A runtime that leaks a mount into the host under our bundles must
		// not make RemoveAll walk into it (a leaked /proc or bind mount).
		if m := mountsUnder(e.dir); len(m) > 0 {
			fmt.Fprintf(os.Stderr, "frebench: not removing %s: mounts left under it: %v\n", e.dir, m)
			return
		}
		os.RemoveAll(e.dir)
	}
}

func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			found = append(found, f[4])
		}
	}
	return found
}

// writeSpecCopy writes spec as bundle/config.json (the rootfs stays shared:
// root.path is absolute).
func writeSpecCopy(bundle string, spec *specs.Spec) error {
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return err
	}
	return testutil.WriteSpec(bundle, spec)
}

// cloneSpec deep-copies a spec through JSON.
func cloneSpec(s *specs.Spec) *specs.Spec {
	data, _ := json.Marshal(s)
	var c specs.Spec
	json.Unmarshal(data, &c)
	return &c
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func readSpec(bundle string) (*specs.Spec, error) { return testutil.ReadSpec(bundle) }

// noResourcesBundle is the bench bundle without linux.resources.
func (e *env) noResourcesBundle() (string, error) {
	dir := filepath.Join(e.dir, "bundle-nocgroup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	spec, err := testutil.ReadSpec(e.bundle)
	if err != nil {
		return "", err
	}
	spec.Linux.Resources = nil
	return dir, testutil.WriteSpec(dir, spec)
}
