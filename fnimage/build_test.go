package fnimage

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/fret"
	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/rootfs"
)

// fixture is a template directory: a static function whose code is
// busybox-static (entrypoint /code/busybox echo).
func fixture(t *testing.T, extra string) (dir string) {
	t.Helper()
	bb, err := testutil.FindBusybox()
	if err != nil {
		t.Skip(err)
	}
	dir = t.TempDir()
	code := filepath.Join(dir, "code")
	if err := os.MkdirAll(code, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(code, "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTemplate(t, dir, "code", extra)
	return dir
}

func writeTemplate(t *testing.T, dir, code, extra string) {
	t.Helper()
	y := "apiVersion: fre.dev/v1alpha1\nid: hello\nversion: \"1\"\nbase: {name: static}\ncode: " + code +
		"\nentrypoint: [/code/busybox, echo, hello]\nresources: {memory: 16Mi, cpu: 100m, pids: 8}\ntenant: ops\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, dir string) *fret.Template {
	t.Helper()
	tp, err := fret.Load(filepath.Join(dir, "fn.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// The same template and inputs give the same digests; a change of the code
// alone changes the code layer and nothing below it; the layout is a valid
// OCI layout naming the image.
func TestBuildReproducible(t *testing.T) {
	dir := fixture(t, "")
	out := t.TempDir()
	build := func(name string) *Result {
		t.Helper()
		res, err := Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, name)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := build("a"), build("b")
	if a.Manifest != b.Manifest || a.Config != b.Config {
		t.Fatalf("two builds: manifests %s and %s", a.Manifest, b.Manifest)
	}
	if len(a.Layers) != 2 || a.Layers[0].Part != "base" || a.Layers[1].Part != "code" {
		t.Fatalf("layers %+v, want base and code (no libs: busybox is static)", a.Layers)
	}
	for _, f := range []string{"oci-layout", "index.json", "blobs/sha256/" + strings.TrimPrefix(a.Manifest, "sha256:")} {
		if _, err := os.Stat(filepath.Join(out, "a", f)); err != nil {
			t.Errorf("layout: %v", err)
		}
	}
	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	readJSON(t, filepath.Join(out, "a", "index.json"), &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != a.Manifest || idx.Manifests[0].Annotations[annotationRef] != "fre.dev/hello:1" {
		t.Fatalf("index.json %+v", idx)
	}
	var cfg struct {
		Config struct {
			Entrypoint []string
			Labels     map[string]string
		}
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	readJSON(t, filepath.Join(out, "a", "blobs", "sha256", strings.TrimPrefix(a.Config, "sha256:")), &cfg)
	if strings.Join(cfg.Config.Entrypoint, " ") != "/code/busybox echo hello" || cfg.Config.Labels[LabelMemory] != "16Mi" ||
		cfg.Config.Labels[LabelTenant] != "ops" || len(cfg.RootFS.DiffIDs) != 2 {
		t.Fatalf("image config %+v", cfg)
	}

	if err := os.WriteFile(filepath.Join(dir, "code", "handler.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := build("c")
	if c.Layers[0].Digest != a.Layers[0].Digest {
		t.Errorf("the base layer changed with the code: %s, %s", a.Layers[0].Digest, c.Layers[0].Digest)
	}
	if c.Layers[1].Digest == a.Layers[1].Digest || c.Manifest == a.Manifest {
		t.Errorf("the code changed, its layer did not")
	}
	// The layer itself: sorted, root-owned, mtime 0, parents first.
	names := layerNames(t, filepath.Join(out, "c", "blobs", "sha256", strings.TrimPrefix(c.Layers[1].Digest, "sha256:")))
	if strings.Join(names, " ") != "code/ code/busybox code/handler.txt" {
		t.Errorf("code layer entries %q", names)
	}
}

// A program that links dynamically brings its interpreter and DT_NEEDED
// closure into the libs layer; a library found nowhere fails the build.
func TestBuildELFClosure(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTemplate(t, dir, "code", "libs: [libz.so.1]\n")
	tp := load(t, dir)
	c := newClosure(LibDirs)
	parts, err := assemble(context.Background(), tp, t.TempDir(), c)
	if err != nil {
		if strings.Contains(err.Error(), "libz.so.1") {
			t.Skip("no libz here: ", err)
		}
		t.Fatal(err)
	}
	libs := parts[1]
	var names []string
	for n := range libs.entries {
		names = append(names, n)
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"libc.so.6", "ld-linux", "libz.so.1"} {
		if !strings.Contains(all, want) {
			t.Errorf("libs layer %q: no %s", all, want)
		}
	}
	_, err = Build(context.Background(), tp, Options{Layout: filepath.Join(t.TempDir(), "l"), LibDirs: []string{"/nonexistent"}})
	var miss *MissingLibError
	if !errors.As(err, &miss) && !strings.Contains(err.Error(), "found in none of") {
		t.Fatalf("without the loader's dirs: %v, want a missing library", err)
	}
}

// Hostile code is refused with a clear error, and nothing is written: no
// layout, no scratch beside it, no tree in the store.
func TestBuildBadInput(t *testing.T) {
	tarOf := func(hdrs ...*tar.Header) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, h := range hdrs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		gz.Close()
		return buf.Bytes()
	}
	zipOf := func(name string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create(name)
		w.Write([]byte("x"))
		zw.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name, want string
		setup      func(t *testing.T, dir string) string // returns the code path
	}{
		{"absolute link", "outside the code (absolute)", func(t *testing.T, dir string) string {
			os.Symlink("/etc/passwd", filepath.Join(dir, "code", "pw"))
			return "code"
		}},
		{"relative link out", "outside the code", func(t *testing.T, dir string) string {
			os.Symlink("../../etc/passwd", filepath.Join(dir, "code", "sub-pw"))
			return "code"
		}},
		{"fifo", "not a file, directory or link", func(t *testing.T, dir string) string {
			unix.Mkfifo(filepath.Join(dir, "code", "fifo"), 0o644)
			return "code"
		}},
		{"tar with ..", "outside the archive's root", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), tarOf(&tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}), 0o644)
			return "c.tgz"
		}},
		{"tar absolute", "outside the archive's root", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), tarOf(&tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}), 0o644)
			return "c.tgz"
		}},
		{"tar link out", "outside the code", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), tarOf(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../x"}), 0o644)
			return "c.tgz"
		}},
		{"tar device", "not a file, directory or symlink", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), tarOf(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}), 0o644)
			return "c.tgz"
		}},
		{"tar write through a link", "below", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), tarOf(
				&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "."},
				&tar.Header{Name: "d/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}), 0o644)
			return "c.tgz"
		}},
		{"not gzip", "gzip", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.tgz"), []byte("plain text"), 0o644)
			return "c.tgz"
		}},
		{"zip with ..", "outside the archive's root", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "c.zip"), zipOf("../evil"), 0o644)
			return "c.zip"
		}},
		{"entrypoint missing", "is not in the image", func(t *testing.T, dir string) string {
			os.Remove(filepath.Join(dir, "code", "busybox"))
			return "code"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t, "")
			writeTemplate(t, dir, tc.setup(t, dir), "")
			out := t.TempDir()
			st := testStore(t)
			_, err := Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, "layout"), Store: st})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("left in the output's directory: %v", left)
			}
			if trees, _ := st.List(context.Background()); len(trees) != 0 {
				t.Errorf("trees in the store: %v", trees)
			}
		})
	}
	// The README's python example names pillow, whose wheel its wheel
	// directory does not have: pip's error, and nothing written.
	if tp, err := fret.Load("../fret/testdata/python.yaml"); err != nil {
		t.Fatal(err)
	} else if _, _, perr := findPip(context.Background()); perr == nil {
		out := t.TempDir()
		_, err := Build(context.Background(), tp, Options{Layout: filepath.Join(out, "l")})
		if err == nil || !strings.Contains(err.Error(), "packages.pip") || !strings.Contains(err.Error(), "pillow") {
			t.Errorf("python.yaml without pillow's wheel: %v", err)
		}
		if left, _ := os.ReadDir(out); len(left) != 0 {
			t.Errorf("left in the output's directory: %v", left)
		}
	}
	// A layout that exists with something in it is not overwritten.
	dir := fixture(t, "")
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o644)
	if _, err := Build(context.Background(), load(t, dir), Options{Layout: full}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("into a non-empty layout dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep")); string(b) != "x" {
		t.Error("the non-empty dir's file is gone")
	}
}

