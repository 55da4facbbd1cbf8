package runtime

import (
	"context"
	"testing"
	"time"
	"os"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/rootfs"
)

func TestDbgTiming(t *testing.T) {
	s, _ := rootfs.Open(rootfs.Options{Root: "/tmp/fre-rt/store"})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		tr, err := s.ImportDir(ctx, "/tmp/fre-rt/b/rootfs", rootfs.ImportOptions{Ref: "dbg"})
		t1 := time.Now()
		if err != nil { t.Fatal(err) }
		os.RemoveAll("/tmp/fre-rt/d")
		os.Mkdir("/tmp/fre-rt/d", 0o711)
		t2 := time.Now()
		err = mountOverlay(tr, "/tmp/fre-rt/d", "/tmp/fre-rt/d/rootfs")
		t3 := time.Now()
		unix.Unmount("/tmp/fre-rt/d/rootfs", unix.MNT_DETACH)
		t4 := time.Now()
		s.Release(tr.ID, "dbg")
		t5 := time.Now()
		os.RemoveAll("/tmp/fre-rt/d")
		t6 := time.Now()
		t.Logf("import %v mount %v umount %v release %v rm %v err %v", t1.Sub(t0), t3.Sub(t2), t4.Sub(t3), t5.Sub(t4), t6.Sub(t5), err)
	}
}
