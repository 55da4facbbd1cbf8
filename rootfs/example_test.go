package rootfs_test

import (
	"context"
	"fmt"

	"github.com/fre-runtime/fre/rootfs"
)

// A runtime starting a container from a bundle whose rootfs is a plain
// directory: import it once (later containers hit the cache), hold the tree
// while the container lives, and mount it as an overlay lower.
func Example() {
	ctx := context.Background()
	s, err := rootfs.Open(rootfs.Options{}) // /var/lib/fre/store
	if err != nil {
		fmt.Println(err)
		return
	}
	tree, err := s.ImportDir(ctx, "/run/bundle/rootfs", rootfs.ImportOptions{Ref: "container-1"})
	if err != nil {
		fmt.Println(err) // e.g. ErrDevice: fall back to the plain rootfs
		return
	}
	defer s.Release(tree.ID, "container-1")
	source, fstype, data, err := rootfs.OverlayMount(tree, "/run/fre/container-1/upper", "/run/fre/container-1/work")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(source, fstype, data) // unix.Mount(source, rootfsTarget, fstype, 0, data)
}
