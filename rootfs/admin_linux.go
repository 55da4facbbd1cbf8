package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// List returns the store's trees, sorted by creation time, with the
// containers that hold them.
func (s *Store) List(ctx context.Context) ([]*Tree, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.listLocked()
}

func (s *Store) listLocked() ([]*Tree, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, treesDir))
	if err != nil {
		return nil, fmt.Errorf("rootfs: list trees in %s: %w", s.root, err)
	}
	var out []*Tree
	for _, e := range ents {
		t, err := s.readTree(e.Name())
		if err != nil {
			continue // being removed by GC, or not a tree
		}
		t.Refs = s.refs(t.ID)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// forEachObject calls fn for every object with its key and lstat.
func (s *Store) forEachObject(fn func(key, p string, st *unix.Stat_t) error) error {
	base := filepath.Join(s.root, objectsDir)
	prefixes, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("rootfs: list objects in %s: %w", s.root, err)
	}
	for _, pre := range prefixes {
		dir := filepath.Join(base, pre.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("rootfs: list objects in %s: %w", dir, err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return fmt.Errorf("rootfs: stat object %s: %w", p, err)
			}
			if err := fn(e.Name(), p, &st); err != nil {
				return err
			}
		}
	}
	return nil
}

// DFResult is the store's space use.
type DFResult struct {
	Trees       int     `json:"trees"`
	Objects     int64   `json:"objects"`
	LogicalSize int64   `json:"logicalSize"` // sum over trees of their files' sizes
	StoredSize  int64   `json:"storedSize"`  // sum over objects of their sizes
	DiskUsage   int64   `json:"diskUsage"`   // allocated blocks of the objects
	DedupRatio  float64 `json:"dedupRatio"`  // LogicalSize / StoredSize
}

// DF reports logical size, stored size and their ratio.
func (s *Store) DF(ctx context.Context) (DFResult, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return DFResult{}, err
	}
	defer unlock()
	var r DFResult
	trees, err := s.listLocked()
	if err != nil {
		return r, err
	}
	for _, t := range trees {
		r.Trees++
		r.LogicalSize += t.LogicalSize
	}
	err = s.forEachObject(func(_, _ string, st *unix.Stat_t) error {
		r.Objects++
		r.StoredSize += st.Size
		r.DiskUsage += st.Blocks * 512
		return ctx.Err()
	})
	if r.StoredSize > 0 {
		r.DedupRatio = float64(r.LogicalSize) / float64(r.StoredSize)
	}
	return r, err
}

