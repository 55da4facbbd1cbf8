package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// rootfsMount is the container's root file system as mounted by the shim
// on <bundle>/rootfs.
type rootfsMount struct {
	target string
	// release undoes what the store path acquired (nil otherwise).
	release func()
}

// mountRootfs mounts containerd's rootfs mounts onto <bundle>/rootfs. With
// the store on, an overlay mount is first rewritten to use a shared-store
// tree as its lower layer; any failure there falls back to the mounts as
// given.
func (s *service) mountRootfs(ctx context.Context, id, bundle string, ms []*types.Mount, opts Options) (*rootfsMount, error) {
	if len(ms) == 0 {
		return nil, nil // the bundle brings its rootfs
	}
	target := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(target, 0o711); err != nil && !os.IsExist(err) {
		return nil, err
	}
	mounts := make([]mount.Mount, 0, len(ms))
	for _, m := range ms {
		mounts = append(mounts, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if opts.Store {
		rm, err := s.mountFromStore(ctx, id, target, mounts, opts)
		if err == nil {
			return rm, nil
		}
		log.G(ctx).WithError(err).WithField("id", id).Warn("shared-store rootfs failed; mounting as given")
	}
	if err := mount.All(mounts, target); err != nil {
		mount.UnmountMounts(mounts, target, 0)
		return nil, fmt.Errorf("%w: mount rootfs of %s: %v", errdefs.ErrInvalidArgument, id, err)
	}
	return &rootfsMount{target: target}, nil
}

// unmount undoes mountRootfs.
func (m *rootfsMount) unmount() error {
	if m == nil {
		return nil
	}
	err := mount.UnmountRecursive(m.target, 0)
	if m.release != nil {
		m.release()
	}
	return err
}
