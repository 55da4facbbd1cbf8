package rootfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestGCRemovesOnlyUnreferenced(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, map[string]string{"shared": "libc", "only-a": "aaa"})
	writeFiles(t, b, map[string]string{"shared": "libc", "only-b": "bbbb"})
	ta, err := s.ImportDir(ctx, a, ImportOptions{Ref: "ctr-a"})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := s.ImportDir(ctx, b, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != 3 {
		t.Fatalf("%d objects, want 3", n)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Trees != 1 || res.Objects != 1 || res.Bytes != 4 {
		t.Errorf("gc removed %+v, want tree b and its own object", res)
	}
	if _, err := s.Tree(tb.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("tree b still there: %v", err)
	}
	for _, p := range []string{"shared", "only-a"} {
		if got, err := os.ReadFile(filepath.Join(ta.Path(), p)); err != nil || len(got) == 0 {
			t.Errorf("%s of the held tree: %v", p, err)
		}
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != 2 {
		t.Errorf("%d objects after gc, want 2", n)
	}
	// The index entry of b went with it: importing b again builds it again.
	tb2, err := s.ImportDir(ctx, b, ImportOptions{})
	if err != nil || tb2.Cached {
		t.Fatalf("re-import after gc: %v cached=%v", err, tb2 != nil && tb2.Cached)
	}
	list, _ := s.List(ctx)
	if len(list) != 2 {
		t.Fatalf("list: %d trees", len(list))
	}
	for _, tr := range list {
		if tr.ID == ta.ID && (len(tr.Refs) != 1 || tr.Refs[0] != "ctr-a") {
			t.Errorf("refs of a: %v", tr.Refs)
		}
	}
	if err := s.Release(ta.ID, "ctr-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ta.ID, "ctr-a"); err != nil {
		t.Errorf("second release: %v", err)
	}
	res, err = s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Trees != 2 || res.Objects != 3 {
		t.Errorf("final gc %+v", res)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != 0 {
		t.Errorf("%d objects left", n)
	}
	if err := s.Acquire(ta.ID, "late"); !errors.Is(err, ErrNotFound) {
		t.Errorf("acquire of a collected tree: %v", err)
	}
	if err := s.Acquire("../x", "c"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("bad id: %v", err)
	}
}

func TestGCCleansCrashedImport(t *testing.T) {
	s := newStore(t)
	os.MkdirAll(filepath.Join(s.Root(), ingestDir, "import-crashed", "tree"), 0o700)
	os.WriteFile(filepath.Join(s.Root(), ingestDir, "import-crashed", "obj-1"), []byte("half"), 0o600)
	res, err := s.GC(ctx)
	if err != nil || res.IngestLeft != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := countEntries(t, filepath.Join(s.Root(), ingestDir)); n != 0 {
		t.Errorf("ingest has %d entries", n)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "good", "b": "also good"})
	tr, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Verify(ctx)
	if err != nil || res.Objects != 2 || len(res.Corrupt) != 0 {
		t.Fatalf("clean store: %+v %v", res, err)
	}
	if err := os.WriteFile(filepath.Join(tr.Path(), "a"), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(tr.Path(), "b"), 0o600) // metadata corruption
	res, err = s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Corrupt) != 2 {
		t.Errorf("corrupt objects found: %+v", res.Corrupt)
	}
}

func TestDF(t *testing.T) {
	s := newStore(t)
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, map[string]string{"big": string(make([]byte, 1000)), "x": "1"})
	writeFiles(t, b, map[string]string{"big": string(make([]byte, 1000)), "y": "22"})
	s.ImportDir(ctx, a, ImportOptions{})
	s.ImportDir(ctx, b, ImportOptions{})
	df, err := s.DF(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if df.Trees != 2 || df.Objects != 3 || df.LogicalSize != 2003 || df.StoredSize != 1003 {
		t.Errorf("%+v", df)
	}
	if df.DedupRatio < 1.99 || df.DedupRatio > 2.0 {
		t.Errorf("ratio %v", df.DedupRatio)
	}
}

func TestConcurrentImportsGoroutines(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("d%d/f%d", i%5, i)] = fmt.Sprintf("content %d", i%20)
	}
	writeFiles(t, d, files)
	l := layer(t, "gzip", file("x", "content 1"), file("y", "layer only"))
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tr *Tree
			// Held, so the racing GC may not collect what the test counts.
			opts := ImportOptions{Ref: fmt.Sprintf("ctr%d", i)}
			if i%2 == 0 {
				tr, errs[i] = s.ImportDir(ctx, d, opts)
			} else {
				tr, errs[i] = s.ImportLayers(ctx, []string{l}, opts)
			}
			if tr != nil {
				ids[i] = tr.ID
			}
		}()
	}
	// GC racing the imports must not break them.
	wg.Add(1)
	go func() { defer wg.Done(); s.GC(ctx) }()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		if ids[i] != ids[i%2] {
			t.Errorf("import %d got tree %s, not %s", i, ids[i], ids[i%2])
		}
	}
	if n := countEntries(t, filepath.Join(s.Root(), treesDir)); n > 2 {
		t.Errorf("%d trees, want at most 2", n)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != 21 {
		t.Errorf("%d objects, want 21 (20 dir contents + 1 layer-only)", n)
	}
	if n := countEntries(t, filepath.Join(s.Root(), ingestDir)); n != 0 {
		t.Errorf("ingest not empty: %d", n)
	}
}

// TestHelperProcess is the child of TestConcurrentImportsProcesses.
func TestHelperProcess(t *testing.T) {
	root, src := os.Getenv("FRE_ROOTFS_STORE"), os.Getenv("FRE_ROOTFS_SRC")
	if root == "" {
		t.Skip("helper process only")
	}
	s, err := Open(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.ImportDir(ctx, src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("TREE", tr.ID)
}

func TestConcurrentImportsProcesses(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	d := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 300; i++ {
		files[fmt.Sprintf("d%d/f%d", i%7, i)] = fmt.Sprintf("content %d", i%100)
	}
	writeFiles(t, d, files)
	var cmds []*exec.Cmd
	outs := make([][]byte, 3)
	var wg sync.WaitGroup
	for i := range outs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FRE_ROOTFS_STORE="+root, "FRE_ROOTFS_SRC="+d)
		cmds = append(cmds, cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("helper %d: %v\n%s", i, err, out)
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	s, err := Open(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if n := countEntries(t, filepath.Join(root, treesDir)); n != 1 {
		t.Errorf("%d trees, want 1", n)
	}
	if n := countFiles(t, filepath.Join(root, objectsDir)); n != 100 {
		t.Errorf("%d objects, want 100", n)
	}
	if n := countEntries(t, filepath.Join(root, ingestDir)); n != 0 {
		t.Errorf("ingest not empty: %d", n)
	}
	res, err := s.Verify(ctx)
	if err != nil || len(res.Corrupt) != 0 {
		t.Errorf("verify: %+v %v", res, err)
	}
}
