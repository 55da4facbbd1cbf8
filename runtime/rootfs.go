package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/rootfs"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// The shared-layer store (issue 5), opt-in for a plain-directory bundle
// (run.fre.rootfs=shared, or {"rootfs": "shared"}): the bundle's rootfs is
// imported once into FRE's content-addressed store (cached by the store's
// fingerprint of the directory, one lstat walk) and the container runs on
// the store's tree of hard links, so identical files of different images
// are one inode and one copy in the page cache. The tree is shared, so a
// container never writes it: it gets an overlay with the tree as lowerdir
// and its own upper and work dirs in its state dir, or, with root.readonly
// and every mount target already in the image, a read-only overlay of the
// tree with no upper dir at all. The bundle's files are only read.
//
// Not by default: with a plain directory runc's container runs on the
// bundle's live rootfs (what hooks put in it is there, a file added after
// start is seen, writes land in the bundle), and swapping runc for
// fre-runc must not change that. The store goes where it changes nothing
// a user sees: the shim's overlays of containerd's snapshots (their lower
// layers are immutable, writes land in the snapshot's upper as before) and
// FRE's own function images.

const (
	// AnnotationRootfs chooses the container's root: "plain" (the
	// default) runs it on the bundle's rootfs as it is, "shared" on the
	// store's tree.
	AnnotationRootfs = "run.fre.rootfs"
	RootfsShared     = "shared"
	RootfsPlain      = "plain"
	// EnvStoreRoot names the store's directory (rootfs.DefaultRoot when
	// unset).
	EnvStoreRoot = "FRE_STORE_ROOT"

	// rootfsStateFile is where containers created before savedState had
	// RootfsStore kept their hold; still read at delete.
	rootfsStateFile = "rootfs.json"
	rootfsMountDir  = "rootfs" // the container's root, in its state dir
	rootfsUpperDir  = "upper"
	rootfsWorkDir   = "work"
)

// rootfsState is what prepareRootfs leaves in savedState.RootfsStore for
// releaseRootfs: saved with the rest of the state at the end of create, so
// the store costs the start path no file of its own.
type rootfsState struct {
	Mode  string `json:"mode"` // "overlay", "readonly" or "plain"
	Store string `json:"store,omitempty"`
	Tree  string `json:"tree,omitempty"`
	Ref   string `json:"ref,omitempty"`
	Mount string `json:"mount,omitempty"` // mounted in the host mount namespace
	// Scratch holds the overlay's upper and work dirs when they are not
	// in the state dir (rootfs.Store.ScratchDir); removed at delete.
	Scratch string `json:"scratch,omitempty"`
	// Reason says why a container asking for the store got its plain
	// rootfs (an import refused, overlay unavailable...).
	Reason string `json:"reason,omitempty"`
}

func (r *Runtime) storeRoot() string {
	if r.Options.StoreRoot != "" {
		return r.Options.StoreRoot
	}
	if v := os.Getenv(EnvStoreRoot); v != "" {
		return v
	}
	return rootfs.DefaultRoot
}

// rootfsMode reads the annotation.
func rootfsMode(cfg *Config, def string) (string, error) {
	v, ok := cfg.Annotations[AnnotationRootfs]
	if !ok {
		v = def
	}
	switch v {
	case RootfsShared:
		return RootfsShared, nil
	case "", RootfsPlain:
		return RootfsPlain, nil
	default:
		return "", fmt.Errorf("%w: annotation %s: %q is neither %s nor %s", ErrInvalidConfig, AnnotationRootfs, v, RootfsShared, RootfsPlain)
	}
}

// storeRef names the container in the store's refs: container IDs are
// unique per state root only, and the store is host-wide.
func (r *Runtime) storeRef(id string) string {
	h := sha256.Sum256([]byte(r.Root))
	ref := id + "@" + hex.EncodeToString(h[:6])
	if len(ref) > 255 {
		h = sha256.Sum256([]byte(r.Root + "/" + id))
		ref = hex.EncodeToString(h[:])
	}
	return ref
}

