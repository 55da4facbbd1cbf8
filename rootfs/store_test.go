package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestImportDirSharesIdenticalFiles(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, map[string]string{"lib/libc.so.6": "libc bytes", "app/main.py": "print(1)", "empty/": ""})
	writeFiles(t, b, map[string]string{"usr/lib/libc.so.6": "libc bytes", "srv/index.js": "console.log(1)"})
	ta, err := s.ImportDir(ctx, a, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := s.ImportDir(ctx, b, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ta.ID == tb.ID {
		t.Fatal("different images got one tree")
	}
	la, lb := filepath.Join(ta.Path(), "lib/libc.so.6"), filepath.Join(tb.Path(), "usr/lib/libc.so.6")
	if inode(t, la) != inode(t, lb) {
		t.Error("identical files in two images are different inodes")
	}
	if n := nlink(t, la); n != 3 {
		t.Errorf("libc has %d links, want 3 (object + 2 trees)", n)
	}
	if inode(t, filepath.Join(ta.Path(), "app/main.py")) == inode(t, la) {
		t.Error("different files share an inode")
	}
	if fi, err := os.Stat(filepath.Join(ta.Path(), "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty dir not recreated: %v", err)
	}
	if got, _ := os.ReadFile(lb); string(got) != "libc bytes" {
		t.Errorf("content %q", got)
	}
	// The source is untouched and not linked.
	if nlink(t, filepath.Join(a, "lib/libc.so.6")) != 1 {
		t.Error("source file was hard-linked into the store")
	}
	if ta.Files != 2 || ta.LogicalSize != int64(len("libc bytes")+len("print(1)")) {
		t.Errorf("tree counts: files %d size %d", ta.Files, ta.LogicalSize)
	}
}

func TestIdenticalCopiesShareTree(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		writeFiles(t, d, map[string]string{"x": "1", "y/z": "2"})
		for _, p := range []string{d, filepath.Join(d, "y")} {
			os.Chtimes(p, time.Unix(5, 0), time.Unix(5, 0))
		}
	}
	ta, err := s.ImportDir(ctx, a, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := s.ImportDir(ctx, b, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ta.ID != tb.ID || !tb.Cached {
		t.Errorf("identical copies: trees %s and %s (cached %v)", ta.ID, tb.ID, tb.Cached)
	}
}

func TestDifferentMetadataDifferentInodes(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "same", "b": "same", "c": "same", "d": "same"})
	os.Chmod(filepath.Join(d, "b"), 0o755)
	if err := unix.Setxattr(filepath.Join(d, "c"), "user.fre", []byte("v"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	tr, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ia, ib, ic := inode(t, filepath.Join(tr.Path(), "a")), inode(t, filepath.Join(tr.Path(), "b")), inode(t, filepath.Join(tr.Path(), "c"))
	if ia == ib || ia == ic || ib == ic {
		t.Errorf("files differing in mode/xattrs share inodes: %d %d %d", ia, ib, ic)
	}
	if ia != inode(t, filepath.Join(tr.Path(), "d")) {
		t.Error("identical files in one image are different inodes")
	}
	if fi, _ := os.Stat(filepath.Join(tr.Path(), "b")); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	if v := make([]byte, 8); true {
		if n, err := unix.Getxattr(filepath.Join(tr.Path(), "c"), "user.fre", v); err == nil && string(v[:n]) != "v" {
			t.Errorf("xattr %q", v[:n])
		}
	}
}

func TestOwnerIsPartOfKey(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "x", "b": "x", "suid": "y"})
	os.Chown(filepath.Join(d, "b"), 1000, 1000)
	unix.Chmod(filepath.Join(d, "suid"), 0o4755)
	unix.Setxattr(filepath.Join(d, "a"), "security.capability", capNetBind, 0)
	tr, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(tr.Path(), "b"), &st)
	if st.Uid != 1000 || inode(t, filepath.Join(tr.Path(), "a")) == st.Ino {
		t.Errorf("owner not kept or not in the key: uid %d", st.Uid)
	}
	unix.Lstat(filepath.Join(tr.Path(), "suid"), &st)
	if st.Mode&unix.S_ISUID == 0 {
		t.Error("root-owned setuid bit lost")
	}
	v := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(tr.Path(), "a"), "security.capability", v); err != nil || !bytes.Equal(v[:n], capNetBind) {
		t.Errorf("security.capability not kept: %v", err)
	}
}

