package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fre-runtime/fre/bench/chart"
	"github.com/fre-runtime/fre/fnimage"
	"github.com/fre-runtime/fre/fret"
)

// images is the research's figure 11: each app of the memory scenario as
// the Docker-Hub-style image that scenario builds (compressed as a
// registry holds it: one gzip'd tar) and as a FRE function image built by
// fre build from a template (the sum of its layers). Also the build time,
// cold and after a change of the code alone (the layer cache). Target: FRE
// images <= 0.4x in total.
func images(e *env) error {
	dir := filepath.Join(e.opts.memDir, fmt.Sprintf("frebench-images-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !e.opts.keep {
		defer os.RemoveAll(dir)
	}
	langs := languages()
	fmt.Printf("\nimages: %d apps, Docker-Hub-style image (memory scenario's) vs FRE function image (fre build)\n", len(langs))
	fmt.Printf("%-8s %12s %12s %12s %8s %10s %12s  %s\n", "app", "docker MiB", "unpacked", "FRE MiB", "FRE/dkr", "build ms", "rebuild ms", "note")
	bases := userlands{}
	var rows [][]string
	var dockerAll, freAll int64
	var labels []string
	dockerMiB, freMiB := chart.Group{Name: "Docker-Hub-style image"}, chart.Group{Name: "FRE function image"}
	for n, l := range langs {
		u, err := bases.get(l.base)
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		root := filepath.Join(dir, "docker", l.name)
		if err := buildImage(l, root, u.paths, u.status, n); err != nil {
			return fmt.Errorf("images: %s: %w", l.name, err)
		}
		unpacked, err := dirSize(root)
		if err != nil {
			return err
		}
		docker, err := tarGzSize(root)
		if err != nil {
			return fmt.Errorf("images: %s: %w", l.name, err)
		}
		res, rebuild, err := freImage(l, filepath.Join(dir, "fre", l.name))
		var un *fnimage.UnsupportedError
		switch {
		case errors.As(err, &un):
			fmt.Printf("%-8s %12.1f %12.1f %12s %8s %10s %12s  %s\n", l.name, mib(docker), mib(unpacked), "-", "-", "-", "-", "FRE: "+un.Error())
			rows = append(rows, []string{l.name, fmt.Sprint(docker), fmt.Sprint(unpacked), "", "", "", un.Error()})
			continue
		case err != nil:
			return fmt.Errorf("images: %s: %w", l.name, err)
		}
		dockerAll += docker
		freAll += res.Size
		labels = append(labels, l.name)
		dockerMiB.Values = append(dockerMiB.Values, mib(docker))
		freMiB.Values = append(freMiB.Values, mib(res.Size))
		fmt.Printf("%-8s %12.1f %12.1f %12.1f %7.3fx %10.0f %12.0f  %d layers\n", l.name, mib(docker), mib(unpacked), mib(res.Size),
			float64(res.Size)/float64(docker), msOf(res.Took), msOf(rebuild), len(res.Layers))
		rows = append(rows, []string{l.name, fmt.Sprint(docker), fmt.Sprint(unpacked), fmt.Sprint(res.Size),
			fmt.Sprintf("%.1f", msOf(res.Took)), fmt.Sprintf("%.1f", msOf(rebuild)), ""})
	}
	if dockerAll > 0 {
		r := float64(freAll) / float64(dockerAll)
		verdict := "PASS"
		if r > 0.4 {
			verdict = "MISS"
		}
		fmt.Printf("total (apps FRE builds): docker %.1f MiB, FRE %.1f MiB: %.3fx  target <= 0.4x  %s\n", mib(dockerAll), mib(freAll), r, verdict)
	}
	if len(labels) > 0 {
		// The research's figure 11: image size per app.
		if err := chart.Bar(filepath.Join(e.opts.results, "images.png"), "Image size per app (compressed)", "MiB",
			labels, []chart.Group{dockerMiB, freMiB}); err != nil {
			return fmt.Errorf("images: %w", err)
		}
	}
	return writeCSV(e.opts.results, "images.csv", []string{"app", "docker_bytes", "docker_unpacked_bytes", "fre_bytes", "fre_build_ms", "fre_rebuild_ms", "note"}, rows)
}

// freImage builds l's app as a FRE function: the same program and app
// files, the app under /code. Then a change of the code alone, rebuilt
// with the layer cache of the first build.
func freImage(l *lang, dir string) (*fnimage.Result, time.Duration, error) {
	t, err := freTemplate(l, dir)
	if err != nil {
		return nil, 0, err
	}
	code := filepath.Join(dir, "code")
	cache := filepath.Join(dir, "cache")
	res, err := fnimage.Build(context.Background(), t, fnimage.Options{Layout: filepath.Join(dir, "layout"), Cache: cache})
	if err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(filepath.Join(code, "CHANGED"), []byte("a code change\n"), 0o644); err != nil {
		return nil, 0, err
	}
	again, err := fnimage.Build(context.Background(), t, fnimage.Options{Layout: filepath.Join(dir, "layout2"), Cache: cache})
	if err != nil {
		return nil, 0, err
	}
	return res, again.Took, nil
}

// freTemplate writes l's app as a FRE function's code and template in dir
// (java's compiled with javac, as in its Docker-style image) and loads it.
func freTemplate(l *lang, dir string) (*fret.Template, error) {
	code := filepath.Join(dir, "code")
	for p, content := range l.app {
		dst := filepath.Join(code, strings.TrimPrefix(strings.TrimPrefix(p, "/app"), "/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	base := "{name: " + l.name + "}"
	if l.name == "busybox" {
		base = "{name: static}"
		fi, err := os.Stat("/bin/busybox")
		if err == nil {
			err = copyFile("/bin/busybox", filepath.Join(code, "busybox"), fi)
		}
		if err != nil {
			return nil, err
		}
	}
	if l.build != nil {
		var srcs []string
		for p := range l.app {
			srcs = append(srcs, filepath.Join(code, strings.TrimPrefix(p, "/app/")))
		}
		if out, err := exec.Command("javac", append([]string{"-d", code}, srcs...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("javac: %v: %s", err, out)
		}
	}
	ep := "[" + strings.Join(quoteAll(freArgs(l, 8080)), ", ") + "]"
	tpl := filepath.Join(dir, "fn.yaml")
	y := "apiVersion: fre.dev/v1alpha1\nid: " + l.name + "-app\nversion: \"1\"\nbase: " + base + "\ncode: code\nentrypoint: " + ep + "\ntenant: bench\n"
	if err := os.WriteFile(tpl, []byte(y), 0o644); err != nil {
		return nil, err
	}
	return fret.Load(tpl)
}

// freArgs is l's command line in its function image (the app under
// /code) on port.
func freArgs(l *lang, port int) []string {
	args := l.args("", port)
	for i, a := range args {
		a = strings.Replace(a, "/app/", "/code/", 1)
		if a == "/app" {
			a = "/code"
		}
		if l.name == "busybox" {
			a = strings.Replace(strings.Replace(a, "/bin/busybox", "/code/busybox", 1), "/www", "/code/www", 1)
		}
		args[i] = a
	}
	return args
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = fmt.Sprintf("%q", a)
	}
	return out
}

// tarGzSize is the size of root as one gzip'd tar (default level), as a
// registry stores a one-layer image.
func tarGzSize(root string) (int64, error) {
	c := &countWriter{}
	gz := gzip.NewWriter(c)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := gz.Close(); err != nil {
		return 0, err
	}
	return c.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
