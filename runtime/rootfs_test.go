package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/rootfs"
)

func TestRootfsMode(t *testing.T) {
	for v, want := range map[string]string{"": RootfsPlain, "shared": RootfsShared, "plain": RootfsPlain} {
		got, err := rootfsMode(&Config{Annotations: map[string]string{AnnotationRootfs: v}}, "")
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", v, got, err, want)
		}
	}
	// Without the annotation the runtime's option decides.
	if got, _ := rootfsMode(&Config{}, RootfsShared); got != RootfsShared {
		t.Errorf("option shared: %q", got)
	}
	if got, _ := rootfsMode(&Config{}, ""); got != RootfsPlain {
		t.Errorf("no option: %q, want the bundle's rootfs (runc's)", got)
	}
	if _, err := rootfsMode(&Config{Annotations: map[string]string{AnnotationRootfs: "yes"}}, ""); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad value: %v", err)
	}
}

func TestReadonlyFits(t *testing.T) {
	tree := t.TempDir()
	for _, d := range []string{"proc", "dev", "sys", "data"} {
		os.Mkdir(filepath.Join(tree, d), 0o755)
	}
	os.Symlink("data", filepath.Join(tree, "link"))
	mounts := func(ds ...string) []Mount {
		var ms []Mount
		for _, d := range ds {
			ms = append(ms, Mount{Destination: d})
		}
		return ms
	}
	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{Mounts: mounts("/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup")}, true},
		{Config{Mounts: mounts("/proc", "/run")}, false},         // /run missing
		{Config{Mounts: mounts("/link")}, false},                 // a symlink on the way
		{Config{Mounts: mounts("/data/x")}, false},               // below a directory of the tree
		{Config{Mounts: mounts("/proc"), SetupDev: true}, false}, // /dev nodes in the tree
		{Config{Mounts: mounts("/dev"), SetupDev: true}, true},
	} {
		var ds []string
		for _, m := range tc.cfg.Mounts {
			ds = append(ds, m.Destination)
		}
		if got := readonlyFits(tree, &tc.cfg); got != tc.want {
			t.Errorf("mounts %v setupDev %v: %v, want %v", ds, tc.cfg.SetupDev, got, tc.want)
		}
	}
}

func TestStoreRef(t *testing.T) {
	a, b := &Runtime{Root: "/run/a"}, &Runtime{Root: "/run/b"}
	if a.storeRef("c1") == b.storeRef("c1") {
		t.Fatal("the same ID under two roots shares a store ref")
	}
	long := strings.Repeat("x", 1000)
	if r := a.storeRef(long); len(r) > 255 || r == a.storeRef(long+"y") {
		t.Fatalf("long ID: ref %q", r)
	}
}

// rootfsFixture is a runtime root, a store and a busybox rootfs.
func rootfsFixture(tb testing.TB) (*Runtime, *Config) {
	if os.Geteuid() != 0 {
		tb.Skip("needs root (overlay mounts)")
	}
	dir := tb.TempDir()
	tb.Setenv(EnvStoreRoot, filepath.Join(dir, "store"))
	rfs := filepath.Join(dir, "bundle", "rootfs")
	if err := testutil.WriteBusyboxRootfs(rfs); err != nil {
		tb.Skip(err)
	}
	r, err := New(filepath.Join(dir, "state"), Options{Rootfs: RootfsShared})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &Config{Rootfs: rfs, NewNamespaces: []specs.LinuxNamespaceType{specs.MountNamespace}}
	return r, cfg
}

