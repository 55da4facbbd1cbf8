package testutil

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// busyboxCandidates are where Debian's busybox-static puts its binary.
// FRE_BUSYBOX overrides them.
var busyboxCandidates = []string{"/bin/busybox", "/usr/bin/busybox"}

// fallbackApplets is used when `busybox --list` cannot be run: the applets
// the tests and the conformance suite call.
var fallbackApplets = []string{
	"sh", "ash", "true", "false", "echo", "cat", "ls", "sleep", "hostname",
	"id", "ps", "mount", "umount", "touch", "rm", "mkdir", "env", "grep",
	"head", "tail", "wc", "stat", "readlink", "test", "[", "kill", "whoami",
	"ulimit", "uname", "dd", "sync", "printf", "pwd", "cp", "mv", "ln", "chmod",
}

// FindBusybox returns the path of a statically linked busybox on the host.
func FindBusybox() (string, error) {
	candidates := busyboxCandidates
	if p := os.Getenv("FRE_BUSYBOX"); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		static, err := isStatic(p)
		if err != nil {
			return "", fmt.Errorf("testutil: inspect %s: %w", p, err)
		}
		if !static {
			return "", fmt.Errorf("%w: %s", ErrBusyboxNotStatic, p)
		}
		return p, nil
	}
	return "", ErrNoBusybox
}

// isStatic reports whether the ELF file at path has no program interpreter,
// i.e. runs in a rootfs without a dynamic loader.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

var applets struct {
	once sync.Once
	list []string
}

// busyboxApplets asks busybox for its applet list once per process; the list
// is the same for every rootfs made from the same binary.
func busyboxApplets(busybox string) []string {
	applets.once.Do(func() {
		out, err := exec.Command(busybox, "--list").Output()
		if err != nil {
			applets.list = fallbackApplets
			return
		}
		for _, a := range strings.Fields(string(out)) {
			// Applets are plain names; refuse anything that could escape bin/.
			if a == "busybox" || strings.ContainsAny(a, "/") || a == "." || a == ".." {
				continue
			}
			applets.list = append(applets.list, a)
		}
		if len(applets.list) == 0 {
			applets.list = fallbackApplets
		}
	})
	return applets.list
}

const (
	etcPasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	etcGroup  = "root:x:0:\nnobody:x:65534:\n"
)

// WriteBusyboxRootfs fills rootfs (created if missing) with a copy of the
// host's static busybox at /bin/busybox, a symlink in /bin for each applet
// (as `busybox --install -s` makes), /etc/passwd and /etc/group with root
// and nobody, and empty mount points.
func WriteBusyboxRootfs(rootfs string) error {
	busybox, err := FindBusybox()
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "run", "sys", "root", "tmp", "usr/bin", "var"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return fmt.Errorf("testutil: make rootfs dir: %w", err)
		}
	}
	// MkdirAll applies the umask; /tmp must be world-writable and sticky.
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		return fmt.Errorf("testutil: chmod rootfs tmp: %w", err)
	}
	if err := copyFile(busybox, filepath.Join(rootfs, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range busyboxApplets(busybox) {
		link := filepath.Join(rootfs, "bin", a)
		if err := os.Symlink("busybox", link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("testutil: applet symlink: %w", err)
		}
	}
	files := map[string]string{"etc/passwd": etcPasswd, "etc/group": etcGroup}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("testutil: write rootfs file: %w", err)
		}
	}
	// A setuid file (a script: nothing runs it), for the tests of an
	// image's setuid bits (containerd's CheckSetUidBit).
	passwd := filepath.Join(rootfs, "usr/bin/passwd")
	if err := os.WriteFile(passwd, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		return fmt.Errorf("testutil: write rootfs file: %w", err)
	}
	if err := os.Chmod(passwd, 0o755|os.ModeSetuid); err != nil {
		return fmt.Errorf("testutil: chmod rootfs file: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("testutil: copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("testutil: copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("testutil: copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("testutil: copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// DefaultSpec returns the spec `runc spec` (runc 1.1) prints, with
// process.terminal false so the container runs without a console socket,
// and process.args set to args (["sh"] when none are given, as runc has).
func DefaultSpec(args ...string) *specs.Spec {
	if len(args) == 0 {
		args = []string{"sh"}
	}
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: "1.0.2-dev",
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     append([]string(nil), args...),
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: append([]string(nil), caps...),
				Permitted: append([]string(nil), caps...),
				Ambient:   append([]string(nil), caps...),
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "runc",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
				Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
				Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs",
				Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
				Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
				"/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// WriteBundle makes dir an OCI bundle: a busybox rootfs in dir/rootfs and
// DefaultSpec(args...) in dir/config.json.
func WriteBundle(dir string, args ...string) error {
	if err := WriteBusyboxRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	return WriteSpec(dir, DefaultSpec(args...))
}

// ReadSpec reads bundle/config.json.
func ReadSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("testutil: read spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("testutil: parse %s: %w", filepath.Join(bundle, "config.json"), err)
	}
	return &s, nil
}

// WriteSpec writes s to bundle/config.json, indented as runc writes it.
func WriteSpec(bundle string, s *specs.Spec) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("testutil: encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("testutil: write spec: %w", err)
	}
	return nil
}

// BusyboxBundle creates a busybox bundle in dir (a new temporary directory
// when dir is "") whose process runs args, and returns the bundle path.
// Change its config with MutateSpec.
func BusyboxBundle(t testing.TB, dir string, args ...string) (bundle string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := WriteBundle(dir, args...); err != nil {
		// Outside CI a missing busybox-static is a skip; CI installs it, so
		// there it must fail rather than pass without running anything.
		if (errors.Is(err, ErrNoBusybox) || errors.Is(err, ErrBusyboxNotStatic)) && os.Getenv("CI") == "" {
			t.Skipf("busybox bundle: %v", err)
		}
		t.Fatalf("busybox bundle: %v", err)
	}
	return dir
}

// MutateSpec reads bundle/config.json, lets fn change it and writes it back.
func MutateSpec(t testing.TB, bundle string, fn func(*specs.Spec)) {
	t.Helper()
	s, err := ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	fn(s)
	if err := WriteSpec(bundle, s); err != nil {
		t.Fatal(err)
	}
}
