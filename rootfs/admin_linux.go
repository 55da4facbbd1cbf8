package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

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
	// Live trees are held by a container (or a function image's ref);
	// unused ones are the import cache, which GC collects.
	LiveTrees     int   `json:"liveTrees"`
	UnusedTrees   int   `json:"unusedTrees"`
	UnusedLogical int64 `json:"unusedLogicalSize"`
	// Reclaimable is what `store gc` would free: the objects no live tree
	// links (their count, sizes and allocated blocks).
	ReclaimableObjects int64 `json:"reclaimableObjects"`
	Reclaimable        int64 `json:"reclaimableSize"`
	ReclaimableDisk    int64 `json:"reclaimableDiskUsage"`
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
	// The inodes live trees link: an object among them stays.
	live := map[uint64]bool{}
	for _, t := range trees {
		r.Trees++
		r.LogicalSize += t.LogicalSize
		if len(t.Refs) == 0 {
			r.UnusedTrees++
			r.UnusedLogical += t.LogicalSize
			continue
		}
		r.LiveTrees++
		err := filepath.WalkDir(t.Path(), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			live[st.Ino] = true
			return ctx.Err()
		})
		if err != nil {
			return r, fmt.Errorf("rootfs: df: tree %s: %w", t.ID, err)
		}
	}
	err = s.forEachObject(func(_, _ string, st *unix.Stat_t) error {
		r.Objects++
		r.StoredSize += st.Size
		r.DiskUsage += st.Blocks * 512
		if st.Nlink == 1 || !live[st.Ino] {
			r.ReclaimableObjects++
			r.Reclaimable += st.Size
			r.ReclaimableDisk += st.Blocks * 512
		}
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
	Kept         int   `json:"kept"`   // unused trees kept by the GCOptions
	IngestLeft   int   `json:"ingest"` // leftovers of crashed imports
	IndexEntries int   `json:"indexEntries"`
}

// GCOptions is what GC keeps of the trees no container holds: the import
// cache, so that the next container of an image finds its tree. Unused
// trees are ranked by when a container last held one (or, never held, by
// when it was made), newest first, and kept while all three bounds hold.
// The zero value keeps none.
type GCOptions struct {
	KeepUnused    int           // at most this many
	MaxAge        time.Duration // used within this long (0: any age)
	MaxUnusedSize int64         // their logical sizes add up to at most this (0: no bound)
}

// DefaultKeep is the automatic bound an import applies (Options.Keep):
// 16 unused trees, none unused for more than a week, 8 GiB of them.
var DefaultKeep = GCOptions{KeepUnused: 16, MaxAge: 7 * 24 * time.Hour, MaxUnusedSize: 8 << 30}

// GC removes trees no container holds, then every object only the store
// links (st_nlink == 1), then what crashed imports left in the ingest area.
// It holds the store lock exclusively, so it waits for running imports and
// acquisitions and they wait for it.
func (s *Store) GC(ctx context.Context) (GCResult, error) { return s.GCWith(ctx, GCOptions{}) }

// GCWith is GC keeping the unused trees keep allows.
func (s *Store) GCWith(ctx context.Context, keep GCOptions) (GCResult, error) {
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
	var unused []unusedTree
	for _, e := range treeEnts {
		id := e.Name()
		if len(s.refs(id)) > 0 {
			live[id] = true
			continue
		}
		unused = append(unused, s.unusedTree(id))
	}
	for _, u := range keepUnused(unused, keep, time.Now()) {
		live[u.id] = true
		r.Kept++
	}
	for _, u := range unused {
		if live[u.id] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		// Rename first: a tree is either whole in trees/ or gone.
		doomed := filepath.Join(ingest, "gc-"+u.id)
		if err := os.Rename(s.treeDir(u.id), doomed); err != nil {
			return r, fmt.Errorf("rootfs: gc tree %s: %w", u.id, err)
		}
		if err := removeAll(doomed); err != nil {
			return r, fmt.Errorf("rootfs: gc tree %s: %w", u.id, err)
		}
		os.Remove(filepath.Join(s.root, refsDir, u.id))
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

// unusedTree is a tree no container holds, with when it was last used.
type unusedTree struct {
	id   string
	used time.Time
	size int64
}

// unusedTree reads id's last use: its refs directory changes with every
// Acquire and Release; a tree never held is as old as its metadata.
func (s *Store) unusedTree(id string) unusedTree {
	u := unusedTree{id: id}
	if fi, err := os.Stat(filepath.Join(s.root, refsDir, id)); err == nil {
		u.used = fi.ModTime()
	} else if fi, err := os.Stat(filepath.Join(s.treeDir(id), metaFile)); err == nil {
		u.used = fi.ModTime()
	}
	if t, err := s.readTree(id); err == nil {
		u.size = t.LogicalSize
	}
	return u
}

// keepUnused picks, newest first, the unused trees keep allows.
func keepUnused(unused []unusedTree, keep GCOptions, now time.Time) []unusedTree {
	sorted := slices.Clone(unused)
	slices.SortFunc(sorted, func(a, b unusedTree) int { return b.used.Compare(a.used) })
	var out []unusedTree
	var size int64
	for _, u := range sorted {
		if len(out) >= keep.KeepUnused ||
			(keep.MaxAge > 0 && now.Sub(u.used) > keep.MaxAge) ||
			(keep.MaxUnusedSize > 0 && size+u.size > keep.MaxUnusedSize) {
			break
		}
		size += u.size
		out = append(out, u)
	}
	return out
}

// overBound reports whether the unused trees exceed keep (what an import
// checks before it collects).
func (s *Store) overBound(keep GCOptions) bool {
	ents, err := os.ReadDir(filepath.Join(s.root, treesDir))
	if err != nil {
		return false
	}
	var unused []unusedTree
	for _, e := range ents {
		if len(s.refs(e.Name())) == 0 {
			unused = append(unused, s.unusedTree(e.Name()))
		}
	}
	return len(keepUnused(unused, keep, time.Now())) < len(unused)
}

// bounded passes an import's result through, applying the automatic bound
// when it made a new tree.
func (s *Store) bounded(ctx context.Context) func(*Tree, error) (*Tree, error) {
	return func(t *Tree, err error) (*Tree, error) {
		if err == nil && !t.Cached {
			s.bound(ctx)
		}
		return t, err
	}
}

// bound applies the automatic bound after an import made a new tree.
func (s *Store) bound(ctx context.Context) {
	keep := DefaultKeep
	if s.opts.Keep != nil {
		keep = *s.opts.Keep
	}
	if keep.KeepUnused < 0 || !s.overBound(keep) {
		return
	}
	if _, err := s.GCWith(ctx, keep); err != nil {
		s.warnf("store: automatic gc: %v", err)
	}
}
