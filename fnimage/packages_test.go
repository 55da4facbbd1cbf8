package fnimage

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fre-runtime/fre/rootfs"
)

// The packages tests fetch from Debian's mirrors and the npm registry (the
// registries this project's hosts reach) and run the result chrooted.

func needRoot(t *testing.T, pkgs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the image runs chrooted")
	}
	for _, p := range pkgs {
		if !hostInstalled(p) {
			t.Skipf("%s is not installed here", p)
		}
	}
}

// fnDir writes a template (base, entrypoint, packages) with one code file.
func fnDir(t *testing.T, id, base, file, code, entrypoint, packages string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code", file), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "apiVersion: fre.dev/v1alpha1\nid: " + id + "\nversion: \"1\"\nbase: " + base + "\ncode: code\nentrypoint: " +
		entrypoint + "\ntenant: ops\npackages:\n" + packages
	if err := os.WriteFile(filepath.Join(dir, "fn.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inImage runs argv chrooted in the built tree, as the image's own.
func inImage(t *testing.T, tree string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(tree, argv[0]), argv[1:]...)
	cmd.Path = argv[0]
	cmd.Dir = "/"
	cmd.Env = []string{DefaultPath, "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: tree}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v in the image: %v: %s", argv, err, out)
	}
	return string(out)
}

// partFiles are the names in the build's layer of part name.
func partFiles(t *testing.T, layout string, res *Result, name string) []string {
	t.Helper()
	for _, l := range res.Layers {
		if l.Part == name {
			return layerNames(t, blobPath(layout, l.Digest))
		}
	}
	return nil
}

func has(names []string, want string) bool {
	for _, n := range names {
		if n == want {
			return true
		}
	}
	return false
}

// Debian packages: a package and the Depends the image lacks are
// downloaded once; a library package installed here comes through the
// ELF closure, one that is not from its own download, and the image's
// programs load it from there; the base's own language is not fetched.
func TestPackagesDebian(t *testing.T) {
	needRoot(t, "libpython3.11-stdlib", "libyaml-0-2")
	// As if libyaml were not installed on this host: it is fetched, and
	// PyYAML's extension finds it in the image.
	real := hostInstalled
	hostInstalled = func(p string) bool { return p != "libyaml-0-2" && real(p) }
	defer func() { hostInstalled = real }()

	dir := fnDir(t, "yaml", `{name: python, version: "3.11"}`, "h.py",
		"import yaml, six\nprint(yaml.__with_libyaml__, six.PY3)\n", "[python3, /code/h.py]",
		"  debian: [python3-yaml, python3-six]\n")
	cache, out := filepath.Join(t.TempDir(), "cache"), t.TempDir()
	st := testStore(t)
	build := func(name string) *Result {
		t.Helper()
		res, err := Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, name), Store: st, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := fetched
	res := build("one")
	if n := fetched - before; n != 3 {
		t.Errorf("%d downloads, want 3 (python3-yaml, python3-six, libyaml-0-2)", n)
	}
	if !res.Checked || len(res.Layers) != 4 || res.Layers[2].Part != "packages" {
		t.Fatalf("checked %v, layers %+v", res.Checked, res.Layers)
	}
	pkgs := partFiles(t, filepath.Join(out, "one"), res, "packages")
	for _, want := range []string{"usr/lib/python3/dist-packages/six.py", "usr/lib/python3/dist-packages/yaml/__init__.py",
		"usr/lib/x86_64-linux-gnu/libyaml-0.so.2.0.9",
		// Installed here too: the host's byte code comes with it.
		"usr/lib/python3/dist-packages/yaml/__pycache__/__init__.cpython-311.pyc"} {
		if !has(pkgs, want) {
			t.Errorf("the packages layer lacks %s", want)
		}
	}
	for _, n := range pkgs {
		if strings.HasPrefix(n, "usr/share/doc/") || strings.HasPrefix(n, "usr/bin/python3") {
			t.Errorf("the packages layer has %s (docs, or the base's own python)", n)
		}
	}
	if got := inImage(t, res.Tree.Path(), "/usr/bin/python3", "/code/h.py"); got != "True True\n" {
		t.Errorf("the function said %q", got)
	}
	// Nothing fetched twice, and the same image.
	before = fetched
	again := build("two")
	if fetched != before {
		t.Errorf("the second build fetched %d times", fetched-before)
	}
	if again.Manifest != res.Manifest {
		t.Errorf("manifests %s, %s", res.Manifest, again.Manifest)
	}
}

// A perl module package: the base satisfies its dependency on perl, and
// the build's perl -c finds the module in the image.
func TestPackagesDebianPerl(t *testing.T) {
	needRoot(t, "perl-base")
	dir := fnDir(t, "pj", "{name: perl}", "h.pl", "use JSON::PP; print encode_json({a=>1}), \"\\n\";\n",
		"[perl, /code/h.pl]", "  debian: [libjson-pp-perl]\n")
	layout := filepath.Join(t.TempDir(), "l")
	res, err := Build(context.Background(), load(t, dir), Options{Layout: layout, Store: testStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := partFiles(t, layout, res, "packages")
	if !has(pkgs, "usr/share/perl5/JSON/PP.pm") || len(pkgs) > 20 {
		t.Errorf("the packages layer: %v", pkgs)
	}
	if got := inImage(t, res.Tree.Path(), "/usr/bin/perl", "/code/h.pl"); got != `{"a":1}`+"\n" {
		t.Errorf("the function said %q", got)
	}
}

// npm packages and their dependencies, in /node_modules, found from the
// code's directory; once fetched, not again.
func TestPackagesNpm(t *testing.T) {
	needRoot(t, "nodejs")
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip(err)
	}
	dir := fnDir(t, "odd", "{name: node}", "h.js", "console.log(require('is-odd')(3), require('is-number')('7'))\n",
		"[node, /code/h.js]", "  npm: [is-odd@3.0.1]\n")
	cache := filepath.Join(t.TempDir(), "cache")
	layout := filepath.Join(t.TempDir(), "l")
	res, err := Build(context.Background(), load(t, dir), Options{Layout: layout, Store: testStore(t), Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := partFiles(t, layout, res, "packages")
	for _, want := range []string{"node_modules/is-odd/package.json", "node_modules/is-number/index.js"} {
		if !has(pkgs, want) {
			t.Errorf("the packages layer lacks %s: %v", want, pkgs)
		}
	}
	if got := inImage(t, res.Tree.Path(), "/usr/bin/node", "/code/h.js"); got != "true true\n" {
		t.Errorf("the function said %q", got)
	}
	before := fetched
	if _, err := Build(context.Background(), load(t, dir), Options{Store: testStore(t), Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if fetched != before {
		t.Error("the second build ran npm again")
	}
	// The build's check resolves what the code requires and imports: a
	// module none of the packages has fails it (one in a comment, or a
	// built-in, does not).
	for src, want := range map[string]string{
		"// require('not-here')\nconst os = require('node:os'), fs = require('fs');\nrequire('is-odd/index.js');\n": "",
		"const x = require('is-even');\n":                               "Cannot find module is-even",
		"import odd from 'is-odd';\nimport { y } from './local.mjs';\n": "Cannot find module ./local.mjs",
	} {
		os.WriteFile(filepath.Join(dir, "code", "h.js"), []byte(src), 0o644)
		_, err := Build(context.Background(), load(t, dir), Options{Store: testStore(t), Cache: cache})
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("code %q: %v, want %q", src, err, want)
		}
	}
}

// wheel writes a pure-Python wheel of one module into dir.
func wheel(t *testing.T, dir, name, version, module, requires string) {
	t.Helper()
	info := name + "-" + version + ".dist-info/"
	files := []struct{ name, data string }{
		{name + "/__init__.py", module},
		{info + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n" + requires},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: fre-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		w, err := z.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Unix(315532800, 0)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.data))
		h := sha256.Sum256([]byte(f.data))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(h[:]), len(f.data))
	}
	record.WriteString(info + "RECORD,,\n")
	w, _ := z.CreateHeader(&zip.FileHeader{Name: info + "RECORD", Method: zip.Deflate, Modified: time.Unix(315532800, 0)})
	w.Write([]byte(record.String()))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-"+version+"-py3-none-any.whl"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pip packages from the template's wheels, with their dependencies, into
// the base's dist-packages; a dependency no wheel has fails the build
// with pip's words, and nothing is left.
func TestPackagesPip(t *testing.T) {
	needRoot(t, "libpython3.11-stdlib")
	if _, _, err := findPip(context.Background()); err != nil {
		t.Skip(err)
	}
	dir := fnDir(t, "hello", `{name: python, version: "3.11"}`, "h.py", "import frehello\nprint(frehello.GREETING)\n",
		"[python3, /code/h.py]", "  pip: {wheels: wheels, packages: [frehello]}\n")
	wheels := filepath.Join(dir, "wheels")
	os.Mkdir(wheels, 0o755)
	wheel(t, wheels, "frehello", "1.0", "from frecolor import RED\nGREETING = 'hello ' + RED\n", "Requires-Dist: frecolor>=1\n")
	wheel(t, wheels, "frecolor", "1.2", "RED = 'red'\n", "")
	layout := filepath.Join(t.TempDir(), "l")
	res, err := Build(context.Background(), load(t, dir), Options{Layout: layout, Store: testStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := partFiles(t, layout, res, "packages")
	for _, want := range []string{"usr/local/lib/python3.11/dist-packages/frehello/__init__.py",
		"usr/local/lib/python3.11/dist-packages/frecolor/__init__.py"} {
		if !has(pkgs, want) {
			t.Errorf("the packages layer lacks %s: %v", want, pkgs)
		}
	}
	if got := inImage(t, res.Tree.Path(), "/usr/bin/python3", "/code/h.py"); got != "hello red\n" {
		t.Errorf("the function said %q", got)
	}

	// Without the dependency's wheel.
	os.Remove(filepath.Join(wheels, "frecolor-1.2-py3-none-any.whl"))
	out := t.TempDir()
	st := testStore(t)
	_, err = Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, "l"), Store: st})
	if err == nil || !strings.Contains(err.Error(), "packages.pip") || !strings.Contains(err.Error(), "frecolor") {
		t.Fatalf("a missing dependency's wheel: %v", err)
	}
	assertNothingLeft(t, out, st)
}

// A package no registry has: the error names it, and nothing is written.
func TestPackagesMissing(t *testing.T) {
	needRoot(t, "perl-base", "nodejs")
	for _, tc := range []struct{ base, packages, want string }{
		{"{name: perl}", "  debian: [fre-no-such-package]\n", "packages.debian[0]: no Debian package fre-no-such-package"},
		{"{name: node}", "  npm: [fre-no-such-package-3d1f]\n", "packages.npm: npm install fre-no-such-package-3d1f"},
	} {
		if _, err := exec.LookPath("npm"); err != nil && strings.Contains(tc.packages, "npm") {
			t.Log("no npm here: ", err)
			continue
		}
		dir := fnDir(t, "missing", tc.base, "h", "", "[/bin/true]", tc.packages)
		out := t.TempDir()
		st := testStore(t)
		_, err := Build(context.Background(), load(t, dir), Options{Layout: filepath.Join(out, "l"), Store: st,
			Cache: filepath.Join(t.TempDir(), "cache")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.packages, err, tc.want)
		}
		assertNothingLeft(t, out, st)
	}
}

func assertNothingLeft(t *testing.T, out string, st *rootfs.Store) {
	t.Helper()
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("left in the output's directory: %v", left)
	}
	if trees, _ := st.List(context.Background()); len(trees) != 0 {
		t.Errorf("trees in the store: %v", trees)
	}
}

// A base whose package is not installed on the build host is fetched and
// unpacked like a dependency, its libraries from the closure, and runs.
func TestBaseFetched(t *testing.T) {
	needRoot(t)
	real := dpkgList
	dpkgList = func(pkg string) ([]string, error) {
		if pkg == "perl-base" {
			return nil, fmt.Errorf("Debian package %s is not installed on this build host", pkg)
		}
		return real(pkg)
	}
	defer func() { dpkgList = real }()
	dir := fnDir(t, "pb", "{name: perl}", "h.pl", "print \"hello from perl $]\\n\";\n", "[perl, /code/h.pl]", "")
	layout := filepath.Join(t.TempDir(), "l")
	before := fetched
	res, err := Build(context.Background(), load(t, dir), Options{Layout: layout, Store: testStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	if fetched-before != 1 {
		t.Errorf("%d downloads, want 1 (perl-base)", fetched-before)
	}
	base := partFiles(t, layout, res, "base")
	if !has(base, "usr/bin/perl") || has(base, "usr/share/doc/perl-base/copyright") {
		t.Errorf("the base layer: perl %v, docs %v", has(base, "usr/bin/perl"), has(base, "usr/share/doc/perl-base/copyright"))
	}
	if got := inImage(t, res.Tree.Path(), "/usr/bin/perl", "/code/h.pl"); !strings.HasPrefix(got, "hello from perl 5.") {
		t.Errorf("the function said %q", got)
	}
}
