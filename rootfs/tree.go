package rootfs

import (
	"path"
	"strings"
)

// The merged tree of one import lives in memory until every entry of every
// layer has been checked, so a refused entry never leaves a half-built tree
// on disk and whiteouts never touch the filesystem.

type kind uint8

const (
	kindDir kind = iota + 1
	kindReg
	kindSymlink
	kindFifo
)

// meta is what an inode carries besides its content.
type meta struct {
	mode   uint32 // permission and special bits (07777)
	uid    uint32
	gid    uint32
	mtime  int64 // unix nanoseconds
	xattrs map[string]string
}

type node struct {
	kind     kind
	meta     meta     // dirs, symlinks, fifos; a regular file's is in file
	layer    int      // layer that last created or redeclared it
	target   string   // symlink target
	file     *fileRef // regular file; hard links share one
	children map[string]*node
}

// fileRef is one regular inode of the input: hard links share it.
type fileRef struct {
	meta meta
	size int64
	key  string // object key, set once the content is hashed

	// Directory imports: where to read the content and what it looked
	// like when the input was fingerprinted.
	src   string
	root  string // src is root/rel
	rel   string
	srcID statID
}

type statID struct {
	dev, ino     uint64
	mtime, ctime int64
	size         int64
}

type mergeTree struct {
	root       *node
	entries    int
	maxEntries int
	implicit   meta // parents a layer uses without declaring them
}

func newMergeTree(maxEntries int, implicit meta) *mergeTree {
	return &mergeTree{
		root:       &node{kind: kindDir, meta: implicit, children: map[string]*node{}},
		maxEntries: maxEntries,
		implicit:   implicit,
	}
}

// cleanEntry validates a name from the input and returns it relative and
// clean ("." for the root).
func cleanEntry(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", reason(ErrUnsafePath, "absolute path")
	}
	if name == "" {
		return "", reason(ErrUnsafePath, "empty name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", reason(ErrUnsafePath, "path has a \"..\" component")
		}
	}
	return path.Clean(name), nil
}

// symlinkEscapes says whether a relative symlink at rel climbs above the
// tree's root. Absolute targets resolve inside the container's root.
func symlinkEscapes(rel, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return false
	}
	p := path.Join(path.Dir(rel), target)
	return p == ".." || strings.HasPrefix(p, "../")
}

// parent returns the directory that holds rel and rel's last component.
// Every component on the way must be a directory: an entry below a symlink
// would be written through it. With create, missing parents are made from
// the implicit metadata; without, a missing parent returns nil.
func (t *mergeTree) parent(rel string, layer int, create bool) (*node, string, error) {
	dir, name := path.Split(rel)
	cur := t.root
	if dir == "" {
		return cur, name, nil
	}
	walked := ""
	for _, c := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
		walked = path.Join(walked, c)
		child := cur.children[c]
		switch {
		case child == nil:
			if !create {
				return nil, name, nil
			}
			if err := t.count(); err != nil {
				return nil, "", err
			}
			child = &node{kind: kindDir, meta: t.implicit, layer: layer, children: map[string]*node{}}
			cur.children[c] = child
		case child.kind == kindSymlink:
			return nil, "", reason(ErrUnsafePath, "below symlink %q", walked)
		case child.kind != kindDir:
			return nil, "", reason(ErrUnsafePath, "below non-directory %q", walked)
		}
		cur = child
	}
	return cur, name, nil
}

func (t *mergeTree) count() error {
	t.entries++
	if t.entries > t.maxEntries {
		return reason(ErrTooLarge, "more than %d entries", t.maxEntries)
	}
	return nil
}

// put places n at rel. A directory over a directory keeps the children
// (layers merge); anything else replaces what was there.
func (t *mergeTree) put(rel string, n *node) error {
	if rel == "." {
		if n.kind != kindDir {
			return reason(ErrUnsafePath, "root is not a directory")
		}
		t.root.meta = n.meta
		t.root.layer = n.layer
		return nil
	}
	par, name, err := t.parent(rel, n.layer, true)
	if err != nil {
		return err
	}
	if old := par.children[name]; old != nil && old.kind == kindDir && n.kind == kindDir {
		old.meta = n.meta
		old.layer = n.layer
		return nil
	}
	if err := t.count(); err != nil {
		return err
	}
	if n.kind == kindDir && n.children == nil {
		n.children = map[string]*node{}
	}
	par.children[name] = n
	return nil
}

// lookup returns the node at rel without following symlinks, or nil.
func (t *mergeTree) lookup(rel string) (*node, error) {
	if rel == "." {
		return t.root, nil
	}
	par, name, err := t.parent(rel, 0, false)
	if err != nil || par == nil {
		return nil, err
	}
	return par.children[name], nil
}

// whiteout deletes rel as seen from layer: only what lower layers put
// there (a whiteout never hides its own layer's entries).
func (t *mergeTree) whiteout(rel string, layer int) error {
	par, name, err := t.parent(rel, layer, false)
	if err != nil || par == nil {
		return err
	}
	if old := par.children[name]; old != nil && old.layer < layer {
		delete(par.children, name)
	}
	return nil
}

// opaque hides, below dir, everything lower layers put there, also inside
// subdirectories this layer redeclared.
func (t *mergeTree) opaque(dir string, layer int) error {
	n := t.root
	if dir != "." {
		par, name, err := t.parent(dir+"/x", layer, true)
		if err != nil {
			return err
		}
		n = par
		_ = name
	}
	prune(n, layer)
	return nil
}

func prune(n *node, layer int) {
	for name, c := range n.children {
		switch {
		case c.layer < layer:
			delete(n.children, name)
		case c.kind == kindDir:
			prune(c, layer)
		}
	}
}

// walk calls fn for every node below n, parents before children.
func walk(n *node, rel string, fn func(rel string, n *node) error) error {
	if err := fn(rel, n); err != nil {
		return err
	}
	for name, c := range n.children {
		if err := walk(c, path.Join(rel, name), fn); err != nil {
			return err
		}
	}
	return nil
}
