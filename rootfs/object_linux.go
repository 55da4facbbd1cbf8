package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// objectKey names the inode holding content with metadata m.
func (s *Store) objectKey(content []byte, m *meta) string {
	h := sha256.New()
	fmt.Fprintf(h, "fre-object-v1\ncontent sha256:%x\nmode %o\nuid %d\ngid %d\n",
		content, unix.S_IFREG|m.mode, m.uid, m.gid)
	if s.opts.KeyMtime {
		fmt.Fprintf(h, "mtime %d\n", m.mtime)
	}
	names := make([]string, 0, len(m.xattrs))
	for k := range m.xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "xattr %x %x\n", k, m.xattrs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// keepXattr says whether an xattr belongs to the file rather than to the
// host it was found on.
func (s *Store) keepXattr(name string) bool {
	switch {
	case name == "security.selinux":
		return false
	case strings.HasPrefix(name, "trusted.overlay."), strings.HasPrefix(name, "user.overlay."):
		return false
	case s.rootless:
		return strings.HasPrefix(name, "user.")
	}
	return true
}

// applyPolicy checks a file's metadata against the setuid policy and maps
// it to what this store can represent (rootless: the caller's ownership).
func (s *Store) applyPolicy(m *meta, k kind) error {
	for name := range m.xattrs {
		if !s.keepXattr(name) {
			delete(m.xattrs, name)
		}
	}
	special := m.mode & (unix.S_ISUID | unix.S_ISGID)
	if k == kindReg && special != 0 && !s.opts.StripSetuid {
		if m.mode&unix.S_ISUID != 0 && m.uid != 0 {
			return reason(ErrSetuid, "setuid file owned by uid %d", m.uid)
		}
		if m.mode&0o022 != 0 {
			return reason(ErrSetuid, "setuid/setgid file writable by group or others (mode %o)", m.mode)
		}
	}
	if k == kindReg && (s.opts.StripSetuid || s.rootless) {
		m.mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if s.rootless {
		m.uid, m.gid = s.uid, s.gid
	}
	return nil
}

// readXattrs lists a path's xattrs without following a final symlink.
func readXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 1024)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rootfs: list xattrs of %s: %w", p, err)
	}
	var out map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 256)
		for {
			vn, err := unix.Lgetxattr(p, name, val)
			if err == unix.ERANGE {
				val = make([]byte, len(val)*4)
				continue
			}
			if err == unix.ENODATA || err == unix.EPERM || err == unix.EACCES {
				break // trusted.* without privilege, or gone meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("rootfs: read xattr %s of %s: %w", name, p, err)
			}
			if out == nil {
				out = map[string]string{}
			}
			out[name] = string(val[:vn])
			break
		}
	}
	return out, nil
}

// importer is the state of one import: its ingest directory and the
// objects it wrote there.
type importer struct {
	s      *Store
	dir    string // ingest/<import>
	seq    atomic.Int64
	mu     sync.Mutex
	claims map[string]string // key -> temp file to commit ("": already stored)
	prog   *progress
}

func (s *Store) newImporter(fn func(done, total int64)) (*importer, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, ingestDir), "import-")
	if err != nil {
		return nil, fmt.Errorf("rootfs: create ingest dir: %w", err)
	}
	return &importer{s: s, dir: dir, claims: map[string]string{}, prog: &progress{fn: fn}}, nil
}

// cleanup removes the ingest directory: whatever was not committed.
func (imp *importer) cleanup() { removeAll(imp.dir) }

func (imp *importer) tempName(prefix string) string {
	return filepath.Join(imp.dir, prefix+strconv.FormatInt(imp.seq.Add(1), 10))
}

// claim reserves key for this import. It returns true when the caller must
// write the object to temp: it is neither in the store nor claimed before.
func (imp *importer) claim(key, temp string) bool {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if _, ok := imp.claims[key]; ok {
		return false
	}
	if _, err := os.Lstat(imp.s.objectPath(key)); err == nil {
		imp.claims[key] = ""
		return false
	}
	imp.claims[key] = temp
	return true
}

// setMeta gives a freshly written object its metadata. Order matters:
// chown clears setuid bits and security.capability, so it goes first, and
// the mode goes after the xattrs.
func (s *Store) setMeta(f *os.File, m *meta) error {
	fd := int(f.Fd())
	if !s.rootless {
		if err := unix.Fchown(fd, int(m.uid), int(m.gid)); err != nil {
			return fmt.Errorf("chown %s: %w", f.Name(), err)
		}
	}
	for k, v := range m.xattrs {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", k, f.Name(), err)
		}
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(m.mtime), unix.NsecToTimespec(m.mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, f.Name(), ts, 0); err != nil {
		return fmt.Errorf("set mtime of %s: %w", f.Name(), err)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyHashed copies src to dst and returns the sha256 of what was written.
func copyHashed(dst io.Writer, src io.Reader) ([]byte, int64, error) {
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := io.CopyBuffer(io.MultiWriter(dst, h), src, *bp)
	return h.Sum(nil), n, err
}

func hashReader(r io.Reader) ([]byte, int64, error) { return copyHashed(io.Discard, r) }

// commit links the import's new objects to their names. The temp files
// were synced before (see finish): link(2) never replaces an object another
// import committed first, so each key has exactly one inode.
func (imp *importer) commit(keys map[string]bool) error {
	for key := range keys {
		imp.mu.Lock()
		temp := imp.claims[key]
		imp.mu.Unlock()
		if temp == "" {
			continue
		}
		dst := imp.s.objectPath(key)
		if err := imp.s.ensurePrefix(key); err != nil {
			return err
		}
		if err := os.Link(temp, dst); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("rootfs: commit object %s: %w", key, err)
		}
		os.Remove(temp)
	}
	return nil
}

func (s *Store) ensurePrefix(key string) error {
	if _, ok := s.prefixes.Load(key[:2]); ok {
		return nil
	}
	if err := os.Mkdir(filepath.Join(s.root, objectsDir, key[:2]), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("rootfs: create object dir: %w", err)
	}
	s.prefixes.Store(key[:2], true)
	return nil
}

// writeObject writes content to temp and gives it m. verify is the digest
// the key was computed from; what was written must match it.
func (s *Store) writeObject(temp string, m *meta, verify []byte, fill func(f *os.File) ([]byte, error)) error {
	f, err := os.OpenFile(temp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rootfs: create object: %w", err)
	}
	defer f.Close()
	got, err := fill(f)
	if err != nil {
		return err
	}
	if verify != nil && string(got) != string(verify) {
		return reason(ErrSourceChanged, "content digest %x, expected %x", got, verify)
	}
	if err := s.setMeta(f, m); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return f.Close()
}

// hashFileOf returns sha256 of an open file from its start.
func hashFileOf(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	sum, _, err := hashReader(f)
	return sum, err
}

// progress reports bytes done out of total, at most every 1% (or at the end).
type progress struct {
	fn         func(done, total int64)
	total      atomic.Int64
	done       atomic.Int64
	mu         sync.Mutex
	lastReport int64
}

func (p *progress) add(n int64) {
	if p == nil || p.fn == nil || n == 0 {
		return
	}
	d := p.done.Add(n)
	t := p.total.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	if d-p.lastReport >= t/100 || d >= t {
		p.lastReport = d
		p.fn(d, t)
	}
}

// removeAll removes a tree even when it holds directories without write
// permission (images have them, e.g. 0555 /proc).
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
