package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoBuild builds the main package pkg (a path relative to the test's
// directory) into out the way `make build` does: the Makefile exports its
// C compiler, C flags and link flags (FRE_BUILD_CC, FRE_BUILD_CGO_CFLAGS,
// FRE_BUILD_LDFLAGS: a static musl link where musl-gcc is installed), so
// the tests run the binaries users get. Outside make, or with extra flags
// such as -race (which needs the default toolchain), it is a plain
// `go build`.
//
// FRE_PREBUILT_DIR (a test guest, which has no Go toolchain) names a
// directory of binaries built on the host: out's base name is copied from
// there instead.
func GoBuild(out, pkg string, extra ...string) error {
	if dir := os.Getenv("FRE_PREBUILT_DIR"); dir != "" {
		// A guest without a toolchain: the binary of that name, built on
		// the host (with the same extra flags: hack/test-v2.sh builds
		// fre-runc-failpoints with -tags failpoints).
		pre := filepath.Join(dir, filepath.Base(out))
		if _, err := os.Stat(pre); err == nil || len(extra) == 0 {
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			return copyFile(pre, out, 0o755)
		}
	}
	args := []string{"build", "-o", out}
	cmd := exec.Command("go")
	if cc := os.Getenv("FRE_BUILD_CC"); cc != "" && len(extra) == 0 {
		cmd.Env = append(os.Environ(), "CC="+cc, "CGO_CFLAGS="+os.Getenv("FRE_BUILD_CGO_CFLAGS"))
		if ld := os.Getenv("FRE_BUILD_LDFLAGS"); ld != "" {
			args = append(args, "-ldflags="+ld)
		}
	}
	cmd.Args = append(append(append([]string{"go"}, args...), extra...), pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return nil
}

// TestFn is the tests' function (internal/testfn: an HTTP server on its
// channel's socket), built static into dir/fre-testfn, so that it runs in
// a busybox rootfs. A test guest copies it from FRE_PREBUILT_DIR.
func TestFn(dir string) (string, error) {
	out := filepath.Join(dir, "fre-testfn")
	if pre := os.Getenv("FRE_PREBUILT_DIR"); pre != "" {
		return out, copyFile(filepath.Join(pre, "fre-testfn"), out, 0o755)
	}
	cmd := exec.Command("go", "build", "-o", out, "-ldflags=-s -w", TestFnPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", TestFnPackage, err, b)
	}
	return out, nil
}

// TestFnPackage is the tests' function's import path.
const TestFnPackage = "github.com/fre-runtime/fre/internal/testfn"
