package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fre-runtime/fre/internal/testutil"
)

// TestCtrSharedStore runs two different images (busybox, and busybox with
// one more file: different layers, different snapshots) with the store on:
// both containers see the same inode for /bin/busybox, the store's object,
// and nothing of the store is held once they are gone.
func TestCtrSharedStore(t *testing.T) {
	c := setup(t)
	const ref2 = "docker.io/library/busybox-fre2:latest"
	rootfs := filepath.Join(c.dir, "busybox2-rootfs")
	if err := testutil.WriteBusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "fre-second-image"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(c.dir, "busybox2.oci.tar")
	if err := testutil.WriteOCIImageLayoutTar(tar, ref2, rootfs); err != nil {
		t.Fatal(err)
	}
	if out, err := c.ctr("images", "import", tar); err != nil {
		t.Fatalf("import: %v: %s", err, out)
	}
	store := filepath.Join(c.dir, "store")
	cfg := filepath.Join(c.dir, "fre-store.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"store": true, "store_root": %q}`, store)), 0o644); err != nil {
		t.Fatal(err)
	}
	inode := func(image, id string, extra ...string) string {
		args := append([]string{"run", "--runtime", runtimeName, "--rm"}, extra...)
		args = append(args, image, id, "stat", "-c", "%i", "/bin/busybox")
		out, err := c.ctr(args...)
		if err != nil {
			t.Fatalf("ctr run %s: %v: %s\n%s", id, err, out, c.tail())
		}
		return strings.TrimSpace(out)
	}
	plain1, plain2 := inode(imageRef, "fre-plain-1"), inode(ref2, "fre-plain-2")
	if plain1 == plain2 {
		t.Fatalf("without the store both images show inode %s: the test images share a snapshot", plain1)
	}
	s1 := inode(imageRef, "fre-store-1", "--runtime-config-path", cfg)
	s2 := inode(ref2, "fre-store-2", "--runtime-config-path", cfg)
	if s1 != s2 {
		t.Fatalf("with the store: inodes %s and %s, want one shared inode", s1, s2)
	}
	trees, err := os.ReadDir(filepath.Join(store, "trees"))
	if err != nil || len(trees) < 2 {
		t.Fatalf("store trees: %v %v", trees, err)
	}
	refs, _ := filepath.Glob(filepath.Join(store, "refs", "*", "*"))
	if len(refs) != 0 {
		t.Fatalf("store refs left after the containers are gone: %v", refs)
	}
}