// The store gets the function's tree, held by its ref: identical files of
// two functions are one inode.
func TestBuildStoreTree(t *testing.T) {
	st := testStore(t)
	var trees []*rootfs.Tree
	for _, id := range []string{"one", "two"} {
		dir := fixture(t, "")
		y, _ := os.ReadFile(filepath.Join(dir, "fn.yaml"))
		os.WriteFile(filepath.Join(dir, "fn.yaml"), bytes.Replace(y, []byte("id: hello"), []byte("id: "+id), 1), 0o644)
		os.WriteFile(filepath.Join(dir, "code", "own.txt"), []byte(id), 0o644)
		res, err := Build(context.Background(), load(t, dir), Options{Store: st, Bundle: filepath.Join(t.TempDir(), "b")})
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, res.Tree)
	}
	if trees[0].ID == trees[1].ID {
		t.Fatal("two functions, one tree")
	}
	var a, b unix.Stat_t
	if unix.Stat(filepath.Join(trees[0].Path(), "code", "busybox"), &a) != nil || unix.Stat(filepath.Join(trees[1].Path(), "code", "busybox"), &b) != nil || a.Ino != b.Ino {
		t.Fatalf("busybox in the two trees: inodes %d and %d, want one", a.Ino, b.Ino)
	}
	ts, err := st.List(context.Background())
	if err != nil || len(ts) != 2 {
		t.Fatalf("trees %v, %v", ts, err)
	}
	for _, tr := range ts {
		if len(tr.Refs) != 1 || !strings.HasPrefix(tr.Refs[0], "fn.") {
			t.Errorf("tree %s refs %v, want its function's", tr.ID, tr.Refs)
		}
	}
}

