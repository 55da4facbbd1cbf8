package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/flock"
)

// DefaultRoot is the host-wide store.
const DefaultRoot = "/var/lib/fre/store"

// DefaultMaxSize bounds the uncompressed bytes one layer import may read
// (gzip and zstd bombs).
const DefaultMaxSize int64 = 64 << 30

// DefaultMaxEntries bounds the entries of one import (the merged tree is
// held in memory while it is checked).
const DefaultMaxEntries = 4 << 20

// Options configure a Store. The zero value is usable.
type Options struct {
	Root       string // default DefaultRoot
	Workers    int    // hashing/linking goroutines; default GOMAXPROCS*2
	MaxSize    int64  // uncompressed bytes per layer import; default DefaultMaxSize
	MaxEntries int    // entries per import; default DefaultMaxEntries
	// StripSetuid clears setuid and setgid bits of every imported file
	// instead of applying the setuid policy.
	StripSetuid bool
	// KeyMtime makes a file's mtime part of its object key: fewer shared
	// inodes, but every tree shows its image's own mtimes (e.g. for .pyc
	// validation against .py mtimes).
	KeyMtime bool
	// Warnf receives warnings (copies instead of links); nil discards them.
	Warnf func(format string, args ...any)
	// Keep is the bound on unused trees an import applies once it made a
	// new tree (nil: DefaultKeep; KeepUnused < 0: none, only GC collects).
	Keep *GCOptions
}

// Store is a content-addressed file store. Its methods are safe for
// concurrent use, also by several processes on the same root.
type Store struct {
	root     string
	opts     Options
	rootless bool
	uid, gid uint32

	hashed   atomic.Int64 // files whose content was hashed, for tests
	prefixes sync.Map     // object fan-out dirs known to exist
}

const (
	objectsDir = "objects"
	treesDir   = "trees"
	indexDir   = "index"
	refsDir    = "refs"
	ingestDir  = "ingest"
	scratchDir = "scratch"
	emptyDir   = "empty"
	lockFile   = "lock"
	rootfsDir  = "rootfs"
	metaFile   = "meta.json"
)

// OpenShared opens the store at root (DefaultRoot when "") once per
// process and returns the same *Store to every caller: a shim or runtime
// serving many containers keeps one.
func OpenShared(root string) (*Store, error) {
	if root == "" {
		root = DefaultRoot
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s := shared[root]; s != nil {
		return s, nil
	}
	s, err := Open(Options{Root: root})
	if err != nil {
		return nil, err
	}
	shared[root] = s
	return s, nil
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*Store{}
)

// Open creates or opens the store at opts.Root.
func Open(opts Options) (*Store, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0) * 2
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("rootfs: open store %s: %w", opts.Root, err)
	}
	s := &Store{root: root, opts: opts, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	s.rootless = s.uid != 0
	// The lock file is made last: when it is there, so is the layout
	// (one stat instead of eight calls on every container start).
	if unix.Access(filepath.Join(root, lockFile), unix.R_OK|unix.W_OK) == nil {
		return s, nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("rootfs: open store %s: %w", root, err)
	}
	for _, d := range []string{objectsDir, treesDir, indexDir, refsDir, ingestDir} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("rootfs: open store %s: %w", root, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rootfs: open store %s: %w", root, err)
	}
	f.Close()
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// ScratchDir makes and returns an empty directory on the store's file
// system for the container holding ref: where its overlay upper and work
// dirs go when its state dir is on another file system. An overlay whose
// layers all share one file system reports one st_dev for every file,
// the one /proc/<pid>/maps shows; across file systems stat and maps
// disagree, and programs that check (V8 remapping its builtins from its
// own binary) fall back to private copies. The caller removes it.
func (s *Store) ScratchDir(ref string) (string, error) {
	if !validID(ref) {
		return "", fmt.Errorf("rootfs: scratch dir for %q: %w", ref, ErrInvalidID)
	}
	d := filepath.Join(s.root, scratchDir, ref)
	if err := os.RemoveAll(d); err != nil {
		return "", fmt.Errorf("rootfs: scratch dir: %w", err)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("rootfs: scratch dir: %w", err)
	}
	return d, nil
}

// EmptyDir returns an empty directory on the store's file system, made
// on first use: the bottom layer of ReadOnlyMount's overlay.
func (s *Store) EmptyDir() (string, error) {
	d := filepath.Join(s.root, emptyDir)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("rootfs: empty dir: %w", err)
	}
	return d, nil
}

func (s *Store) warnf(format string, args ...any) {
	if s.opts.Warnf != nil {
		s.opts.Warnf(format, args...)
	}
}

