package fnimage

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LibDirs are where the loader looks for a library no RUNPATH names
// (Debian's multiarch directories first, as its ld.so.conf has them).
var LibDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
}

// closure gathers the host files a set of ELF objects needs to load: each
// one's interpreter (PT_INTERP) and DT_NEEDED libraries, resolved through
// its RUNPATH (or RPATH), then dirs, and theirs in turn. Each result is
// keyed by the path the loader opens, with the file it resolves to.
type closure struct {
	dirs  []string
	files map[string]string // path the loader opens -> real host file
	// inside are host directories whose files the image has already (the
	// code's, the unpacked packages'): a library found there is one of
	// them, and its closure is taken with it.
	inside []string
	// roots are unpacked packages' trees: the loader's directories are
	// searched in each of them before the host's (the image has their
	// files at those paths).
	roots []string
	// unresolved are the sonames found in no directory the loader
	// searches (check).
	unresolved []*MissingLibError
}

// check fails on the first unresolved library the image does not hold
// under that name anywhere (has: the image's file names).
func (c *closure) check(has func(base string) bool) error {
	for _, m := range c.unresolved {
		if !has(m.Lib) {
			return m
		}
	}
	return nil
}

// unpacked adds an unpacked package's tree: its files are the image's,
// and the loader's directories are searched in it first.
func (c *closure) unpacked(root string) {
	c.inside = append(c.inside, root)
	c.roots = append(c.roots, root)
}

func newClosure(dirs []string) *closure {
	return &closure{dirs: dirs, files: map[string]string{}}
}

// MissingLibError is a library an object needs that is found nowhere.
type MissingLibError struct {
	Object, Lib string
	Dirs        []string
}

func (e *MissingLibError) Error() string {
	return fmt.Sprintf("%s needs %s, found in none of %s", e.Object, e.Lib, strings.Join(e.Dirs, ", "))
}

// add takes the object at host path p (shown as name in errors); a file
// that is not ELF, or a static one, needs nothing.
func (c *closure) add(p, name string) error {
	if ok, err := isELF(p); err != nil || !ok {
		return err // not ELF: a script, data
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return fmt.Errorf("%s: PT_INTERP: %w", name, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		if err := c.take(interp, name); err != nil {
			return err
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil // no dynamic section: static
	}
	runpath := dynStrings(f, elf.DT_RUNPATH)
	if len(runpath) == 0 {
		runpath = dynStrings(f, elf.DT_RPATH)
	}
	origin := filepath.Dir(p)
	for _, lib := range needed {
		found, err := c.resolve(lib, runpath, origin)
		if err != nil {
			// Maybe loaded before it by path (the JVM's launcher dlopens
			// lib/server/libjvm.so, which libjava.so then needs by
			// soname): unresolved decides once the image is whole.
			c.unresolved = append(c.unresolved, &MissingLibError{Object: name, Lib: lib, Dirs: append(expand(runpath, origin), c.dirs...)})
			continue
		}
		if err := c.take(found, name); err != nil {
			return err
		}
	}
	return nil
}

// isELF: does the file at p start with ELF's magic?
func isELF(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false, nil // shorter than a header
	}
	return string(magic[:]) == elf.ELFMAG, nil
}

// take adds the library the loader opens at path (and its closure).
func (c *closure) take(path, by string) error {
	if _, ok := c.files[path]; ok {
		return nil
	}
	for _, in := range c.inside {
		if strings.HasPrefix(path, in+"/") {
			return nil
		}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return &MissingLibError{Object: by, Lib: path, Dirs: []string{filepath.Dir(path)}}
	}
	c.files[path] = real
	return c.add(real, path)
}

// resolve finds lib as ld.so does: a name with a slash as it is, else in
// the RUNPATH dirs, then the default ones.
func (c *closure) resolve(lib string, runpath []string, origin string) (string, error) {
	if strings.Contains(lib, "/") {
		if _, err := os.Stat(lib); err != nil {
			return "", err
		}
		return lib, nil
	}
	for _, d := range append(expand(runpath, origin), c.dirs...) {
		// An $ORIGIN directory is a host one already.
		if origin == "" || !strings.HasPrefix(d, origin) {
			for _, r := range c.roots {
				if p := filepath.Join(r, d, lib); isFile(p) {
					return p, nil
				}
			}
		}
		if p := filepath.Join(d, lib); isFile(p) {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func dynStrings(f *elf.File, tag elf.DynTag) []string {
	vals, err := f.DynString(tag)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ":")...)
	}
	return out
}

func expand(dirs []string, origin string) []string {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// lookupLib resolves a template's libs entry: an absolute path as it is, a
// soname in dirs.
func (c *closure) lookupLib(lib string) (string, error) {
	if filepath.IsAbs(lib) {
		if _, err := os.Stat(lib); err != nil {
			return "", err
		}
		return lib, nil
	}
	p, err := c.resolve(lib, nil, "")
	if err != nil {
		return "", fmt.Errorf("%s found in none of %s", lib, strings.Join(c.dirs, ", "))
	}
	return p, nil
}