func testStore(t *testing.T) *rootfs.Store {
	t.Helper()
	st, err := rootfs.Open(rootfs.Options{Root: filepath.Join(t.TempDir(), "store")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func layerNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		// A .py file keeps its mtime, which its byte code is checked against.
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) && !strings.HasSuffix(h.Name, ".py") {
			t.Errorf("%s: uid %d gid %d mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		names = append(names, h.Name)
	}
}

// A language base is its Debian packages' files and their ELF closure,
// and the language's own check of the entrypoint runs in the image at
// build time: a module the image lacks fails the build, and nothing holds
// the tree afterwards.
func TestBuildPythonCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the check runs chrooted in the image")
	}
	if _, err := dpkgList("libpython3.11-stdlib"); err != nil {
		t.Skip(err)
	}
	build := func(src string) (*Result, *rootfs.Store, error) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "code"), 0o755)
		os.WriteFile(filepath.Join(dir, "code", "handler.py"), []byte(src), 0o644)
		os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte("apiVersion: fre.dev/v1alpha1\nid: py\nversion: \"1\"\nbase: {name: python, version: \"3.11\"}\ncode: code\nentrypoint: [python3, /code/handler.py]\ntenant: ops\n"), 0o644)
		st := testStore(t)
		res, err := Build(context.Background(), load(t, dir), Options{Store: st})
		return res, st, err
	}
	res, _, err := build("import json, ssl\n")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Checked || len(res.Layers) != 3 || res.Layers[0].Files < 100 {
		t.Fatalf("checked %v, layers %+v", res.Checked, res.Layers)
	}
	for _, p := range []string{"usr/bin/python3", "usr/lib/python3.11/json/__init__.py"} {
		if _, err := os.Lstat(filepath.Join(res.Tree.Path(), p)); err != nil {
			t.Errorf("the image: %v", err)
		}
	}
	_, st, err := build("import six_is_not_in_the_image\n")
	if err == nil || !strings.Contains(err.Error(), "ModuleNotFoundError") {
		t.Fatalf("a missing module: %v, want the check's ModuleNotFoundError", err)
	}
	trees, _ := st.List(context.Background())
	for _, tr := range trees {
		if len(tr.Refs) != 0 {
			t.Errorf("tree %s still held by %v after a failed check", tr.ID, tr.Refs)
		}
	}
}

