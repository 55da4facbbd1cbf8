package task

import (
	"context"
	"errors"

	"github.com/containerd/containerd/v2/core/mount"
)

// mountFromStore mounts an overlay rootfs with a shared-store tree as its
// lower layer.
func (s *service) mountFromStore(ctx context.Context, id, target string, ms []mount.Mount, opts Options) (*rootfsMount, error) {
	return nil, errors.New("shared-store rootfs: not implemented yet")
}
