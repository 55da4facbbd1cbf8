package fnimage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/fre-runtime/fre/fret"
	"github.com/fre-runtime/fre/rootfs"
)

// Options say what a build writes.
type Options struct {
	// Layout is the OCI image layout directory to write (it must not
	// exist, or be empty); "" writes none.
	Layout string
	// Store, if set, gets the function's tree, held by Ref(t).
	Store *rootfs.Store
	// Bundle is a runnable OCI bundle directory to write on the store's
	// tree (needs Store); "" writes none.
	Bundle string
	// LibDirs override the loader's default directories (LibDirs).
	LibDirs []string
	// Cache is the layer cache's directory (cache.go); "" compresses every
	// layer each time.
	Cache string
	// Fetch is where dependency packages are fetched and unpacked, once
	// (packages.go); "" is Cache's fetch directory, or a temporary one
	// without a cache.
	Fetch string
}

// Result is what a build made.
type Result struct {
	Ref      string   // the image's name: fre.dev/<id>:<version>
	Manifest string   // the manifest's digest
	Config   string   // the image config's digest
	Layers   []*Layer // base, libs, packages, code (the ones with files)
	Size     int64    // compressed bytes of every layer
	Tree     *rootfs.Tree
	// Checked: the base's own check of the entrypoint (an import, a
	// compile) ran in the image and passed.
	Checked bool
	Took    time.Duration
}

// ImageName is the name a template's image gets.
func ImageName(t *fret.Template) string { return "fre.dev/" + t.ID + ":" + t.Version }

var refUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Ref is the store ref holding a function's tree.
func Ref(t *fret.Template) string {
	return "fn." + refUnsafe.ReplaceAllString(t.ID, "_") + "." + refUnsafe.ReplaceAllString(t.Version, "_")
}

// UnsupportedError is a template this increment cannot build yet.
type UnsupportedError struct{ Field, Why string }

func (e *UnsupportedError) Error() string { return e.Field + ": " + e.Why }