// prepareRootfs decides what the container's root is: the bundle's rootfs
// as it is, or a tree of the shared-layer store mounted in the container's
// state dir. It may set cfg.Rootfs; the returned release undoes it on a
// failed create (releaseRootfs does at delete). A bundle the store refuses
// (device nodes, say) or a host without overlay gets its plain rootfs: the
// store is an optimisation, never a reason for a container not to start.
//
// The store's overlay is not mounted here but returned, for the init to
// mount in its own mount namespace (spawn's RootMount): a mount in the
// host's would be copied by every later container's new mount namespace
// and listed in every fre-runc's mountinfo (256 containers at once each
// copied up to 255 others' roots), and would need an unmount at delete;
// the init's mount goes with its namespace. nil: the rootfs is used as
// it is.
func (r *Runtime) prepareRootfs(ctx context.Context, cfg *Config, id string, st *savedState, ph *phases, speculate bool) (rootMount *spawn.MountOp, release, verify func() error, err error) {
	noop := func() error { return nil }
	mode, err := rootfsMode(cfg, r.Options.Rootfs)
	if err != nil || mode == RootfsPlain {
		return nil, noop, nil, err
	}
	// Mounting overlay needs root; without a mount namespace of its own
	// the container would see (and the runtime leak) host mounts, and a
	// mount namespace joined by path does not see a mount made here now.
	if os.Geteuid() != 0 || !cfg.hasNew(specs.MountNamespace) {
		return nil, noop, nil, nil
	}
	// In a user namespace the mapped root must reach its root through the
	// state dir, and the store's files (owned by host ids) would show as
	// nobody's anyway: such a container keeps its bundle's rootfs.
	if cfg.hasNS(specs.UserNamespace) {
		return nil, noop, nil, nil
	}
	// Only a plain directory: a mount point is somebody else's rootfs (the
	// shim's overlay of containerd's snapshots, a bind mount).
	if isMountPoint(cfg.Rootfs) {
		return nil, noop, nil, nil
	}
	dir := r.dir(id)
	rs := &rootfsState{Store: r.storeRoot(), Ref: r.storeRef(id)}
	fallback := func(format string, args ...any) (*spawn.MountOp, func() error, func() error, error) {
		// Only there to say why (in state.json).
		st.RootfsStore = &rootfsState{Mode: RootfsPlain, Reason: fmt.Sprintf(format, args...)}
		return nil, noop, nil, nil
	}
	s, err := rootfs.OpenShared(rs.Store)
	if err != nil {
		return fallback("%v", err)
	}
	// The tree of the rootfs's last import, when there is one to bet on:
	// the walk that proves it current (verify) then runs while the init
	// sets up, and the init runs nothing of the container's before it
	// has returned nil (see Create).
	var tree *rootfs.Tree
	var ok bool
	if speculate {
		if tree, verify, ok, err = s.Speculate(ctx, cfg.Rootfs, rootfs.ImportOptions{Ref: rs.Ref}); err != nil {
			return fallback("%v", err)
		}
	}
	if ok {
		ph.done("rootfs: last import's tree (walk deferred)")
	} else {
		if tree, err = s.ImportDir(ctx, cfg.Rootfs, rootfs.ImportOptions{Ref: rs.Ref}); err != nil {
			if ctx.Err() != nil {
				return nil, noop, nil, err
			}
			return fallback("%v", err)
		}
		ph.done("rootfs: import (fingerprint walk)")
	}
	rs.Tree = tree.ID
	releaseRef := func() error { return s.Release(rs.Tree, rs.Ref) }

	mnt := filepath.Join(dir, rootfsMountDir)
	var mountErr error
	var op *spawn.MountOp
	if cfg.ReadonlyRoot && readonlyFits(tree.Path(), cfg) {
		rs.Mode = "readonly"
		op, mountErr = mountReadonly(s, tree, mnt)
	} else {
		rs.Mode = "overlay"
		// Upper and work on the tree's file system: one st_dev for the
		// whole overlay (see ScratchDir).
		scratch := dir
		if !sameFS(dir, tree.Path()) {
			if scratch, mountErr = s.ScratchDir(rs.Ref); mountErr == nil {
				rs.Scratch = scratch
			}
		}
		if mountErr == nil {
			op, mountErr = mountOverlay(tree, scratch, mnt)
		}
	}
	if mountErr != nil {
		if rs.Scratch != "" {
			os.RemoveAll(rs.Scratch)
		}
		releaseRef()
		return fallback("%v", mountErr)
	}
	ph.done("rootfs: mount prepared")
	st.RootfsStore = rs
	cfg.Rootfs = mnt
	return op, func() error { return releaseRootfsState(rs) }, verify, nil
}

