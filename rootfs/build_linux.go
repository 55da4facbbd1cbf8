package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/quickjson"
)

// ImportOptions tune one import.
type ImportOptions struct {
	// Progress, if set, is called with bytes done out of total: file bytes
	// hashed for directories, compressed bytes read for layers.
	Progress func(done, total int64)
	// Ref, if set, acquires the tree for this container ID before the
	// store lock is released, so GC cannot remove it in between.
	Ref string
	// Immutable declares that the directories never change once written
	// (containerd's committed snapshots): the cache is then keyed by the
	// directories' own identity (path, inode, mtime, ctime) and a repeat
	// import skips the walk over every entry. Directory imports only.
	Immutable bool
}

// lookupIndex returns the tree an input fingerprint was imported as.
func (s *Store) lookupIndex(fp string) *Tree {
	b, err := readSmall(filepath.Join(s.root, indexDir, fp))
	if err != nil || !validID(string(b)) {
		return nil
	}
	t, err := s.readTree(string(b))
	if err != nil {
		return nil
	}
	t.Cached = true
	return t
}

func (s *Store) writeIndex(imp *importer, fp, id string) error {
	tmp := imp.tempName("index-")
	if err := os.WriteFile(tmp, []byte(id), 0o600); err != nil {
		return fmt.Errorf("rootfs: write index: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.root, indexDir, fp)); err != nil {
		return fmt.Errorf("rootfs: write index: %w", err)
	}
	return nil
}

func (s *Store) readTree(id string) (*Tree, error) {
	b, err := readSmall(filepath.Join(s.treeDir(id), metaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("rootfs: tree %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("rootfs: tree %s: %w", id, err)
	}
	t := &Tree{}
	if err := quickjson.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("rootfs: tree %s: bad %s: %w", id, metaFile, err)
	}
	t.path = filepath.Join(s.treeDir(id), rootfsDir)
	return t, nil
}

// readSmall reads a small file of the store (an index entry, a tree's
// meta.json) with plain system calls: os.ReadFile's poller registration
// and fstat are a third of the calls of a cached import.
func readSmall(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// manifestID names a directory tree by its merged content, so identical
// copies of a rootfs share one tree. Mtimes are left out (unless keyMtime):
// a copy made without preserving them (cp -r, an unpack by another tool)
// is still the same image, and a file's mtime is its object's anyway; such
// copies see the directory mtimes of the first import.
func manifestID(root *node, keyMtime bool) string {
	h := sha256.New()
	var rec func(rel string, n *node)
	rec = func(rel string, n *node) {
		m := n.meta
		if n.kind == kindReg {
			m = n.file.meta
			m.mtime = 0 // shared with the object, not the tree's
		}
		if !keyMtime {
			m.mtime = 0
		}
		fmt.Fprintf(h, "%x %d %o %d %d %d", rel, n.kind, m.mode, m.uid, m.gid, m.mtime)
		xs := make([]string, 0, len(m.xattrs))
		for k := range m.xattrs {
			xs = append(xs, k)
		}
		sort.Strings(xs)
		for _, k := range xs {
			fmt.Fprintf(h, " %x=%x", k, m.xattrs[k])
		}
		switch n.kind {
		case kindReg:
			fmt.Fprintf(h, " %s", n.file.key)
		case kindSymlink:
			fmt.Fprintf(h, " %x", n.target)
		}
		h.Write([]byte{'\n'})
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			rec(path.Join(rel, name), n.children[name])
		}
	}
	rec(".", root)
	return hex.EncodeToString(h.Sum(nil))
}

// finish turns a checked, hashed merge tree into a committed tree named id,
// records the input fingerprints fps for it, and acquires ref.
func (s *Store) finish(ctx context.Context, imp *importer, t *Tree, root *node, fps []string, ref string) (*Tree, error) {
	if existing, err := s.readTree(t.ID); err == nil {
		// Same content under another input: nothing to build.
		existing.Cached = true
		return s.record(imp, existing, fps, ref)
	}
	keys := map[string]bool{}
	walk(root, ".", func(_ string, n *node) error {
		if n.kind == kindReg {
			keys[n.file.key] = true
		}
		return nil
	})
	// The barrier: new objects' data is on disk before any name for them.
	if err := s.syncfs(); err != nil {
		return nil, err
	}
	if err := imp.commit(keys); err != nil {
		return nil, err
	}
	staging := filepath.Join(imp.dir, "tree")
	if err := os.Mkdir(staging, 0o700); err != nil {
		return nil, fmt.Errorf("rootfs: build tree %s: %w", t.ID, err)
	}
	if err := s.materialize(ctx, root, filepath.Join(staging, rootfsDir), t); err != nil {
		return nil, fmt.Errorf("rootfs: build tree %s: %w", t.ID, err)
	}
	t.Created = time.Now().UTC()
	b, _ := json.MarshalIndent(t, "", "  ")
	if err := os.WriteFile(filepath.Join(staging, metaFile), b, 0o600); err != nil {
		return nil, fmt.Errorf("rootfs: build tree %s: %w", t.ID, err)
	}
	if err := s.syncfs(); err != nil {
		return nil, err
	}
	dst := s.treeDir(t.ID)
	if err := os.Rename(staging, dst); err != nil {
		if !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
			return nil, fmt.Errorf("rootfs: commit tree %s: %w", t.ID, err)
		}
		// Another import committed the same tree first: use it.
		existing, rerr := s.readTree(t.ID)
		if rerr != nil {
			return nil, rerr
		}
		existing.Cached = true
		return s.record(imp, existing, fps, ref)
	}
	t.path = filepath.Join(dst, rootfsDir)
	return s.record(imp, t, fps, ref)
}

func (s *Store) record(imp *importer, t *Tree, fps []string, ref string) (*Tree, error) {
	for _, fp := range fps {
		if err := s.writeIndex(imp, fp, t.ID); err != nil {
			return nil, err
		}
	}
	if ref != "" {
		if err := s.acquireLocked(t.ID, ref); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// materialize creates the merge tree on disk at dir: directories, symlinks
// and fifos are made, regular files linked to their objects in parallel,
// then directory metadata is set children first (so mtimes and read-only
// modes stick).
func (s *Store) materialize(ctx context.Context, root *node, dir string, t *Tree) error {
	type link struct {
		obj, dst string
		f        *fileRef
	}
	var links []link
	var dirs []string
	var dirNodes []*node
	err := walk(root, ".", func(rel string, n *node) error {
		p := filepath.Join(dir, rel)
		switch n.kind {
		case kindDir:
			t.Dirs++
			dirs = append(dirs, p)
			dirNodes = append(dirNodes, n)
			return os.Mkdir(p, 0o700)
		case kindReg:
			t.Files++
			t.LogicalSize += n.file.size
			links = append(links, link{s.objectPath(n.file.key), p, n.file})
			return nil
		case kindSymlink:
			if err := os.Symlink(n.target, p); err != nil {
				return err
			}
			return s.setPathMeta(p, &n.meta, true)
		case kindFifo:
			if err := unix.Mkfifo(p, 0o600); err != nil {
				return fmt.Errorf("mkfifo %s: %w", p, err)
			}
			return s.setPathMeta(p, &n.meta, false)
		}
		return nil
	})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Workers)
	chunk := 64
	for i := 0; i < len(links); i += chunk {
		part := links[i:min(i+chunk, len(links))]
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, l := range part {
				err := os.Link(l.obj, l.dst)
				if errors.Is(err, unix.EMLINK) {
					s.warnf("rootfs: object %s has too many links; copying it into the tree at %s", filepath.Base(l.obj), l.dst)
					err = s.copyObject(l.obj, l.dst, &l.f.meta)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := s.setPathMeta(dirs[i], &dirNodes[i].meta, false); err != nil {
			return err
		}
	}
	return nil
}

// setPathMeta sets metadata on something this import created in its
// staging tree (no symlink can be on the way). Symlinks and fifos keep no
// xattrs (user.* is not allowed on them).
func (s *Store) setPathMeta(p string, m *meta, symlink bool) error {
	if !s.rootless {
		if err := os.Lchown(p, int(m.uid), int(m.gid)); err != nil {
			return err
		}
	}
	if !symlink {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			for k, v := range m.xattrs {
				if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
					return fmt.Errorf("set xattr %s on %s: %w", k, p, err)
				}
			}
		}
		if err := unix.Chmod(p, m.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(m.mtime), unix.NsecToTimespec(m.mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime of %s: %w", p, err)
	}
	return nil
}

// copyObject puts a private copy of an object into a tree (EMLINK).
func (s *Store) copyObject(obj, dst string, m *meta) error {
	src, err := os.Open(obj)
	if err != nil {
		return err
	}
	defer src.Close()
	return s.writeObject(dst, m, nil, func(f *os.File) ([]byte, error) {
		if err := unix.IoctlFileClone(int(f.Fd()), int(src.Fd())); err == nil {
			return nil, nil
		}
		_, err := io.Copy(f, src)
		return nil, err
	})
}