// prepare runs prepareRootfs for id as Create does, and mounts the root
// it returns here, as the init does in its own mount namespace. The
// release it returns unmounts it (the namespace going with the container)
// and then releases as delete does.
func prepare(tb testing.TB, r *Runtime, base *Config, id string) (*Config, *savedState, func() error) {
	cfg := *base
	if err := os.Mkdir(r.dir(id), 0o711); err != nil {
		tb.Fatal(err)
	}
	st := &savedState{ID: id}
	op, release, _, err := r.prepareRootfs(context.Background(), &cfg, id, st, r.phases(), false)
	if err != nil {
		tb.Fatal(err)
	}
	if op == nil {
		return &cfg, st, release
	}
	if isMountPoint(op.Target) {
		tb.Fatalf("prepareRootfs mounted %s in the caller's namespace: the init mounts it", op.Target)
	}
	if err := unix.Mount(op.Source, op.Target, op.Fstype, op.Flags, op.Data); err != nil {
		tb.Fatalf("mount the prepared root: %v", err)
	}
	unix.Mount("", op.Target, "", unix.MS_PRIVATE, "")
	return &cfg, st, func() error {
		unix.Unmount(op.Target, unix.MNT_DETACH)
		return release()
	}
}

// TestPrepareReleaseRootfs: the overlay prepared for the init, once
// mounted, has a root with the image's mode, release (delete) drops the
// hold, twice is harmless, and the bundle is untouched by a write.
func TestPrepareReleaseRootfs(t *testing.T) {
	r, base := rootfsFixture(t)
	cfg, st, release := prepare(t, r, base, "c1")
	defer release()
	if cfg.Rootfs != filepath.Join(r.dir("c1"), rootfsMountDir) {
		t.Fatalf("rootfs %s, want the overlay in the state dir", cfg.Rootfs)
	}
	fi, err := os.Stat(cfg.Rootfs)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("merged root: %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Rootfs, "etc", "passwd"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(base.Rootfs, "etc", "passwd")); string(b) == "x\n" {
		t.Fatal("a write through the overlay reached the bundle")
	}
	s, err := rootfs.Open(rootfs.Options{Root: (&Runtime{}).storeRoot()})
	if err != nil {
		t.Fatal(err)
	}
	trees, err := s.List(context.Background())
	if err != nil || len(trees) != 1 || len(trees[0].Refs) != 1 {
		t.Fatalf("store trees %+v, %v; want one with one ref", trees, err)
	}
	if st.RootfsStore == nil || st.RootfsStore.Mode != "overlay" || st.RootfsStore.Tree != trees[0].ID {
		t.Fatalf("saved state's rootfs_store %+v, want the overlay of tree %s", st.RootfsStore, trees[0].ID)
	}
	if _, err := os.Stat(filepath.Join(r.dir("c1"), rootfsStateFile)); err == nil {
		t.Fatalf("%s written: the hold belongs in state.json", rootfsStateFile)
	}
	// What delete sees: the state as saved and loaded.
	if err := st.save(r.dir("c1")); err != nil {
		t.Fatal(err)
	}
	if st, err = loadSavedState(r.dir("c1")); err != nil {
		t.Fatal(err)
	}
	// The container's mount namespace goes before delete.
	if err := unix.Unmount(cfg.Rootfs, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := r.releaseRootfs(st); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
	}
	if trees, _ := s.List(context.Background()); len(trees[0].Refs) != 0 {
		t.Fatalf("refs after release: %v", trees[0].Refs)
	}
}

// BenchmarkPrepareRootfsCached is the start path's cost of the store for
// the second container of an image: the fingerprint walk, the hold, the
// overlay mount; and the unmount at delete.
func BenchmarkPrepareRootfsCached(b *testing.B) {
	r, base := rootfsFixture(b)
	_, _, release := prepare(b, r, base, "warm")
	release()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("c%d", i)
		_, _, release := prepare(b, r, base, id)
		if err := release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImportDirCached is the fingerprint walk alone (busybox rootfs).
func BenchmarkImportDirCached(b *testing.B) {
	r, base := rootfsFixture(b)
	_ = r
	s, err := rootfs.Open(rootfs.Options{Root: (&Runtime{}).storeRoot()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ImportDir(context.Background(), base.Rootfs, rootfs.ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := s.ImportDir(context.Background(), base.Rootfs, rootfs.ImportOptions{})
		if err != nil || !t.Cached {
			b.Fatal(err)
		}
	}
}
