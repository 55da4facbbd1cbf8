package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

type scanEntry struct {
	rel string
	st  *unix.Stat_t // in its directory's listing
}

// scan lists a directory tree with one lstat per entry, parents before
// children, and feeds the fingerprint with what identifies each entry's
// current state: a changed file changes its mtime or ctime (ctime also
// moves on chmod, chown, xattr and link changes), a replaced one its inode.
//
// It is the whole cost of a cached import (every container start of an
// imported image), so it reads directories with raw getdents and fstatat
// relative to the directory's fd (no path lookups, no poller
// registration), and, once the tree has shown itself big, lists
// directories on up to workers goroutines (a small tree is done before a
// goroutine would be scheduled); the fingerprint is then fed in one fixed
// order.
func scan(root string, fp hash.Hash, workers int) ([]scanEntry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, fmt.Errorf("rootfs: scan %s: %w", root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("rootfs: scan %s: not a directory", root)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rootfs: scan %s: %w", root, err)
	}
	sc := &scanner{root: root, sem: make(chan struct{}, max(workers-1, 0))}
	top := &scanDir{}
	sc.wg.Add(1)
	sc.list(fd, ".", top)
	sc.wg.Wait()
	if sc.err != nil {
		return nil, sc.err
	}

	fmt.Fprintf(fp, "root %x %d\n", root, st.Dev)
	// Sized once and fed in one Write per entry: the walk is a cached
	// import's whole cost, paid in a fresh process whose every new heap
	// page is a fault.
	out := make([]scanEntry, 0, sc.seen.Load()+1)
	var buf []byte
	add := func(rel string, st *unix.Stat_t) {
		out = append(out, scanEntry{rel, st})
		buf = append(append(buf[:0], rel...), 0)
		for _, v := range [...]uint64{uint64(st.Mode), uint64(st.Size), uint64(st.Mtim.Nano()),
			uint64(st.Ctim.Nano()), st.Ino, uint64(st.Uid), uint64(st.Gid), st.Rdev, st.Nlink} {
			buf = binary.LittleEndian.AppendUint64(buf, v)
		}
		fp.Write(buf)
	}
	var rec func(rel string, d *scanDir)
	rec = func(rel string, d *scanDir) {
		for i, name := range d.names {
			crel := name
			if rel != "." {
				crel = rel + "/" + name
			}
			add(crel, &d.sts[i])
			if sub := d.subs[i]; sub != nil {
				rec(crel, sub)
			}
		}
	}
	add(".", &st)
	rec(".", top)
	return out, nil
}

// scanParallelAfter is how many entries a scan stats on one goroutine
// before it spreads over more.
const scanParallelAfter = 1024

// scanDir is one listed directory: its entries sorted by name, and the
// listing of each subdirectory.
type scanDir struct {
	names []string
	sts   []unix.Stat_t
	subs  []*scanDir
}

type scanner struct {
	root string
	sem  chan struct{} // a slot per extra goroutine
	seen atomic.Int64  // entries stat'd so far
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func (sc *scanner) fail(err error) {
	sc.mu.Lock()
	if sc.err == nil {
		sc.err = err
	}
	sc.mu.Unlock()
}

func (sc *scanner) failed() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.err != nil
}

// list fills d from the directory open at fd (rel below the root) and
// closes fd; subdirectories go to a free goroutine or are listed inline.
func (sc *scanner) list(fd int, rel string, d *scanDir) {
	defer sc.wg.Done()
	defer unix.Close(fd)
	if sc.failed() {
		return
	}
	errAt := func(name string, err error) {
		sc.fail(fmt.Errorf("rootfs: scan %s: %w", filepath.Join(sc.root, rel, name), err))
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			errAt("", err)
			return
		}
		if n <= 0 {
			break
		}
		_, _, d.names = unix.ParseDirent(buf[:n], -1, d.names)
	}
	sort.Strings(d.names)
	d.sts = make([]unix.Stat_t, len(d.names))
	d.subs = make([]*scanDir, len(d.names))
	// The names, NUL-terminated in one buffer: unix.Fstatat would copy each
	// into a new allocation of its own.
	n := 0
	for _, name := range d.names {
		n += len(name) + 1
	}
	cnames := make([]byte, 0, n)
	for i, name := range d.names {
		off := len(cnames)
		cnames = append(append(cnames, name...), 0)
		if _, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(fd), uintptr(unsafe.Pointer(&cnames[off])),
			uintptr(unsafe.Pointer(&d.sts[i])), unix.AT_SYMLINK_NOFOLLOW, 0, 0); e != 0 {
			errAt(name, e)
			return
		}
	}
	big := sc.seen.Add(int64(len(d.names))) > scanParallelAfter
	for i, name := range d.names {
		if d.sts[i].Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		// O_NOFOLLOW: the entry was a directory a moment ago; if it was
		// swapped for a symlink, fail rather than leave the tree.
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			errAt(name, err)
			return
		}
		sub := &scanDir{}
		d.subs[i] = sub
		crel := name
		if rel != "." {
			crel = rel + "/" + name
		}
		sc.wg.Add(1)
		if big {
			select {
			case sc.sem <- struct{}{}:
				go func() {
					defer func() { <-sc.sem }()
					sc.list(cfd, crel, sub)
				}()
				continue
			default:
			}
		}
		sc.list(cfd, crel, sub)
	}
}

