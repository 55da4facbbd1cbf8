package task

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/rootfs"
)

// The shared-store rootfs: containerd hands an overlay of its snapshot
// layers (lowerdir, top first) with a per-container upperdir and workdir.
// The shim imports the lower layers into FRE's content-addressed store (one
// tree per layer chain, cached: containerd's committed snapshots never
// change, so the import is keyed by the directories alone) and mounts
// overlay with that tree as the only lower layer and containerd's upper and
// work. Identical files of different images are then one inode and one
// copy in the page cache. Writes still go to containerd's upperdir, so
// snapshots, diffs and commits keep working.

// storeRecord is kept in the bundle so that the delete command can release
// the tree after the shim is gone.
type storeRecord struct {
	Store string `json:"store"`
	Tree  string `json:"tree"`
	Ref   string `json:"ref"`
}

const storeFile = "fre-rootfs.json"

// overlayOptions splits containerd's overlay options into its
// directories and the rest.
func overlayOptions(m mount.Mount) (lower []string, upper, work string, rest []string) {
	for _, o := range m.Options {
		switch {
		case strings.HasPrefix(o, "lowerdir="):
			lower = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
		case strings.HasPrefix(o, "upperdir="):
			upper = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "workdir="):
			work = strings.TrimPrefix(o, "workdir=")
		default:
			rest = append(rest, o)
		}
	}
	return lower, upper, work, rest
}

// idmapped: options that change what the layers' ids mean (containerd
// maps the layers with a helper first), which neither the store nor the
// init can keep.
func idmapped(opts []string) bool {
	for _, o := range opts {
		if strings.HasPrefix(o, "idmap") || strings.HasPrefix(o, "uidmap") || strings.HasPrefix(o, "gidmap") {
			return true
		}
	}
	return false
}

// overlayParts splits containerd's overlay options of a writable overlay.
func overlayParts(m mount.Mount) (lower []string, upper, work string, rest []string, err error) {
	lower, upper, work, rest = overlayOptions(m)
	if len(lower) == 0 {
		return nil, "", "", nil, errors.New("overlay without lowerdir")
	}
	if upper == "" || work == "" {
		// A read-only view: nothing to write to, nothing to gain much.
		return nil, "", "", nil, errors.New("overlay without upperdir/workdir")
	}
	return lower, upper, work, rest, nil
}

// mountFromStore mounts an overlay rootfs with a shared-store tree as its
// lower layer. Any error leaves nothing behind; the caller mounts as given.
func (s *service) mountFromStore(ctx context.Context, id, target string, ms []mount.Mount, opts Options) (_ *rootfsMount, retErr error) {
	if len(ms) != 1 || ms[0].Type != "overlay" {
		return nil, fmt.Errorf("not a single overlay mount (%d mounts)", len(ms))
	}
	lower, upper, work, rest, err := overlayParts(ms[0])
	if err != nil {
		return nil, err
	}
	if idmapped(rest) {
		// Options that change what lowerdir means cannot be kept.
		return nil, fmt.Errorf("idmapped overlay: %q", rest)
	}
	st, err := rootfs.OpenShared(opts.StoreRoot)
	if err != nil {
		return nil, err
	}
	bundle := filepath.Dir(target)
	rec := storeRecord{Store: st.Root(), Ref: storeRef(bundle)}
	tree, err := st.ImportLowerDirs(ctx, lower, rootfs.ImportOptions{Ref: rec.Ref, Immutable: true})
	if err != nil {
		return nil, fmt.Errorf("import lowerdirs: %w", err)
	}
	rec.Tree = tree.ID
	release := func() { st.Release(rec.Tree, rec.Ref) }
	defer func() {
		if retErr != nil {
			release()
		}
	}()
	source, fstype, data, err := rootfs.OverlayMount(tree, upper, work)
	if err != nil {
		return nil, err
	}
	for _, o := range rest {
		data += "," + o
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, storeFile), b, 0o600); err != nil {
		return nil, err
	}
	if err := unix.Mount(source, target, fstype, 0, data); err != nil {
		os.Remove(filepath.Join(bundle, storeFile))
		return nil, fmt.Errorf("mount overlay of tree %s on %s: %w", tree.ID, target, err)
	}
	return &rootfsMount{target: target, release: release}, nil
}

// storeRef names the container in the store's refs: the bundle path is
// unique per containerd, namespace and container, and the store is
// host-wide.
func storeRef(bundle string) string {
	ref := strings.ReplaceAll(strings.TrimPrefix(bundle, "/"), "/", "_")
	if len(ref) > 255 {
		h := sha256.Sum256([]byte(bundle))
		ref = hex.EncodeToString(h[:])
	}
	return ref
}

// ReleaseStoreRef drops the bundle's hold on its store tree, if it has one
// (the delete command, after the shim is gone).
func ReleaseStoreRef(bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, storeFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec storeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	st, err := rootfs.OpenShared(rec.Store)
	if err != nil {
		return err
	}
	return st.Release(rec.Tree, rec.Ref)
}
