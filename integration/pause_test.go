package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fre-runtime/fre/internal/testutil"
)

// pauseRef names the locally built sandbox (pause) image the CRI tests use
// (containerd's pinned_images.sandbox).
const pauseRef = "localhost/fre-pause:1"

// pauseImage builds the pause program (testdata/pause) statically and writes it as an OCI
// image layout tar in dir.
func pauseImage(t *testing.T, dir string) string {
	t.Helper()
	rootfs := filepath.Join(dir, "pause-rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if pre := os.Getenv("FRE_PREBUILT_DIR"); pre != "" {
		// A test guest has no Go toolchain: hack/test-v2.sh built it.
		b, err := os.ReadFile(filepath.Join(pre, "pause"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, "pause"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		src, _ := filepath.Abs("testdata/pause/main.go")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, "pause"), src)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build pause: %v: %s", err, out)
		}
	}
	tar := filepath.Join(dir, "fre-pause.oci.tar")
	if err := testutil.WriteOCIImageLayoutTar(tar, pauseRef, rootfs, "/pause"); err != nil {
		t.Fatal(fmt.Errorf("pause image: %w", err))
	}
	return tar
}
