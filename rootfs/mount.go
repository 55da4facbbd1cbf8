package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// OverlayMount returns mount(2) arguments that put a per-container upper
// and work directory over tree: writes copy up into upper and never reach
// the shared objects. upper and work must be on one filesystem, empty for a
// new container.
func OverlayMount(tree *Tree, upper, work string) (source, fstype, data string, err error) {
	for _, p := range []string{tree.Path(), upper, work} {
		// The kernel splits overlay options at ',' and lowerdir at ':';
		// escaping differs between kernel versions, so refuse.
		if p == "" || strings.ContainsAny(p, ",:") {
			return "", "", "", fmt.Errorf("rootfs: overlay mount of tree %s: path %q empty or has ',' or ':'", tree.ID, p)
		}
	}
	return "overlay", "overlay", "lowerdir=" + tree.Path() + ",upperdir=" + upper + ",workdir=" + work, nil
}

// ReadOnlyMount returns mount(2) arguments for the read-only alternative
// (root.readonly): an overlay with no upper layer, tree over the store's
// empty directory (overlay wants two lowers when it has no upper). Its
// superblock is read-only for good: a container allowed to remount its
// root read-write (CAP_SYS_ADMIN) still cannot write the shared files, as
// it could through a read-only bind of the tree. A read-only tree has no
// room for mountpoints the image lacks (/proc, /dev, /sys): the runtime
// must not need to create them.
func ReadOnlyMount(tree *Tree, empty string) (source, fstype, data string, flags uintptr, err error) {
	for _, p := range []string{tree.Path(), empty} {
		if p == "" || strings.ContainsAny(p, ",:") {
			return "", "", "", 0, fmt.Errorf("rootfs: read-only mount of tree %s: path %q empty or has ',' or ':'", tree.ID, p)
		}
	}
	return "overlay", "overlay", "lowerdir=" + tree.Path() + ":" + empty, unix.MS_RDONLY, nil
}
