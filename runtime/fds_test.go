package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/internal/testutil"
)

// TestInitKeepsNoStrayFDs: until it execs, the init is a copy of the
// process that cloned it, fd table included. Any fd of that process it
// kept would stay open (and a lock on it held) as long as the init waits:
// in the shim, the cgroup pool's lock, held by another goroutine at the
// instant of clone, once deadlocked a create whose cgroup was being
// claimed after clone. A createRuntime hook looks at the init's fds while
// it is paused before pivot_root, long before it execs.
func TestInitKeepsNoStrayFDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	marker, err := os.Create(filepath.Join(dir, "marker")) // O_CLOEXEC, as every Go fd
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	out := filepath.Join(dir, "fds")
	hook := filepath.Join(dir, "hook.sh")
	script := "#!/bin/sh\npid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p')\nls -l /proc/$pid/fd/ > " + out + "\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := testutil.BusyboxBundle(t, filepath.Join(dir, "b"), "true")
	testutil.MutateSpec(t, bundle, func(s *specs.Spec) {
		s.Linux.Resources = nil // no cgroup: nothing to leave behind
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: hook}}}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[AnnotationRootfs] = RootfsPlain
	})
	r, err := New(filepath.Join(dir, "root"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.Create(context.Background(), CreateOpts{ID: "fds", Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	listing := string(b)
	if !strings.Contains(listing, " 0 -> ") {
		t.Fatalf("the hook saw no fds of the init:\n%s", listing)
	}
	if strings.Contains(listing, marker.Name()) {
		t.Fatalf("the init holds an fd of its creator's (%s):\n%s", marker.Name(), listing)
	}
	t.Logf("the init's fds while paused for hooks:\n%s", listing)
}
