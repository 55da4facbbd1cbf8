package seccomp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The filter cannot be removed once loaded, so these tests load it in a
// re-executed copy of the test binary (TestHelper) and read its verdict.
const helperEnv = "FRE_SECCOMP_HELPER"

// helperProfiles are the profiles the child loads, by case name.
var helperProfiles = map[string]func(t *testing.T) *specs.LinuxSeccomp{
	"errno": func(*testing.T) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOSYS))},
				{Names: []string{"rmdir"}, Action: specs.ActErrno},
				{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EINVAL)),
					Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x1234, Op: specs.OpEqualTo}}},
			},
		}
	},
	"docker": func(t *testing.T) *specs.LinuxSeccomp { return dockerProfile(t) },
	"kill": func(*testing.T) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActKillProcess}},
		}
	},
}

func rawMkdir(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_MKDIR, uintptr(unsafe.Pointer(p)), 0o700, 0); e != 0 {
		return e
	}
	return nil
}

func rawSyscall(nr uintptr, args ...uintptr) error {
	var a [3]uintptr
	copy(a[:], args)
	if _, _, e := unix.Syscall(nr, a[0], a[1], a[2]); e != 0 {
		return e
	}
	return nil
}

// TestHelper is the child side; it does nothing unless re-executed.
func TestHelper(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("child side of the seccomp load tests")
	}
	runtime.LockOSThread()
	prog, flags, err := Compile(helperProfiles[name](t))
	if err != nil {
		t.Fatal(err)
	}
	if err := Load(prog, flags); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("FRE_SECCOMP_DIR")
	expect := func(what string, got, want error) {
		if !errors.Is(got, want) {
			fmt.Printf("FAIL %s: got %v, want %v\n", what, got, want)
			os.Exit(3)
		}
	}
	switch name {
	case "errno":
		expect("mkdir", rawMkdir(filepath.Join(dir, "a")), unix.ENOSYS)
		expect("rmdir", rawSyscall(unix.SYS_RMDIR, 0), unix.EPERM)
		expect("personality(0x1234)", rawSyscall(unix.SYS_PERSONALITY, 0x1234), unix.EINVAL)
		expect("getpid", rawSyscall(unix.SYS_GETPID), nil)
		expect("mkdirat", unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "b"), 0o700), nil)
	case "docker":
		expect("mkdir", rawMkdir(filepath.Join(dir, "a")), nil)
		expect("mount", unix.Mount("none", dir, "tmpfs", 0, ""), unix.EPERM)
		expect("unshare", unix.Unshare(unix.CLONE_NEWNS), unix.EPERM)
		expect("clone3", rawSyscall(unix.SYS_CLONE3, 0, 0), unix.ENOSYS)
		expect("personality(4)", rawSyscall(unix.SYS_PERSONALITY, 4), unix.EPERM)
		expect("syscall newer than the profile", rawSyscall(1000), unix.ENOSYS)
		// Go itself (threads, signals, timers) keeps working.
		if out, err := exec.Command("/bin/true").CombinedOutput(); err != nil {
			fmt.Printf("FAIL exec /bin/true: %v %s\n", err, out)
			os.Exit(3)
		}
	case "kill":
		rawMkdir(filepath.Join(dir, "a"))
		fmt.Println("FAIL: still alive after mkdir")
		os.Exit(3)
	}
	fmt.Println("HELPER OK")
}

func runHelper(t *testing.T, name string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "FRE_SECCOMP_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestLoadErrno(t *testing.T) {
	out, err := runHelper(t, "errno")
	if err != nil || !strings.Contains(out, "HELPER OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestLoadDockerProfile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks that mount and unshare are denied by the filter, not by missing privileges")
	}
	out, err := runHelper(t, "docker")
	if err != nil || !strings.Contains(out, "HELPER OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestLoadKill(t *testing.T) {
	out, err := runHelper(t, "kill")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("child ended with %v, want killed by SIGSYS\n%s", ws, out)
	}
}
