package devfilter_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/cgroup/devfilter"
)

// TestManagerV2: cgroup's v2 manager puts the device rules in force on
// Set, changes them on a second Set and drops them on Reset.
func TestManagerV2(t *testing.T) {
	mp := devfilter.Cgroup2(t)
	path := fmt.Sprintf("/fre-devfilter-test-%d-manager", os.Getpid())
	m, err := cgroup.NewV2(mp, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(mp + path); err != nil && err != unix.ENOENT {
			t.Errorf("rmdir %s: %v", mp+path, err)
		}
	})
	cg, err := devfilter.OpenDir(mp + path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	nodes := t.TempDir()
	null := filepath.Join(nodes, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	one, three := int64(1), int64(3)
	allow := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &one, Minor: &three, Access: "rwm"}}
	for _, c := range []struct {
		rules []specs.LinuxDeviceCgroup
		want  string
	}{{allow, "ok"}, {allow[:1], "EPERM"}, {allow, "ok"}} {
		if err := m.Set(&specs.LinuxResources{Devices: c.rules}); err != nil {
			t.Fatal(err)
		}
		if fre, _ := devfilter.Programs(t, cg); len(fre) != 1 {
			t.Fatalf("%d FRE programs after Set", len(fre))
		}
		devfilter.Expect(t, devfilter.RunIn(t, cg, "rw:"+null), map[string]string{"rw:" + null: c.want})
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	if fre, _ := devfilter.Programs(t, cg); len(fre) != 0 {
		t.Fatalf("%d FRE programs after Reset", len(fre))
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
}