// Corruption is one object whose content or metadata no longer matches
// its key.
type Corruption struct {
	Key    string `json:"key"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// VerifyResult lists what Verify found.
type VerifyResult struct {
	Objects int64        `json:"objects"`
	Bytes   int64        `json:"bytes"`
	Corrupt []Corruption `json:"corrupt"`
}

// Verify rehashes every object and recomputes its key from its content and
// metadata. A corrupt object is reported, not repaired: every tree that
// links it shows the damage, so the affected images must be re-imported
// (remove the object and the trees, then import again).
func (s *Store) Verify(ctx context.Context) (VerifyResult, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return VerifyResult{}, err
	}
	defer unlock()
	var (
		mu  sync.Mutex
		res VerifyResult
	)
	bad := func(key, p, why string) {
		mu.Lock()
		res.Corrupt = append(res.Corrupt, Corruption{key, p, why})
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Workers)
	err = s.forEachObject(func(key, p string, st *unix.Stat_t) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		res.Objects++
		res.Bytes += st.Size
		stc := *st
		g.Go(func() error {
			if stc.Mode&unix.S_IFMT != unix.S_IFREG {
				bad(key, p, "not a regular file")
				return nil
			}
			f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				bad(key, p, err.Error())
				return nil
			}
			defer f.Close()
			sum, n, err := hashReader(f)
			if err != nil {
				bad(key, p, err.Error())
				return nil
			}
			x, err := readXattrs(p)
			if err != nil {
				bad(key, p, err.Error())
				return nil
			}
			m := meta{mode: stc.Mode & 0o7777, uid: stc.Uid, gid: stc.Gid, mtime: stc.Mtim.Nano(), xattrs: x}
			for name := range m.xattrs {
				if !s.keepXattr(name) {
					delete(m.xattrs, name)
				}
			}
			if n != stc.Size {
				bad(key, p, fmt.Sprintf("size changed from %d to %d while reading", stc.Size, n))
			} else if got := s.objectKey(sum, &m); got != key {
				bad(key, p, fmt.Sprintf("content or metadata does not match the key (recomputed %s)", got))
			}
			return nil
		})
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	sort.Slice(res.Corrupt, func(i, j int) bool { return res.Corrupt[i].Key < res.Corrupt[j].Key })
	return res, err
}

// GCResult says what GC removed.
type GCResult struct {
	Trees        int   `json:"trees"`
	Objects      int64 `json:"objects"`
	Bytes        int64 `json:"bytes"`
	IngestLeft   int   `json:"ingest"` // leftovers of crashed imports
	IndexEntries int   `json:"indexEntries"`
}

// GC removes trees no container holds, then every object only the store
// links (st_nlink == 1), then what crashed imports left in the ingest area.
// It holds the store lock exclusively, so it waits for running imports and
// acquisitions and they wait for it.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	var r GCResult
	unlock, err := s.lock(true)
	if err != nil {
		return r, err
	}
	defer unlock()

	// No import runs: anything in ingest is a crashed import's.
	ingest := filepath.Join(s.root, ingestDir)
	ents, _ := os.ReadDir(ingest)
	for _, e := range ents {
		if err := removeAll(filepath.Join(ingest, e.Name())); err != nil {
			return r, fmt.Errorf("rootfs: gc %s: %w", ingest, err)
		}
		r.IngestLeft++
	}

	treeEnts, err := os.ReadDir(filepath.Join(s.root, treesDir))
	if err != nil {
		return r, fmt.Errorf("rootfs: gc %s: %w", s.root, err)
	}
	live := map[string]bool{}
	for _, e := range treeEnts {
		id := e.Name()
		if len(s.refs(id)) > 0 {
			live[id] = true
			continue
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		// Rename first: a tree is either whole in trees/ or gone.
		doomed := filepath.Join(ingest, "gc-"+id)
		if err := os.Rename(s.treeDir(id), doomed); err != nil {
			return r, fmt.Errorf("rootfs: gc tree %s: %w", id, err)
		}
		if err := removeAll(doomed); err != nil {
			return r, fmt.Errorf("rootfs: gc tree %s: %w", id, err)
		}
		r.Trees++
	}
	// Refs of trees that no longer exist (removed by hand).
	refEnts, _ := os.ReadDir(filepath.Join(s.root, refsDir))
	for _, e := range refEnts {
		if _, err := os.Stat(s.treeDir(e.Name())); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(filepath.Join(s.root, refsDir, e.Name()))
		}
	}
	hintEnts, _ := os.ReadDir(filepath.Join(s.root, hintsDir))
	for _, e := range hintEnts {
		p := filepath.Join(s.root, hintsDir, e.Name())
		if b, err := readSmall(p); err == nil {
			if _, id, ok := strings.Cut(string(b), " "); ok && live[id] {
				continue
			}
		}
		os.Remove(p)
	}
	idxEnts, _ := os.ReadDir(filepath.Join(s.root, indexDir))
	for _, e := range idxEnts {
		p := filepath.Join(s.root, indexDir, e.Name())
		b, err := os.ReadFile(p)
		if err == nil && live[strings.TrimSpace(string(b))] {
			continue
		}
		if err := os.Remove(p); err == nil {
			r.IndexEntries++
		}
	}
	err = s.forEachObject(func(_, p string, st *unix.Stat_t) error {
		if st.Nlink != 1 {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("rootfs: gc object %s: %w", p, err)
		}
		r.Objects++
		r.Bytes += st.Size
		return ctx.Err()
	})
	return r, err
}
