package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/fnimage"
	"github.com/fre-runtime/fre/rootfs"
)

// memoryTemplates is the memory scenario (figures 9-10) on FRE function
// images: the same five apps, each built from a template by fnimage into
// the scenario's store (fre build), five containers of each run by
// fre-runc on the image's tree (read-only, an overlay upper for writes),
// against the same programs run directly on the host. Target: the
// containers' total memory <= 1.02x the host's.
func memoryTemplates(e *env) error {
	fb := e.bench("fre-runc")
	if fb == nil {
		return errors.New("memory-templates: needs fre-runc")
	}
	dir, done, err := memWorkDir(e, "frebench-memtpl-")
	if err != nil {
		return err
	}
	defer done()
	per := e.opts.memPer
	langs := languages()
	store := filepath.Join(dir, "store")
	s, err := rootfs.Open(rootfs.Options{Root: store})
	if err != nil {
		return err
	}
	fmt.Printf("\nmemory-templates: %d function images x %d containers; host vs fre-runc\n", len(langs), per)
	port := freePortBase(len(langs) * per)
	trees := map[string]string{}
	for _, l := range langs {
		// The host runs the app files from here, with its own programs.
		root := filepath.Join(dir, "images", l.name)
		for p, content := range l.app {
			dst := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, []byte(content), 0o644); err != nil {
				return err
			}
		}
		if l.build != nil {
			if err := l.build(root); err != nil {
				return err
			}
		}
		t, err := freTemplate(l, filepath.Join(dir, "fre", l.name))
		if err != nil {
			return fmt.Errorf("memory-templates: %s: %w", l.name, err)
		}
		res, err := fnimage.Build(context.Background(), t, fnimage.Options{Store: s, Cache: filepath.Join(dir, "fre", l.name, "cache")})
		if err != nil {
			return fmt.Errorf("memory-templates: build %s: %w", l.name, err)
		}
		trees[l.name] = res.Tree.Path()
		n, _ := dirSize(res.Tree.Path())
		fmt.Printf("  image %-8s %7.1f MiB in the store (%d layers, %.2f MiB compressed), built in %.0f ms\n",
			l.name, mib(n), len(res.Layers), mib(res.Size), msOf(res.Took))
		for i := 0; i < per; i++ {
			b := filepath.Join(dir, "bundles", fmt.Sprintf("%s-%d", l.name, i))
			spec, err := fnimage.BundleSpec(t, res.Tree.Path())
			if err != nil {
				return err
			}
			// The scenario's apps are not tenants': no workDir. The host's
			// network (each app has its own port), as in the scenario.
			delete(spec.Annotations, "run.fre.tenant")
			delete(spec.Annotations, "run.fre.workdir")
			var ns []specs.LinuxNamespace
			for _, n := range spec.Linux.Namespaces {
				if n.Type != specs.NetworkNamespace {
					ns = append(ns, n)
				}
			}
			spec.Linux.Namespaces = ns
			if err := os.MkdirAll(b, 0o755); err != nil {
				return err
			}
			if err := writeSpecCopy(b, spec); err != nil {
				return err
			}
		}
	}
	unix.Sync()
	var rows []memRow
	host, err := memHost(langs, dir, per, port)
	if err != nil {
		return fmt.Errorf("memory-templates: host: %w", err)
	}
	rows = append(rows, host...)
	l, err := memStoreLocal(fb.r.(*local), dir, store)
	if err != nil {
		return err
	}
	fre, err := memContainers(e, "fre-runc", l, langs, dir, per, port, func(bundle string, lg *lang, port int) error {
		spec, err := readSpec(bundle)
		if err != nil {
			return err
		}
		spec.Process.Args = freArgs(lg, port)
		return writeSpecCopy(bundle, spec)
	})
	if err != nil {
		return fmt.Errorf("memory-templates: fre-runc: %w", err)
	}
	rows = append(rows, fre...)
	totals := map[string]int64{}
	for _, r := range rows {
		if r.lang == "all" {
			totals[r.config] = r.total()
		}
	}
	ratio := float64(totals["fre-runc"]) / float64(totals["host"])
	verdict := "PASS"
	if ratio > 1.02 {
		verdict = "MISS"
	}
	fmt.Printf("  memory totals: host %.1f MiB, fre-runc on the function images %.1f MiB: %.3fx (target <= 1.02x) %s\n",
		mib(totals["host"]), mib(totals["fre-runc"]), ratio, verdict)
	return writeMemRows(e.opts.results, "memory-templates.csv", rows)
}