// lock takes the store-wide flock on a fresh open file description, so
// goroutines of one process exclude each other like processes do.
func (s *Store) lock(exclusive bool) (unlock func(), err error) {
	p := filepath.Join(s.root, lockFile)
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rootfs: lock store %s: %w", s.root, &os.PathError{Op: "open", Path: p, Err: err})
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	err = flock.Lock(fd, how)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rootfs: lock store %s: %w", s.root, err)
	}
	return func() { unix.Close(fd) }, nil
}

func (s *Store) objectPath(key string) string {
	return filepath.Join(s.root, objectsDir, key[:2], key)
}

func (s *Store) treeDir(id string) string { return filepath.Join(s.root, treesDir, id) }

// syncfs flushes the store's filesystem: the durability barrier before a
// rename or link commits anything.
func (s *Store) syncfs() error {
	f, err := os.Open(s.root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("rootfs: syncfs %s: %w", s.root, err)
	}
	return nil
}

// Tree is one flattened image in the store.
type Tree struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"` // "dir", "layers" or "lowerdirs"
	Sources     []string  `json:"sources"`
	DiffIDs     []string  `json:"diffIDs,omitempty"` // layers only
	Created     time.Time `json:"created"`
	Files       int64     `json:"files"` // regular files (each path counted)
	Dirs        int64     `json:"dirs"`
	LogicalSize int64     `json:"logicalSize"` // sum of the regular files' sizes
	// Refs are the containers holding the tree (List only).
	Refs []string `json:"refs,omitempty"`
	// Cached says this import found the tree already in the store.
	Cached bool `json:"-"`

	path string
}

// Path is the tree's root directory: use it read-only or as an overlay
// lowerdir, never as a writable rootfs.
func (t *Tree) Path() string { return t.path }

// Tree returns the tree with that ID.
func (s *Store) Tree(id string) (*Tree, error) {
	if !validID(id) {
		return nil, fmt.Errorf("rootfs: tree %q: %w", id, ErrInvalidID)
	}
	return s.readTree(id)
}

func validID(id string) bool {
	return id != "" && id != "." && id != ".." && len(id) <= 255 &&
		!strings.ContainsAny(id, "/\x00")
}

// Acquire marks tree treeID in use by containerID, so GC keeps it until
// Release. It fails with ErrNotFound when the tree is gone (GC ran between
// an import and Acquire: use ImportOptions.Ref to acquire atomically).
func (s *Store) Acquire(treeID, containerID string) error {
	if !validID(treeID) || !validID(containerID) {
		return fmt.Errorf("rootfs: acquire tree %q for %q: %w", treeID, containerID, ErrInvalidID)
	}
	unlock, err := s.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(s.treeDir(treeID), metaFile)); err != nil {
		return fmt.Errorf("rootfs: acquire tree %s for %s: %w", treeID, containerID, ErrNotFound)
	}
	return s.acquireLocked(treeID, containerID)
}

// acquireLocked writes the ref of a tree known to exist (GC cannot remove
// it while the shared lock is held).
func (s *Store) acquireLocked(treeID, containerID string) error {
	dir := filepath.Join(s.root, refsDir, treeID)
	ref := filepath.Join(dir, containerID)
	for try := 0; ; try++ {
		// Raw open: an *os.File would register with the poller.
		fd, err := unix.Open(ref, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return unix.Close(fd)
		}
		// No dir yet, or GC removed the (then empty)
		// one: make it and try again.
		if err != unix.ENOENT || try >= 8 {
			return fmt.Errorf("rootfs: acquire tree %s for %s: %w", treeID, containerID, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("rootfs: acquire tree %s for %s: %w", treeID, containerID, err)
		}
	}
}

// Release drops containerID's hold on treeID. Releasing twice is not an
// error.
func (s *Store) Release(treeID, containerID string) error {
	if !validID(treeID) || !validID(containerID) {
		return fmt.Errorf("rootfs: release tree %q for %q: %w", treeID, containerID, ErrInvalidID)
	}
	dir := filepath.Join(s.root, refsDir, treeID)
	if err := unix.Unlink(filepath.Join(dir, containerID)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("rootfs: release tree %s for %s: %w", treeID, containerID, err)
	}
	// The dir stays, empty, for the tree's next container (a sequence of
	// runs would rmdir and mkdir it each time); GC removes it with the
	// tree, and counts refs, not dirs.
	return nil
}

func (s *Store) refs(treeID string) []string {
	ents, _ := os.ReadDir(filepath.Join(s.root, refsDir, treeID))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
