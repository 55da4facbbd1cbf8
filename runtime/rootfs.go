package runtime

import "context"

// prepareRootfs decides what the container's root is: the bundle's rootfs
// as it is, or (the shared-layer store, issue 5) a tree of hard links into
// FRE's content-addressed store mounted read-only or as an overlay lower
// with a per-container upper. It may set cfg.Rootfs and st fields; the
// returned release undoes it at delete (and on a failed create).
func (r *Runtime) prepareRootfs(ctx context.Context, cfg *Config, id string, st *savedState) (release func() error, err error) {
	return func() error { return nil }, nil
}

// releaseRootfs undoes prepareRootfs for a container being deleted.
func (r *Runtime) releaseRootfs(st *savedState) error {
	return nil
}
