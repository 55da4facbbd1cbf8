package rootfs

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzImportLayer feeds arbitrary bytes to the store as an OCI layer (tar,
// gzip'd or zstd'd tar, or garbage). Whatever the input: no panic; a
// refused layer leaves the store as it was (no tree, object, index entry
// or ingest leftover); an accepted one is a tree of directories, regular
// files and symlinks only, every path inside the tree, and verify finds
// every object sound. Nothing is ever written outside the store.
func FuzzImportLayer(f *testing.F) {
	requireRoot(f)
	seed := func(compression string, entries ...entry) {
		b, err := os.ReadFile(layer(f, compression, entries...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed("", dir("etc/"), file("etc/hostname", "fre\n"), symlink("bin/sh", "busybox"), file("bin/busybox", "ELF"))
	seed("gzip", file("a", "1"), hardlink("b", "a"), file(".wh.c", ""), dir("d/"), file("d/.wh..wh..opq", ""))
	seed("zstd", file("x/y/z", strings.Repeat("z", 300)))
	seed("", file("../escape", "no"))
	seed("", file("/abs", "no"))
	seed("", symlink("link", "/etc/passwd"), file("link/through", "no"))
	seed("", hardlink("h", "../../outside"))
	seed("", entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3})
	seed("", entry{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "x"})
	f.Add([]byte("not a tar at all"))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, func(o *Options) {
			o.Root = filepath.Join(base, "store")
			o.MaxSize = 8 << 20
			o.MaxEntries = 1000
			o.Keep = &GCOptions{KeepUnused: -1}
		})
		lf := filepath.Join(base, "layer")
		if err := os.WriteFile(lf, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := s.ImportLayers(ctx, []string{lf}, ImportOptions{})
		if err != nil {
			assertUnchanged(t, s, 0)
		} else {
			root := tr.Path()
			werr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if rel, rerr := filepath.Rel(root, p); rerr != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("path %s outside the tree", p)
				}
				if m := d.Type(); m&^(fs.ModeDir|fs.ModeSymlink) != 0 {
					t.Errorf("%s: type %v in a tree", p, m)
				}
				return nil
			})
			if werr != nil {
				t.Errorf("walk: %v", werr)
			}
			if v, err := s.Verify(ctx); err != nil || len(v.Corrupt) != 0 {
				t.Errorf("verify after import: %+v, %v", v, err)
			}
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("written outside the store: %v", ents)
		}
		if ents, _ := os.ReadDir(base); len(ents) != 3 {
			names := []string{}
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("entries next to the store: %v", names)
		}
	})
}
