package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func noAutoGC(o *Options) { o.Keep = &GCOptions{KeepUnused: -1} }

// importUsed imports a tree of its own files (size bytes of content) held
// by ref, then releases it, and dates its last use ago.
func importUsed(t *testing.T, s *Store, name string, size int, ago time.Duration) *Tree {
	t.Helper()
	d := t.TempDir()
	writeFiles(t, d, map[string]string{name: strings.Repeat(name[:1], size)})
	tr, err := s.ImportDir(ctx, d, ImportOptions{Ref: "c-" + name})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(tr.ID, "c-"+name); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-ago)
	if err := os.Chtimes(filepath.Join(s.Root(), refsDir, tr.ID), when, when); err != nil {
		t.Fatal(err)
	}
	return tr
}

func treeIDs(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tr := range list {
		out[tr.ID] = true
	}
	return out
}

// GC keeps the import cache by count, age and size: the most recently
// used unused trees, newest first, while every bound holds.
func TestGCKeepsRecentlyUsed(t *testing.T) {
	s := newStore(t, noAutoGC)
	t1 := importUsed(t, s, "a1", 10, 4*time.Hour)
	t2 := importUsed(t, s, "b2", 10, 3*time.Hour)
	t3 := importUsed(t, s, "c3", 50, 2*time.Hour)
	t4 := importUsed(t, s, "d4", 100, time.Hour)
	held := t.TempDir()
	writeFiles(t, held, map[string]string{"e5": "held"})
	t5, err := s.ImportDir(ctx, held, ImportOptions{Ref: "running"})
	if err != nil {
		t.Fatal(err)
	}

	r, err := s.GCWith(ctx, GCOptions{KeepUnused: 3, MaxAge: 150 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Trees != 2 || r.Kept != 2 || r.Objects != 2 {
		t.Errorf("gc by count and age: %+v, want t1 and t2 (and their objects) removed, 2 kept", r)
	}
	if ids := treeIDs(t, s); len(ids) != 3 || !ids[t3.ID] || !ids[t4.ID] || !ids[t5.ID] || ids[t1.ID] || ids[t2.ID] {
		t.Errorf("trees after: %v", ids)
	}
	r, err = s.GCWith(ctx, GCOptions{KeepUnused: 5, MaxUnusedSize: 120})
	if err != nil {
		t.Fatal(err)
	}
	if ids := treeIDs(t, s); r.Trees != 1 || r.Kept != 1 || !ids[t4.ID] || ids[t3.ID] || !ids[t5.ID] {
		t.Errorf("gc by size: %+v, trees %v: want t3 removed (100+50 > 120)", r, ids)
	}
	// The zero value keeps no unused tree; a held one always stays.
	if r, err := s.GC(ctx); err != nil || r.Trees != 1 || r.Kept != 0 {
		t.Errorf("gc: %+v, %v", r, err)
	}
	if ids := treeIDs(t, s); len(ids) != 1 || !ids[t5.ID] {
		t.Errorf("trees after a full gc: %v", ids)
	}
}

// An import that makes a new tree applies the store's bound: the store
// holds at most Keep.KeepUnused unused trees, the newest, plus the held.
func TestImportAppliesBound(t *testing.T) {
	s := newStore(t, func(o *Options) { o.Keep = &GCOptions{KeepUnused: 2} })
	held := t.TempDir()
	writeFiles(t, held, map[string]string{"held": "h"})
	th, err := s.ImportDir(ctx, held, ImportOptions{Ref: "running"})
	if err != nil {
		t.Fatal(err)
	}
	var last []string
	for i, name := range []string{"p", "q", "r", "s"} {
		d := t.TempDir()
		writeFiles(t, d, map[string]string{name: strings.Repeat(name, 10+i)})
		tr, err := s.ImportDir(ctx, d, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Each import is the newest: date the earlier ones back.
		when := time.Now().Add(-time.Duration(10-i) * time.Minute)
		os.Chtimes(filepath.Join(s.treeDir(tr.ID), metaFile), when, when)
		last = append(last, tr.ID)
	}
	ids := treeIDs(t, s)
	if len(ids) != 3 || !ids[th.ID] || !ids[last[2]] || !ids[last[3]] {
		t.Fatalf("trees after 4 imports under a bound of 2: %v (want held + the last two)", ids)
	}
	df, err := s.DF(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if df.Objects != 3 || df.UnusedTrees != 2 || df.LiveTrees != 1 {
		t.Errorf("df: %+v", df)
	}
}

// df says what is live and what gc would free.
func TestDFReclaimable(t *testing.T) {
	s := newStore(t, noAutoGC)
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, map[string]string{"shared": "libc", "only-a": "aaa"})
	writeFiles(t, b, map[string]string{"shared": "libc", "only-b": "bbbb"})
	if _, err := s.ImportDir(ctx, a, ImportOptions{Ref: "ctr-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportDir(ctx, b, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	df, err := s.DF(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if df.LiveTrees != 1 || df.UnusedTrees != 1 || df.UnusedLogical != 8 || df.ReclaimableObjects != 1 || df.Reclaimable != 4 {
		t.Errorf("df: %+v, want only-b (4 bytes) reclaimable", df)
	}
	r, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != df.Reclaimable {
		t.Errorf("gc freed %d bytes, df said %d", r.Bytes, df.Reclaimable)
	}
	if df, _ := s.DF(ctx); df.Reclaimable != 0 || df.UnusedTrees != 0 {
		t.Errorf("df after gc: %+v", df)
	}
}

// A store on a full file system fails an import with ENOSPC and is whole
// afterwards: no tree, no object, nothing in the ingest area; verify
// finds nothing wrong and the next import that fits succeeds.
func TestImportOnFullDisk(t *testing.T) {
	requireRoot(t)
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("fre-test-full", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	s := newStore(t, func(o *Options) { o.Root = filepath.Join(mnt, "store") })
	small := t.TempDir()
	writeFiles(t, small, map[string]string{"etc/hostname": "fre\n"})
	if _, err := s.ImportDir(ctx, small, ImportOptions{Ref: "before"}); err != nil {
		t.Fatal(err)
	}
	big := t.TempDir()
	writeFiles(t, big, map[string]string{"a": strings.Repeat("x", 600<<10), "b": strings.Repeat("y", 600<<10), "c": "z"})
	_, err := s.ImportDir(ctx, big, ImportOptions{Ref: "big"})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("import onto a full store: %v, want ENOSPC", err)
	}
	if ids := treeIDs(t, s); len(ids) != 1 {
		t.Errorf("trees after the failed import: %v", ids)
	}
	if n := countEntries(t, filepath.Join(s.Root(), ingestDir)); n != 0 {
		t.Errorf("%d entries left in ingest", n)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != 1 {
		t.Errorf("%d objects after the failed import, want the first import's 1", n)
	}
	if v, err := s.Verify(ctx); err != nil || len(v.Corrupt) != 0 {
		t.Errorf("verify: %+v, %v", v, err)
	}
	other := t.TempDir()
	writeFiles(t, other, map[string]string{"etc/motd": "hi\n"})
	if _, err := s.ImportDir(ctx, other, ImportOptions{Ref: "after"}); err != nil {
		t.Fatalf("an import that fits, after: %v", err)
	}
}