// capNetBind is a v2 file capability: cap_net_bind_service+ep.
var capNetBind = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func TestHardLinksStayHardLinks(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "content"})
	os.Link(filepath.Join(d, "a"), filepath.Join(d, "b"))
	tr, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(tr.Path(), "a")) != inode(t, filepath.Join(tr.Path(), "b")) {
		t.Error("dir hard link broken")
	}
	if s.hashed.Load() != 1 {
		t.Errorf("hard-linked file hashed %d times", s.hashed.Load())
	}
	l := layer(t, "", file("bin/busybox", "bb"), hardlink("bin/sh", "bin/busybox"), hardlink("./bin/ls", "./bin/busybox"))
	tl, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := inode(t, filepath.Join(tl.Path(), "bin/busybox"))
	if inode(t, filepath.Join(tl.Path(), "bin/sh")) != i || inode(t, filepath.Join(tl.Path(), "bin/ls")) != i {
		t.Error("tar hard link broken")
	}
}

func TestImportLayersCompressions(t *testing.T) {
	s := newStore(t)
	var trees []*Tree
	for i, c := range []string{"gzip", "zstd", ""} {
		l := layer(t, c, dir("usr/"), dir("usr/lib/"), file("usr/lib/libc.so.6", "libc"),
			file("app", strings.Repeat("x", i+1)), symlink("lib", "usr/lib"),
			entry{name: "fifo", typ: tar.TypeFifo, mode: 0o600})
		tr, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		trees = append(trees, tr)
		if len(tr.DiffIDs) != 1 || tr.ID != strings.TrimPrefix(tr.DiffIDs[0], "sha256:") {
			t.Errorf("%q: tree %s diff IDs %v: a single layer's chain ID is its diff ID", c, tr.ID, tr.DiffIDs)
		}
		if target, _ := os.Readlink(filepath.Join(tr.Path(), "lib")); target != "usr/lib" {
			t.Errorf("%q: symlink %q", c, target)
		}
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(tr.Path(), "fifo"), &st); st.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("%q: fifo not recreated", c)
		}
	}
	i0 := inode(t, filepath.Join(trees[0].Path(), "usr/lib/libc.so.6"))
	for _, tr := range trees[1:] {
		if inode(t, filepath.Join(tr.Path(), "usr/lib/libc.so.6")) != i0 {
			t.Error("same file in different layers is different inodes")
		}
	}
	// Chain ID over two layers.
	want := ChainID([]string{trees[0].DiffIDs[0], trees[1].DiffIDs[0]})
	if !strings.HasPrefix(want, "sha256:") || want == "sha256:"+trees[0].ID {
		t.Errorf("chain ID %s", want)
	}
}

func TestWhiteoutsAndOpaque(t *testing.T) {
	s := newStore(t)
	l1 := layer(t, "gzip", dir("a/"), file("a/x", "x"), file("a/y", "y"), dir("b/"), file("b/z", "z"),
		dir("c/"), file("c/old", "o"), dir("c/sub/"), file("c/sub/deep", "d"), file("keep", "k"))
	l2 := layer(t, "zstd", file("a/.wh.x", ""), file(".wh.b", ""), dir("c/"), file("c/.wh..wh..opq", ""),
		file("c/new", "n"), file("a/.wh.missing", ""))
	tr, err := s.ImportLayers(ctx, []string{l1, l2}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"a/x": false, "a/y": true, "b": false, "c": true, "c/old": false,
		"c/sub": false, "c/new": true, "keep": true, "a/.wh.x": false, "c/.wh..wh..opq": false} {
		_, err := os.Lstat(filepath.Join(tr.Path(), p))
		if got := err == nil; got != want {
			t.Errorf("%s exists=%v, want %v", p, got, want)
		}
	}
	if tr.ID != strings.TrimPrefix(ChainID(tr.DiffIDs), "sha256:") {
		t.Error("tree not named by chain ID")
	}
}

