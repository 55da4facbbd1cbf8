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

// pauseSource is the sandbox's program: it holds the pod's namespaces and
// exits on SIGTERM or SIGINT, as registry.k8s.io/pause does.
const pauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
`

// pauseImage builds the pause program statically and writes it as an OCI
// image layout tar in dir.
func pauseImage(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "pause-src")
	rootfs := filepath.Join(dir, "pause-rootfs")
	for _, d := range []string{src, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(pauseSource), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, "pause"), "main.go")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v: %s", err, out)
	}
	tar := filepath.Join(dir, "fre-pause.oci.tar")
	if err := testutil.WriteOCIImageLayoutTar(tar, pauseRef, rootfs, "/pause"); err != nil {
		t.Fatal(fmt.Errorf("pause image: %w", err))
	}
	return tar
}