// mountOverlay prepares the mount of tree as the lowerdir of an overlay
// at mnt (in the state dir), with the upper and work dirs in scratch.
func mountOverlay(tree *rootfs.Tree, scratch, mnt string) (*spawn.MountOp, error) {
	upper, work := filepath.Join(scratch, rootfsUpperDir), filepath.Join(scratch, rootfsWorkDir)
	for _, d := range []string{upper, work, mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("overlay: %w", err)
		}
	}
	// The merged root takes its mode and owner from the upper dir: give it
	// the image's (a non-root program must be able to walk its own root).
	var rst unix.Stat_t
	if err := unix.Stat(tree.Path(), &rst); err != nil {
		return nil, fmt.Errorf("overlay: stat tree %s: %w", tree.ID, err)
	}
	if err := os.Chown(upper, int(rst.Uid), int(rst.Gid)); err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if err := os.Chmod(upper, os.FileMode(rst.Mode&0o777)|unixModeBits(rst.Mode)); err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	source, fstype, data, err := rootfs.OverlayMount(tree, upper, work)
	if err != nil {
		return nil, err
	}
	return &spawn.MountOp{Kind: spawn.Mount, Source: source, Target: mnt, Fstype: fstype, Data: data}, nil
}

func unixModeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// mountReadonly prepares the mount of the tree at mnt as a read-only
// overlay without an upper layer (rootfs.ReadOnlyMount): nothing in the
// container can make it writable.
func mountReadonly(s *rootfs.Store, tree *rootfs.Tree, mnt string) (*spawn.MountOp, error) {
	empty, err := s.EmptyDir()
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return nil, fmt.Errorf("read-only overlay: %w", err)
	}
	source, fstype, data, flags, err := rootfs.ReadOnlyMount(tree, empty)
	if err != nil {
		return nil, err
	}
	return &spawn.MountOp{Kind: spawn.Mount, Source: source, Target: mnt, Fstype: fstype, Flags: flags, Data: data}, nil
}

// readonlyFits reports whether the runtime can set the container up on a
// read-only tree: the child creates missing mount targets (and /dev's
// nodes) inside the root, which a read-only root refuses. A target below
// another mount of the spec is made in that mount, not in the tree. Any
// symlink on the way is left to the overlay, which resolves it in place.
func readonlyFits(tree string, cfg *Config) bool {
	var dests []string
	covered := func(p string) bool {
		for _, d := range dests {
			if d == "/" || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	for _, m := range cfg.Mounts {
		p := path.Clean("/" + m.Destination)
		if !covered(p) && !existsNoSymlink(tree, p) {
			return false
		}
		dests = append(dests, p)
	}
	if cfg.SetupDev && !covered("/dev/null") {
		return false
	}
	return true
}

// existsNoSymlink says whether every component of p exists in tree and
// none is a symlink.
func existsNoSymlink(tree, p string) bool {
	cur := tree
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return false
		}
	}
	return true
}

// isMountPoint reports whether p is the root of a mount (its mount ID
// differs from its parent's).
func isMountPoint(p string) bool {
	var a, b unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID, &a) != nil ||
		unix.Statx(unix.AT_FDCWD, filepath.Join(p, ".."), 0, unix.STATX_MNT_ID, &b) != nil {
		return false
	}
	if a.Mask&b.Mask&unix.STATX_MNT_ID == 0 {
		return a.Dev_major != b.Dev_major || a.Dev_minor != b.Dev_minor
	}
	return a.Mnt_id != b.Mnt_id
}

// releaseRootfs undoes prepareRootfs for a container being deleted.
func (r *Runtime) releaseRootfs(st *savedState) error {
	if st.RootfsStore != nil {
		return releaseRootfsState(st.RootfsStore)
	}
	// A container created by an older fre-runc kept it in a file.
	b, err := os.ReadFile(filepath.Join(r.dir(st.ID), rootfsStateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	rs := &rootfsState{}
	if err := json.Unmarshal(b, rs); err != nil {
		return fmt.Errorf("%s of %s is corrupt: %w", rootfsStateFile, st.ID, err)
	}
	return releaseRootfsState(rs)
}

// releaseRootfsState unmounts the container's root from the host and drops
// its hold on the tree. Both steps may run twice (a delete retried after a
// failure).
func releaseRootfsState(rs *rootfsState) error {
	if rs.Mode == RootfsPlain {
		return nil
	}
	if rs.Mount != "" {
		// Detach: a process still in the old root (a hook, an exec that
		// raced the kill) must not make delete fail; the tree stays held
		// until the mount is gone from the host's view, which is now.
		if err := unix.Unmount(rs.Mount, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", rs.Mount, err)
		}
	}
	if rs.Scratch != "" {
		if err := os.RemoveAll(rs.Scratch); err != nil {
			return fmt.Errorf("remove %s: %w", rs.Scratch, err)
		}
	}
	if rs.Tree == "" {
		return nil
	}
	s, err := rootfs.OpenShared(rs.Store)
	if err != nil {
		return err
	}
	return s.Release(rs.Tree, rs.Ref)
}

// sameFS: a and b are on one file system.
func sameFS(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}