// Build builds t. Nothing is left half-written: the layout is written
// next to its place and renamed there at the end, the store's import is
// whole or absent, and a failed build removes what it wrote.
func Build(ctx context.Context, t *fret.Template, o Options) (res *Result, err error) {
	start := time.Now()
	if err := supported(t); err != nil {
		return nil, err
	}
	if o.Bundle != "" && o.Store == nil {
		return nil, fmt.Errorf("a bundle runs on the store's tree: no store given")
	}
	dirs := o.LibDirs
	if dirs == nil {
		dirs = LibDirs
	}
	fetch := o.Fetch
	if fetch == "" {
		if o.Cache != "" {
			fetch = filepath.Join(o.Cache, "fetch")
		} else {
			tmp, err := os.MkdirTemp("", "fre-fetch-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			fetch = tmp
		}
	}
	parts, err := assemble(ctx, t, fetch, newClosure(dirs))
	if err != nil {
		return nil, err
	}
	res = &Result{Ref: ImageName(t)}
	work, err := os.MkdirTemp(tempParent(o), ".fre-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	lay, err := writeLayout(work, o.Cache, t, parts)
	if err != nil {
		return nil, err
	}
	res.Manifest, res.Config = lay.manifest, lay.config
	res.Layers = lay.layers
	for _, l := range lay.layers {
		res.Size += l.Size
	}
	if o.Store != nil {
		tree, err := o.Store.ImportLayers(ctx, lay.layerFiles(work), rootfs.ImportOptions{Ref: Ref(t)})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		res.Tree = tree
		ran, err := runCheck(t, tree.Path())
		if err != nil {
			// The tree stays only until the store's GC: nothing holds it.
			o.Store.Release(tree.ID, Ref(t))
			return nil, err
		}
		res.Checked = ran
	}
	if o.Bundle != "" {
		if err := writeBundle(o.Bundle, t, res.Tree); err != nil {
			return nil, err
		}
	}
	if o.Layout != "" {
		if err := place(work, o.Layout); err != nil {
			if o.Bundle != "" {
				os.RemoveAll(o.Bundle)
			}
			return nil, err
		}
	}
	res.Took = time.Since(start)
	return res, nil
}

// tempParent: the build's scratch goes beside the layout (one rename at
// the end), else in the temp dir.
func tempParent(o Options) string {
	if o.Layout != "" {
		return filepath.Dir(filepath.Clean(o.Layout))
	}
	return ""
}

// place renames the written layout into dst, which must not exist or be
// an empty directory.
func place(work, dst string) error {
	if ents, err := os.ReadDir(dst); err == nil {
		if len(ents) > 0 {
			return fmt.Errorf("layout %s: exists and is not empty", dst)
		}
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	return os.Rename(work, dst)
}

// supported: the parts this increment builds.
func supported(t *fret.Template) error {
	if _, ok := baseSpecs[t.Base.Name]; !ok && t.Base.Name != "static" {
		return &UnsupportedError{"base.name", fmt.Sprintf("base %q is not built yet (FRE builds static, python, perl, node and java)", t.Base.Name)}
	}
	return nil
}

// assemble makes the template's parts, bottom first: base (the image's
// skeleton and the base environment's files), libs (the template's libs
// and the ELF closure of everything above), packages (the dependency
// packages, fetched into fetch), code.
func assemble(ctx context.Context, t *fret.Template, fetch string, c *closure) ([]*part, error) {
	src := filepath.Join(t.Dir, t.Code)
	code, err := codePart(src)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(src); err == nil {
		c.inside = append(c.inside, abs)
	}
	version, err := baseVersion(t)
	if err != nil {
		return nil, err
	}
	base := basePart(t)
	if err := baseFiles(ctx, t, version, fetch, base, c); err != nil {
		return nil, err
	}
	pkgs, err := packagesPart(ctx, t, version, fetch, c)
	if err != nil {
		return nil, err
	}
	libs := newPart("libs")
	for i, l := range t.Libs {
		p, err := c.lookupLib(l)
		if err != nil {
			return nil, fmt.Errorf("libs[%d]: %w", i, err)
		}
		if err := c.take(p, "libs"); err != nil {
			return nil, fmt.Errorf("libs[%d]: %w", i, err)
		}
	}
	// Every program and library of the code: what it needs to load.
	for _, name := range sortedNames(code) {
		e := code.entries[name]
		if !e.mode.IsRegular() {
			continue
		}
		src := e.src
		if src == "" {
			tmp, err := spill(e.data)
			if err != nil {
				return nil, err
			}
			defer os.Remove(tmp)
			src = tmp
		}
		if err := c.add(src, "/"+name); err != nil {
			return nil, fmt.Errorf("code: %w", err)
		}
	}
	for at, host := range c.files {
		if _, ok := base.entries[clean(at)]; ok {
			continue // the base's own package has it
		}
		st, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("libs: %w", err)
		}
		libs.file(at, host, st.Mode().Perm())
	}
	parts := []*part{base, libs, pkgs, code}
	names := map[string]bool{}
	for _, p := range parts {
		for n, e := range p.entries {
			if !e.mode.IsDir() {
				names[path.Base(n)] = true
			}
		}
	}
	if err := c.check(func(b string) bool { return names[b] }); err != nil {
		return nil, fmt.Errorf("libs: %w", err)
	}
	if err := checkParts(parts); err != nil {
		return nil, err
	}
	if err := checkEntrypoint(t, parts); err != nil {
		return nil, err
	}
	return parts, nil
}

// basePart is what every function image has: the directories the runtime
// mounts over, a tmp, root and nobody in /etc/passwd, the workDir and the
// channel's directory.
func basePart(t *fret.Template) *part {
	p := newPart("base")
	for _, d := range []string{"dev", "proc", "sys", "etc", "run", "run/fre", "root"} {
		p.dir(d, 0o755)
	}
	p.dir("tmp", 0o777|fs.ModeSticky)
	p.dir(workDir(t), 0o755)
	p.bytes("etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"), 0o644)
	p.bytes("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return p
}

func workDir(t *fret.Template) string {
	if t.WorkDir == "" {
		return "work"
	}
	return clean(t.WorkDir)
}

// checkParts: in the image the parts make, no entry lies below a symlink
// (a write through a link) and no part makes a directory of another's
// file.
func checkParts(parts []*part) error {
	kind := map[string]fs.FileMode{}
	for _, p := range parts {
		for _, name := range p.withParents() {
			e := p.entries[name]
			m := fs.ModeDir
			if e != nil {
				m = e.mode.Type()
			}
			for d := path.Dir(name); d != "."; d = path.Dir(d) {
				if k, ok := kind[d]; ok && k != fs.ModeDir {
					return fmt.Errorf("%s: /%s is below /%s, which %s does not make a directory", p.name, name, d, p.name)
				}
			}
			if k, ok := kind[name]; ok && (k == fs.ModeDir) != (m == fs.ModeDir) {
				return fmt.Errorf("%s: /%s is a directory in one part and not in another", p.name, name)
			}
			kind[name] = m
		}
	}
	return nil
}

// checkEntrypoint: the entrypoint's program is in the image, a file, and
// executable (its libraries are in the closure already).
func checkEntrypoint(t *fret.Template, parts []*part) error {
	prog := t.Entrypoint[0]
	candidates := []string{clean(prog)}
	if !path.IsAbs(prog) {
		candidates = nil
		for _, d := range strings.Split(strings.TrimPrefix(DefaultPath, "PATH="), ":") {
			candidates = append(candidates, clean(path.Join(d, prog)))
		}
	}
	for _, name := range candidates {
		for hops := 0; hops < 8; hops++ {
			e := lookup(parts, name)
			if e == nil {
				break
			}
			if e.mode&fs.ModeSymlink != 0 {
				if path.IsAbs(e.link) {
					name = clean(e.link)
				} else {
					name = clean(path.Join(path.Dir(name), e.link))
				}
				continue
			}
			if !e.mode.IsRegular() || e.mode.Perm()&0o111 == 0 {
				return fmt.Errorf("entrypoint: %s is not an executable file in the image", prog)
			}
			return nil
		}
	}
	if !path.IsAbs(prog) {
		return fmt.Errorf("entrypoint: %s is in none of the image's PATH directories", prog)
	}
	return fmt.Errorf("entrypoint: %s is not in the image", prog)
}

// lookup is the entry the parts give name, the top one winning.
func lookup(parts []*part, name string) *entry {
	for i := len(parts) - 1; i >= 0; i-- {
		if e, ok := parts[i].entries[name]; ok {
			return e
		}
	}
	return nil
}

func sortedNames(p *part) []string {
	names := make([]string, 0, len(p.entries))
	for n := range p.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// spill writes an archive's file to a temp file for the ELF reader.
func spill(data []byte) (string, error) {
	f, err := os.CreateTemp("", "fre-build-elf-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