// ImportDir imports a directory tree (a bundle's rootfs, an unpacked
// layer) as one image. Devices are refused, sockets skipped. A directory
// whose fingerprint was imported before returns its tree unread.
func (s *Store) ImportDir(ctx context.Context, dir string, opts ImportOptions) (*Tree, error) {
	return s.bounded(ctx)(s.importDirs(ctx, "dir", []string{dir}, opts))
}

// ImportLowerDirs imports overlay lower directories, top first as in
// overlay's lowerdir= option (e.g. containerd's snapshot mounts), merged with
// overlay semantics: a 0/0 character device is a whiteout, a directory with
// trusted.overlay.opaque=y (or user.overlay.opaque=y) hides the layers below.
func (s *Store) ImportLowerDirs(ctx context.Context, lowerdirs []string, opts ImportOptions) (*Tree, error) {
	if len(lowerdirs) == 0 {
		return nil, fmt.Errorf("rootfs: import lowerdirs: no directories")
	}
	return s.bounded(ctx)(s.importDirs(ctx, "lowerdirs", lowerdirs, opts))
}

func (s *Store) importDirs(ctx context.Context, kind string, dirs []string, opts ImportOptions) (*Tree, error) {
	op := "import " + kind
	abs := make([]string, len(dirs))
	for i, d := range dirs {
		a, err := absDir(d)
		if err != nil {
			return nil, &ImportError{Op: op, Source: d, Err: err}
		}
		abs[i] = a
	}
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()

	hit := func(fp string) (*Tree, error) {
		t := s.lookupIndex(fp)
		if t != nil && opts.Ref != "" {
			if err := s.acquireLocked(t.ID, opts.Ref); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	var fps []string
	if opts.Immutable {
		fph := sha256.New()
		fmt.Fprintf(fph, "fre-fingerprint-v1 shallow %s %t %t\n", kind, s.opts.StripSetuid, s.opts.KeyMtime)
		for _, d := range abs {
			var st unix.Stat_t
			if err := unix.Lstat(d, &st); err != nil {
				return nil, &ImportError{Op: op, Source: d, Err: err}
			}
			fmt.Fprintf(fph, "%x %d %d %d %d\n", d, st.Dev, st.Ino, st.Mtim.Nano(), st.Ctim.Nano())
		}
		fps = append(fps, hex.EncodeToString(fph.Sum(nil)))
		if t, err := hit(fps[0]); t != nil || err != nil {
			return t, err
		}
	}
	fp, layers, err := s.fingerprint(op, kind, abs)
	if err != nil {
		return nil, err
	}
	fps = append(fps, fp)
	// What Speculate needs for the next import of this directory.
	hint := func(t *Tree) {
		if kind == "dir" && !opts.Immutable {
			s.writeHint(abs[0], fp, t.ID)
		}
	}
	if t, err := hit(fp); t != nil || err != nil {
		if t != nil {
			hint(t)
		}
		return t, err
	}

	imp, err := s.newImporter(opts.Progress)
	if err != nil {
		return nil, err
	}
	defer imp.cleanup()
	mt := newMergeTree(s.opts.MaxEntries, s.implicitMeta())
	overlay := kind == "lowerdirs"
	// Lowerdirs are listed top first; layer numbers grow upwards.
	for i := len(abs) - 1; i >= 0; i-- {
		layer := len(abs) - 1 - i
		inodes := map[[2]uint64]*fileRef{}
		for _, e := range layers[i] {
			if err := s.applyDirEntry(mt, abs[i], e, layer, overlay, inodes); err != nil {
				return nil, &ImportError{Op: op, Source: abs[i], Entry: e.rel, Err: err}
			}
		}
		layers[i] = nil
	}

	// Hash only what survived the merge, in parallel.
	seen := map[*fileRef]bool{}
	var files []*fileRef
	walk(mt.root, ".", func(_ string, n *node) error {
		if n.kind == kindReg && !seen[n.file] {
			seen[n.file] = true
			files = append(files, n.file)
			imp.prog.total.Add(n.file.size)
		}
		return nil
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Workers)
	for _, f := range files {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := s.ingestFile(imp, f); err != nil {
				return &ImportError{Op: op, Source: f.root, Entry: f.rel, Err: err}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	t := &Tree{ID: manifestID(mt.root, s.opts.KeyMtime), Kind: kind, Sources: abs}
	if t, err = s.finish(ctx, imp, t, mt.root, fps, opts.Ref); err != nil {
		return nil, err
	}
	hint(t)
	return t, nil
}

// absDir is d made absolute. The directory itself may be reached through
// a symlink (a bundle's rootfs often is); nothing below it is followed.
func absDir(d string) (string, error) {
	a, err := filepath.Abs(d)
	var st unix.Stat_t
	if err == nil && (unix.Lstat(a, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK) {
		// Only a symlink is resolved (a stat per component); symlinks
		// among the parents are the kernel's to follow.
		a, err = filepath.EvalSymlinks(a)
	}
	return a, err
}

// fingerprint walks the directories (scan) into the fingerprint of their
// current state, the key of the store's index.
func (s *Store) fingerprint(op, kind string, abs []string) (string, [][]scanEntry, error) {
	fph := sha256.New()
	fmt.Fprintf(fph, "fre-fingerprint-v1 %s %t %t\n", kind, s.opts.StripSetuid, s.opts.KeyMtime)
	layers := make([][]scanEntry, len(abs))
	for i, d := range abs {
		var err error
		if layers[i], err = scan(d, fph, s.opts.Workers); err != nil {
			return "", nil, &ImportError{Op: op, Source: d, Err: err}
		}
	}
	return hex.EncodeToString(fph.Sum(nil)), layers, nil
}

// implicitMeta is given to parent directories a layer uses but does not
// declare.
func (s *Store) implicitMeta() meta {
	m := meta{mode: 0o755}
	if s.rootless {
		m.uid, m.gid = s.uid, s.gid
	}
	return m
}

func (s *Store) applyDirEntry(mt *mergeTree, root string, e scanEntry, layer int, overlay bool, inodes map[[2]uint64]*fileRef) error {
	st := e.st
	full := filepath.Join(root, e.rel)
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFSOCK:
		return nil
	case unix.S_IFCHR, unix.S_IFBLK:
		if overlay && typ == unix.S_IFCHR && st.Rdev == 0 {
			return mt.whiteout(e.rel, layer)
		}
		return reason(ErrDevice, "device %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	m := meta{mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Nano()}
	if typ == unix.S_IFREG {
		if f := inodes[[2]uint64{st.Dev, st.Ino}]; f != nil {
			return mt.put(e.rel, &node{kind: kindReg, layer: layer, file: f})
		}
	}
	if typ != unix.S_IFLNK {
		x, err := readXattrs(full)
		if err != nil {
			return err
		}
		m.xattrs = x
	}
	opaque := overlay && typ == unix.S_IFDIR &&
		(m.xattrs["trusted.overlay.opaque"] == "y" || m.xattrs["user.overlay.opaque"] == "y")
	var k kind
	switch typ {
	case unix.S_IFDIR:
		k = kindDir
	case unix.S_IFREG:
		k = kindReg
	case unix.S_IFLNK:
		k = kindSymlink
	case unix.S_IFIFO:
		k = kindFifo
	default:
		return reason(ErrUnsupported, "file type %o", typ)
	}
	if err := s.applyPolicy(&m, k); err != nil {
		return err
	}
	n := &node{kind: k, meta: m, layer: layer}
	switch k {
	case kindReg:
		n.file = &fileRef{meta: m, size: st.Size, src: full, root: root, rel: e.rel, srcID: statID{
			dev: st.Dev, ino: st.Ino, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), size: st.Size}}
		inodes[[2]uint64{st.Dev, st.Ino}] = n.file
	case kindSymlink:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		if symlinkEscapes(e.rel, target) {
			return reason(ErrUnsafePath, "symlink to %q leaves the tree", target)
		}
		n.target = target
	}
	if err := mt.put(e.rel, n); err != nil {
		return err
	}
	if opaque {
		return mt.opaque(e.rel, layer)
	}
	return nil
}

// ingestFile hashes a source file and, when its object is new, copies it
// into the ingest area (reflink first) and checks the copy against the
// hash. The source must still be what the scan saw.
func (s *Store) ingestFile(imp *importer, f *fileRef) error {
	src, err := os.OpenFile(f.src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if (statID{st.Dev, st.Ino, st.Mtim.Nano(), st.Ctim.Nano(), st.Size}) != f.srcID {
		return ErrSourceChanged
	}
	sum, n, err := hashReader(src)
	if err != nil {
		return err
	}
	s.hashed.Add(1)
	if n != f.size {
		return ErrSourceChanged
	}
	f.key = s.objectKey(sum, &f.meta)
	defer imp.prog.add(f.size)
	temp := imp.tempName("obj-")
	if !imp.claim(f.key, temp) {
		return nil
	}
	return s.writeObject(temp, &f.meta, sum, func(dst *os.File) ([]byte, error) {
		if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err == nil {
			return hashFileOf(dst)
		}
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		got, _, err := copyHashed(dst, src)
		return got, err
	})
}
