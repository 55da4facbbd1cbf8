// Package rootfs keeps one host-wide, content-addressed copy of every file
// that FRE's container images contain, and hands out per-image trees of
// hard links to those copies, so that identical files in unrelated images
// (libc, an interpreter, node_modules) are one inode on disk and one copy in
// the page cache.
//
// # Layout
//
// Under the store root (DefaultRoot, mode 0700 because objects include the
// images' setuid binaries):
//
//	lock                 flock: shared for import/acquire/verify, exclusive for GC
//	objects/<kk>/<key>   one file per distinct (content, metadata) pair
//	trees/<id>/rootfs    a flattened image: dirs, symlinks, fifos, hard links to objects
//	trees/<id>/meta.json the tree's TreeInfo
//	index/<digest>       input fingerprint -> tree ID (the import cache)
//	hints/<digest>       directory -> fingerprint and tree of its last import (Speculate)
//	refs/<id>/<ctr>      containers using tree <id> (Acquire/Release)
//	ingest/<import>/     work area of one import; empty when no import runs
//	scratch/<ctr>/       overlay upper and work dirs of a container whose
//	                     state dir is on another file system (ScratchDir)
//
// # Object keys
//
// A hard link shares content, mode (type and permission bits including
// setuid, setgid and sticky), owner, group, xattrs (security.capability and
// ACLs included) and mtime. The object key is
// sha256("fre-object-v1", sha256(content), mode, uid, gid, sorted xattrs),
// so files that differ in any of those never share an inode. The mtime is
// deliberately not part of the key — files from different image builds
// rarely agree on it and sharing is the point — so a tree's regular files
// carry the mtime of the first import of their object (Options.KeyMtime puts
// it in the key). The xattrs security.selinux (labels belong to the mount),
// trusted.overlay.* and user.overlay.* (overlay's bookkeeping) are never
// stored.
//
// # Commit protocol
//
// An import writes new objects into its ingest directory, verifies each
// against the digest it was keyed by, syncs the filesystem once (syncfs(2):
// one flush instead of an fsync per small file), then commits each object
// with link(2) to its final name: link never replaces an existing name, so
// an object, once there, is never rewritten and concurrent importers of the
// same content end with one inode. The tree is built in the ingest
// directory, synced, and renamed into trees/ in one step; the loser of a
// race discards its copy. A failed import removes its ingest directory and
// leaves no tree; objects it already committed are complete and are
// collected by GC if nothing links them.
//
// # Caching
//
// ImportDir and ImportLowerDirs fingerprint their input with one lstat walk
// (path, type, mode, size, mtime, ctime, inode, owner of every entry; ctime
// catches xattr and content changes that preserve mtime) and ImportLayers
// fingerprints the layer files (path, size, mtime, ctime, inode). A
// fingerprint seen before returns its tree without reading any content.
// ImportOptions.Immutable (containerd's committed snapshots) keys the cache
// by the top directories alone and skips the walk. Speculate returns a
// directory's last tree at once and leaves the walk that proves it current
// to the caller, who starts a container on the tree meanwhile and runs
// nothing of it until the walk agrees.
// Layer trees are named by the OCI chain ID of their diff IDs; directory
// trees by the digest of their manifest (paths, types, modes, owners,
// xattrs, object keys, symlink targets; mtimes only with
// Options.KeyMtime), so two copies of a rootfs share one tree even when
// the copy did not keep directory mtimes.
//
// # Locking
//
// Imports, Acquire, List, DF and Verify share the store's flock; GC takes it
// exclusively, so it never sees a half-imported tree or an object an import
// is about to link. Linux flock does not favour waiting writers: under a
// constant stream of imports GC waits for a gap.
//
// # Input policy
//
// Imports refuse, with an *ImportError naming the entry: absolute paths and
// paths with a ".." component; entries below a symlink or a non-directory
// (tar entry "a -> /etc" then "a/passwd"); relative symlinks that climb out
// of the tree; hard links to anything but a regular file already in the
// tree; device nodes (the only device FRE accepts is overlay's 0/0 whiteout
// in ImportLowerDirs, where it means "deleted"); setuid files not owned by
// root and setuid/setgid files writable by group or others; truncated
// layers, entries whose size does not match, and layers that decompress
// past Options.MaxSize. Sockets in a directory are skipped. Setuid files
// owned by root are kept (with Options.StripSetuid they are neutralised).
// Without root (rootless), every file is owned by the caller, only user.*
// xattrs are kept, and setuid/setgid bits are dropped.
//
// # Using a tree
//
// Objects are shared by every image that contains them, so a tree must
// never be writable through a container: mount it as an overlay with no
// upper layer, read-only for good (ReadOnlyMount), or as an overlay
// lowerdir with a per-container upper and work directory (OverlayMount),
// where a write copies the file up and the object stays intact.
//
// # Other filesystems
//
// A tree always lives inside the store, so every hard link is store-internal
// and EXDEV cannot occur when linking. Directory imports copy content into
// the store (FICLONE reflink first, plain copy otherwise); the source is
// never linked, because a later write to the bundle would then corrupt the
// shared object. An object that hit the filesystem's hard-link limit
// (EMLINK) is copied into the tree instead, with a warning.
package rootfs