func TestImportLowerDirs(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	lower, upper := t.TempDir(), t.TempDir()
	writeFiles(t, lower, map[string]string{"a/x": "x", "a/y": "y", "o/old": "o", "gone": "g", "lib.so": "shared"})
	writeFiles(t, upper, map[string]string{"a/z": "z", "o/new": "n", "lib.so": "shared"})
	if err := unix.Mknod(filepath.Join(upper, "a/x"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "o"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	tr, err := s.ImportLowerDirs(ctx, []string{upper, lower}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"a/x": false, "a/y": true, "a/z": true, "gone": false, "o/old": false, "o/new": true} {
		_, err := os.Lstat(filepath.Join(tr.Path(), p))
		if got := err == nil; got != want {
			t.Errorf("%s exists=%v, want %v", p, got, want)
		}
	}
	if n, _ := unix.Lgetxattr(filepath.Join(tr.Path(), "o"), "trusted.overlay.opaque", make([]byte, 8)); n > 0 {
		t.Error("overlay xattr copied into the tree")
	}
	again, err := s.ImportLowerDirs(ctx, []string{upper, lower}, ImportOptions{})
	if err != nil || !again.Cached || again.ID != tr.ID {
		t.Errorf("second import of the same lowerdirs: %v cached=%v", err, again != nil && again.Cached)
	}
	// A dir import refuses the whiteout device.
	if _, err := s.ImportDir(ctx, upper, ImportOptions{}); !errors.Is(err, ErrDevice) {
		t.Errorf("ImportDir of a dir with a device: %v", err)
	}
}

func TestCachedImportDoesNotHash(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "1", "b/c": "2", "b/d": "3"})
	t1, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if t1.Cached {
		t.Error("first import reported cached")
	}
	h := s.hashed.Load()
	t2, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !t2.Cached || t2.ID != t1.ID || s.hashed.Load() != h {
		t.Errorf("second import: cached=%v same=%v hashed %d more files", t2.Cached, t2.ID == t1.ID, s.hashed.Load()-h)
	}
	// A change is seen.
	os.WriteFile(filepath.Join(d, "b/c"), []byte("changed"), 0o644)
	t3, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if t3.Cached || t3.ID == t1.ID {
		t.Error("changed dir served from cache")
	}
	l := layer(t, "gzip", file("f", "1"), file("g", "2"))
	l1, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h = s.hashed.Load()
	l2, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
	if err != nil || !l2.Cached || l2.ID != l1.ID || s.hashed.Load() != h {
		t.Errorf("second layer import: %v cached=%v hashed %d", err, l2 != nil && l2.Cached, s.hashed.Load()-h)
	}
}

func TestExistingObjectNotRewritten(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, map[string]string{"f": "shared"})
	writeFiles(t, b, map[string]string{"g": "shared", "h": "new"})
	ta, _ := s.ImportDir(ctx, a, ImportOptions{})
	before := inode(t, filepath.Join(ta.Path(), "f"))
	var st unix.Stat_t
	unix.Lstat(filepath.Join(ta.Path(), "f"), &st)
	tb, err := s.ImportDir(ctx, b, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st2 unix.Stat_t
	unix.Lstat(filepath.Join(tb.Path(), "g"), &st2)
	if st2.Ino != before || st2.Ctim != st.Ctim && st2.Nlink != 3 {
		t.Error("existing object rewritten")
	}
}

func TestProgress(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": strings.Repeat("a", 1000), "b": strings.Repeat("b", 3000)})
	var mu sync.Mutex
	var last, total int64
	_, err := s.ImportDir(ctx, d, ImportOptions{Progress: func(done, tot int64) {
		mu.Lock()
		last, total = done, tot
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if last != 4000 || total != 4000 {
		t.Errorf("progress ended at %d/%d", last, total)
	}
}

func TestOverlayMountOptions(t *testing.T) {
	tr := &Tree{ID: "x", path: "/s/trees/x/rootfs"}
	src, typ, data, err := OverlayMount(tr, "/c/upper", "/c/work")
	if err != nil || src != "overlay" || typ != "overlay" || data != "lowerdir=/s/trees/x/rootfs,upperdir=/c/upper,workdir=/c/work" {
		t.Errorf("%s %s %s %v", src, typ, data, err)
	}
	if _, _, _, err := OverlayMount(tr, "/c/up,per", "/c/work"); err == nil {
		t.Error("comma in path accepted")
	}
}

// TestOverlayWriteDoesNotReachObject mounts a tree as overlay lower and
// writes through it.
func TestOverlayWriteDoesNotReachObject(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"etc/conf": "original"})
	tr, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := t.TempDir()
	for _, p := range []string{"upper", "work", "fre-merged"} {
		os.Mkdir(filepath.Join(c, p), 0o755)
	}
	src, typ, data, err := OverlayMount(tr, filepath.Join(c, "upper"), filepath.Join(c, "work"))
	if err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(c, "fre-merged")
	if err := unix.Mount(src, merged, typ, 0, data); err != nil {
		t.Skipf("overlay mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(merged, "etc/conf"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(tr.Path(), "etc/conf")); string(got) != "original" {
		t.Errorf("write through overlay reached the shared object: %q", got)
	}
	res, _ := s.Verify(ctx)
	if len(res.Corrupt) != 0 {
		t.Errorf("verify after overlay write: %+v", res.Corrupt)
	}
}

func TestImportDirThroughSymlink(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"real/a": "1"})
	os.Symlink("real", filepath.Join(d, "rootfs"))
	tr, err := s.ImportDir(ctx, filepath.Join(d, "rootfs"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tr.Path(), "a")); err != nil {
		t.Error(err)
	}
}

