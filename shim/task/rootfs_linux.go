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
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootfsMount is the container's root file system as mounted by the shim
// on <bundle>/rootfs.
type rootfsMount struct {
	target string
	// release undoes what the store path acquired (nil otherwise).
	release func()
	// inInit, when set, is mounted by the container's init in its own
	// mount namespace (runtime.CreateOpts.RootMount): nothing is mounted
	// on target in ours.
	inInit *specs.Mount
}

// mountRootfs mounts containerd's rootfs mounts onto <bundle>/rootfs. With
// the store on, an overlay mount is first rewritten to use a shared-store
// tree as its lower layer; any failure there falls back to the mounts as
// given. With initMay (an async create of a container with a new mount
// namespace), a single overlay whose directories are all there is left to
// the init to mount in its namespace.
func (s *service) mountRootfs(ctx context.Context, id, bundle string, ms []*types.Mount, opts Options, initMay bool) (*rootfsMount, error) {
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
	if initMay && len(mounts) == 1 && overlayForInit(mounts[0]) {
		m := mounts[0]
		return &rootfsMount{target: target, inInit: &specs.Mount{Type: m.Type, Source: m.Source, Options: m.Options}}, nil
	}
	if err := mount.All(mounts, target); err != nil {
		mount.UnmountMounts(mounts, target, 0)
		return nil, fmt.Errorf("%w: mount rootfs of %s: %v", errdefs.ErrInvalidArgument, id, err)
	}
	return &rootfsMount{target: target}, nil
}

// overlayForInit: an overlay mount the init can make as it is: its
// options fit in one mount(2) call (containerd shortens longer lowerdir
// lists with a chdir, which the init does not do) and every directory it
// names is there, so that a bad mount is still Create's error.
func overlayForInit(m mount.Mount) bool {
	if m.Type != "overlay" || m.Target != "" {
		return false
	}
	lower, upper, work, rest := overlayOptions(m)
	if idmapped(rest) {
		return false
	}
	dirs := lower
	for _, d := range []string{upper, work} {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return false
		}
	}
	n := 0
	for _, o := range m.Options {
		n += len(o) + 1
	}
	return n < 4000 // one page, less what the kernel adds
}

// initMount is what the init is to mount on the rootfs, or nil.
func (m *rootfsMount) initMount() *specs.Mount {
	if m == nil {
		return nil
	}
	return m.inInit
}

// unmount undoes mountRootfs.
func (m *rootfsMount) unmount() error {
	if m == nil || m.inInit != nil {
		return nil
	}
	err := mount.UnmountRecursive(m.target, 0)
	if m.release != nil {
		m.release()
	}
	return err
}
