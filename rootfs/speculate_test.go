package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Speculate bets on a directory's last import; check proves the bet or
// reports ErrStale, for a change of content, metadata or entries.
func TestSpeculate(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "1", "b/c": "2"})
	if _, _, ok, err := s.Speculate(ctx, d, ImportOptions{}); ok || err != nil {
		t.Fatalf("speculation before any import: ok=%v err=%v", ok, err)
	}
	t1, err := s.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t2, check, ok, err := s.Speculate(ctx, d, ImportOptions{Ref: "c1"})
	if err != nil || !ok || t2.ID != t1.ID || t2.Path() != t1.Path() {
		t.Fatalf("speculation after an import: ok=%v err=%v tree %+v, want %s", ok, err, t2, t1.ID)
	}
	if refs := s.refs(t1.ID); len(refs) != 1 || refs[0] != "c1" {
		t.Fatalf("speculated tree held by %v, want c1", refs)
	}
	if err := check(); err != nil {
		t.Fatalf("check of an unchanged dir: %v", err)
	}
	s.Release(t1.ID, "c1")

	for _, tc := range []struct {
		name   string
		change func() error
	}{
		{"content", func() error { return os.WriteFile(filepath.Join(d, "b/c"), []byte("22"), 0o644) }},
		{"mode", func() error { return os.Chmod(filepath.Join(d, "a"), 0o600) }},
		{"new file", func() error { return os.WriteFile(filepath.Join(d, "b/new"), nil, 0o644) }},
		{"removed", func() error { return os.Remove(filepath.Join(d, "b/new")) }},
		// Same size, and the mtime put back: ctime still moves.
		{"same size, mtime kept", func() error {
			p := filepath.Join(d, "b/c")
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte("33"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(p, time.Time{}, fi.ModTime())
		}},
	} {
		name := tc.name
		_, check, ok, err := s.Speculate(ctx, d, ImportOptions{})
		if !ok || err != nil {
			t.Fatalf("%s: no speculation (%v)", name, err)
		}
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := check(); !errors.Is(err, ErrStale) {
			t.Errorf("%s: check %v, want ErrStale", name, err)
		}
		// The import that follows a lost bet records the new state.
		t3, err := s.ImportDir(ctx, d, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t4, check, ok, _ := s.Speculate(ctx, d, ImportOptions{})
		if !ok || t4.ID != t3.ID || check() != nil {
			t.Errorf("%s: after re-import, speculation ok=%v tree %v want %s", name, ok, t4, t3.ID)
		}
	}
}

// A hint whose tree GC removed is no bet; the hint goes with it.
func TestSpeculateAfterGC(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a": "1"})
	if _, err := s.ImportDir(ctx, d, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.Speculate(ctx, d, ImportOptions{Ref: "c1"}); ok || err != nil {
		t.Fatalf("speculation on a collected tree: ok=%v err=%v", ok, err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.root, hintsDir)); len(left) != 0 {
		t.Errorf("GC left %d hints", len(left))
	}
}