func TestImmutableLowerDirsSkipWalk(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "1", "b/c": "2"})
	t1, err := s.ImportLowerDirs(ctx, []string{d}, ImportOptions{Immutable: true})
	if err != nil {
		t.Fatal(err)
	}
	// A change below the top dir is not seen: the caller promised there is none.
	os.WriteFile(filepath.Join(d, "b/c"), []byte("changed"), 0o644)
	t2, err := s.ImportLowerDirs(ctx, []string{d}, ImportOptions{Immutable: true})
	if err != nil || !t2.Cached || t2.ID != t1.ID {
		t.Fatalf("immutable re-import: %v cached=%v", err, t2 != nil && t2.Cached)
	}
	// Without the promise the walk sees it.
	t3, err := s.ImportLowerDirs(ctx, []string{d}, ImportOptions{})
	if err != nil || t3.Cached {
		t.Fatalf("full re-import: %v cached=%v", err, t3 != nil && t3.Cached)
	}
}

// Copies that differ only in directory mtimes (cp -r, another unpacker)
// are one image: one tree. With KeyMtime the mtimes are the image's own.
func TestCopiesWithOtherDirMtimesShareTree(t *testing.T) {
	for _, keyMtime := range []bool{false, true} {
		s := newStore(t, func(o *Options) { o.KeyMtime = keyMtime })
		a, b := t.TempDir(), t.TempDir()
		for i, d := range []string{a, b} {
			writeFiles(t, d, map[string]string{"x": "1", "y/z": "2"})
			os.Chtimes(filepath.Join(d, "x"), time.Unix(5, 0), time.Unix(5, 0))
			os.Chtimes(filepath.Join(d, "y/z"), time.Unix(5, 0), time.Unix(5, 0))
			for _, p := range []string{d, filepath.Join(d, "y")} {
				os.Chtimes(p, time.Unix(int64(7+i), 0), time.Unix(int64(7+i), 0))
			}
		}
		ta, err := s.ImportDir(ctx, a, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tb, err := s.ImportDir(ctx, b, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if same := ta.ID == tb.ID; same == keyMtime {
			t.Errorf("KeyMtime %v: copies with other dir mtimes: same tree %v", keyMtime, same)
		}
	}
}

// A change that keeps size and mtime (a rewrite in place, then touch -r;
// a chmod) deep in a cached tree is still seen: ctime is fingerprinted.
func TestCachedImportSeesInPlaceChange(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	files := map[string]string{"top": "0"}
	for i := 0; i < 40; i++ {
		files[filepath.Join("d", strings.Repeat("s/", i%7), "f"+string(rune('a'+i%26))+strings.Repeat("x", i))] = "content"
	}
	writeFiles(t, d, files)
	t1, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(d, "d/s/s/fe"+strings.Repeat("x", 30))
	if _, err := os.Stat(victim); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(victim)
	if err := os.WriteFile(victim, []byte("CONTENT"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(victim, fi.ModTime(), fi.ModTime())
	t2, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if t2.Cached || t2.ID == t1.ID {
		t.Fatal("same-size same-mtime rewrite served from the cache")
	}
	b, _ := os.ReadFile(filepath.Join(t2.Path(), "d/s/s/fe"+strings.Repeat("x", 30)))
	if string(b) != "CONTENT" {
		t.Fatalf("tree has %q", b)
	}
	if err := os.Chmod(filepath.Join(d, "top"), 0o600); err != nil {
		t.Fatal(err)
	}
	t3, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if t3.Cached || t3.ID == t2.ID {
		t.Fatal("chmod served from the cache")
	}
}
