package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime/spawn"
)

func testBundle(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func defaultConfig(t *testing.T) *Config {
	t.Helper()
	s := DefaultSpec()
	s.Process.Terminal = false
	c, err := Convert(s, testBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The plan for runc's default spec, in order: the spec's mounts, the
// cgroup mount expanded, devices, links; then readonly and masked paths.
func TestMountPlanDefaultSpec(t *testing.T) {
	c := defaultConfig(t)
	cg := &cgroupMount{hierarchy: map[string]string{"memory": "/sys/fs/cgroup/memory/x", "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x"}}
	pre, post := mountPlan(c, cg)
	var got []string
	for _, op := range pre {
		got = append(got, op.Target)
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
		"/sys/fs/cgroup", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
		"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup",
		"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
		"/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/ptmx"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pre-pivot targets\n got %v\nwant %v", got, want)
	}
	// The cgroup tmpfs is remounted read-only after its binds.
	if last := pre[11]; last.Kind != spawn.Mount || last.Flags&unix.MS_REMOUNT == 0 || last.Flags&unix.MS_RDONLY == 0 {
		t.Fatalf("cgroup mount not remounted ro: %+v", last)
	}
	if pre[5].Flags&unix.MS_RDONLY == 0 || pre[5].Fstype != "sysfs" {
		t.Fatalf("sysfs: %+v", pre[5])
	}
	if d := pre[12]; d.Kind != spawn.Mknod || d.Mode != unix.S_IFCHR|0o666 || d.Dev != unix.Mkdev(1, 3) {
		t.Fatalf("/dev/null: %+v", d)
	}
	if len(post) != len(c.ReadonlyPaths)+len(c.MaskedPaths) || post[0].Kind != spawn.RO || post[len(post)-1].Kind != spawn.Mask {
		t.Fatalf("post-pivot plan: %+v", post)
	}
}

// In a user namespace devices are bound from the host, not made.
func TestDevicesInUserNamespace(t *testing.T) {
	c := defaultConfig(t)
	c.NewNamespaces = append(c.NewNamespaces, specs.UserNamespace)
	pre, _ := mountPlan(c, nil)
	for _, op := range pre {
		if op.Target == "/dev/null" && (op.Kind != spawn.Bind || op.Source != "/dev/null" || !op.IsFile) {
			t.Fatalf("/dev/null in a user namespace: %+v", op)
		}
	}
}

func TestMountOptions(t *testing.T) {
	m, err := convertMount(specs.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"ro", "nosuid", "nodev", "rw", "noexec", "rslave", "size=1m", "mode=755"}}, "/b")
	if err != nil {
		t.Fatal(err)
	}
	if m.Flags != unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC || m.Data != "size=1m,mode=755" ||
		len(m.Propagation) != 1 || m.Propagation[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Fatalf("%+v", m)
	}
	dir := t.TempDir()
	b, err := convertMount(specs.Mount{Destination: "rel", Source: dir, Options: []string{"rbind", "ro"}}, "/b")
	if err != nil || !b.Bind || b.Destination != "/rel" || b.Flags&unix.MS_REC == 0 {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := convertMount(specs.Mount{Destination: "/x", Type: "bind", Source: "/no/such"}, "/b"); err == nil {
		t.Fatal("missing bind source accepted")
	}
}

func TestConvertErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*specs.Spec)
		field  string
	}{
		{func(s *specs.Spec) { s.Version = "" }, "ociVersion"},
		{func(s *specs.Spec) { s.Version = "0.9" }, "ociVersion"},
		{func(s *specs.Spec) { s.Process = nil }, "process"},
		{func(s *specs.Spec) { s.Process.Args = nil }, "process.args"},
		{func(s *specs.Spec) { s.Process.Cwd = "x" }, "process.cwd"},
		{func(s *specs.Spec) { s.Root.Path = "nope" }, "root.path"},
		{func(s *specs.Spec) { s.Linux.Namespaces[0].Type = "bogus" }, "linux.namespaces[0].type"},
		{func(s *specs.Spec) { s.Linux.Namespaces = append(s.Linux.Namespaces, s.Linux.Namespaces[0]) }, "listed twice"},
		{func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.panic": "1"} }, "linux.sysctl"},
		{func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 1 << 20 }, "process.rlimits[0]"},
		{func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"NOT_A_CAP"} }, "process.capabilities.bounding"},
		{func(s *specs.Spec) { s.Mounts[0].Destination = "" }, "mounts[0]"},
		{func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }, "linux.rootfsPropagation"},
		{func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "linux.uidMappings"},
	} {
		s := DefaultSpec()
		tc.mutate(s)
		_, err := Convert(s, testBundle(t))
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want an error naming %q, got %v", tc.field, err)
		}
	}
}

func TestNetnsRequestFollowsPolicy(t *testing.T) {
	c := defaultConfig(t)
	if !c.NetRequested || c.hasNew(specs.NetworkNamespace) {
		t.Fatalf("a netns without a path is a request for the policy: %+v", c.NewNamespaces)
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "a b", strings.Repeat("x", 1025), "x\x00"} {
		if ValidateID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
	for _, id := range []string{"a", "A-b_c.d+e", strings.Repeat("x", 1024)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("%q refused: %v", id, err)
		}
	}
}

func TestStatusRules(t *testing.T) {
	if !Created.CanStart() || Running.CanStart() || Stopped.CanKill() || !Paused.CanKill() ||
		Running.CanDelete() || !Stopped.CanDelete() || !Created.CanDelete() || !Paused.CanResume() {
		t.Fatal("life-cycle rules changed")
	}
}