// The layer cache gives the same layers as a build without it, links an
// unchanged part's blob instead of compressing it again, and sees a change
// of a host file.
func TestBuildCache(t *testing.T) {
	dir := fixture(t, "")
	out, cache := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	build := func(name, cache string) *Result {
		t.Helper()
		res, err := Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, name), Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	cold, warm, none := build("cold", cache), build("warm", cache), build("none", "")
	if cold.Manifest != warm.Manifest || warm.Manifest != none.Manifest {
		t.Fatalf("manifests: cold %s, warm %s, no cache %s", cold.Manifest, warm.Manifest, none.Manifest)
	}
	blob := func(name string, l *Layer) string { return blobPath(filepath.Join(out, name), l.Digest) }
	var a, b unix.Stat_t
	if unix.Stat(blob("cold", cold.Layers[1]), &a) != nil || unix.Stat(blob("warm", warm.Layers[1]), &b) != nil || a.Ino != b.Ino {
		t.Errorf("the warm build's code blob is not the cached one (inodes %d, %d)", a.Ino, b.Ino)
	}
	// A changed host file (same name) changes its layer.
	p := filepath.Join(dir, "code", "busybox")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, append(data, 0), 0o755)
	changed := build("changed", cache)
	if changed.Layers[1].Digest == cold.Layers[1].Digest {
		t.Error("a changed file, the same layer from the cache")
	}
	if changed.Layers[0].Digest != cold.Layers[0].Digest {
		t.Error("the base changed with the code")
	}
}

// Java's check (java --dry-run in the image): the main class is loaded,
// not run; a class path without it fails the build.
func TestBuildJavaCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the check runs chrooted in the image")
	}
	if _, err := dpkgList("openjdk-17-jre-headless"); err != nil {
		t.Skip(err)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skip("no javac to compile the handler")
	}
	dir := t.TempDir()
	code := filepath.Join(dir, "code")
	os.MkdirAll(code, 0o755)
	src := filepath.Join(dir, "Handler.java")
	os.WriteFile(src, []byte("public class Handler { public static void main(String[] a) throws Exception { Thread.sleep(100000000L); } }\n"), 0o644)
	if out, err := exec.Command(javac, "-d", code, src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v: %s", err, out)
	}
	build := func(main string) (*Result, error) {
		os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte("apiVersion: fre.dev/v1alpha1\nid: jv\nversion: \"1\"\nbase: {name: java}\ncode: code\nentrypoint: [java, -cp, /code, "+main+"]\ntenant: ops\n"), 0o644)
		return Build(context.Background(), load(t, dir), Options{Store: testStore(t)})
	}
	// Handler's main sleeps: a check that ran it would never return.
	res, err := build("Handler")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Checked {
		t.Error("the java image was not checked")
	}
	if _, err := build("NoSuchHandler"); err == nil || !strings.Contains(err.Error(), "NoSuchHandler") {
		t.Fatalf("a missing main class: %v, want the check's error naming it", err)
	}
}
