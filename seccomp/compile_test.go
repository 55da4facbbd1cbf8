package seccomp

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	auditX86_64  = 0xc000003e
	auditI386    = 0x40000003
	auditAARCH64 = 0xc00000b7
	auditARM     = 0x40000028

	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	retAllow  = unix.SECCOMP_RET_ALLOW
	retKillP  = unix.SECCOMP_RET_KILL_PROCESS
)

func dockerProfile(t testing.TB) *specs.LinuxSeccomp {
	t.Helper()
	b, err := os.ReadFile("testdata/docker-default.json")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.LinuxSeccomp
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func nr(t testing.TB, arch specs.Arch, name string) uint32 {
	t.Helper()
	n, ok := lookupABI(arch).resolve(name)
	if !ok {
		t.Fatalf("%s: no syscall %s", arch, name)
	}
	return n
}

func uptr(v uint) *uint { return &v }

func TestDockerDefault(t *testing.T) {
	s := dockerProfile(t)
	prog := mustCompile(t, s, "amd64")
	t.Logf("docker default profile (x86_64, x86, x32): %d instructions", len(prog))
	if len(prog) > 1024 {
		t.Errorf("%d instructions; expected a compact program", len(prog))
	}
	const cloneNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	x64, x86, x32 := specs.ArchX86_64, specs.ArchX86, specs.ArchX32
	for _, c := range []struct {
		arch  specs.Arch
		audit uint32
		name  string
		args  [6]uint64
		want  uint32
	}{
		{x64, auditX86_64, "getpid", [6]uint64{}, retAllow},
		{x64, auditX86_64, "mkdir", [6]uint64{}, retAllow},
		{x64, auditX86_64, "read", [6]uint64{}, retAllow},
		{x64, auditX86_64, "arch_prctl", [6]uint64{}, retAllow},
		{x64, auditX86_64, "mount", [6]uint64{}, retEPERM},
		{x64, auditX86_64, "unshare", [6]uint64{}, retEPERM},
		{x64, auditX86_64, "kexec_load", [6]uint64{}, retEPERM},
		{x64, auditX86_64, "ptrace", [6]uint64{}, retEPERM},
		{x64, auditX86_64, "personality", [6]uint64{0}, retAllow},
		{x64, auditX86_64, "personality", [6]uint64{8}, retAllow},
		{x64, auditX86_64, "personality", [6]uint64{0xffffffff}, retAllow},
		{x64, auditX86_64, "personality", [6]uint64{4}, retEPERM},
		{x64, auditX86_64, "personality", [6]uint64{1 << 32}, retEPERM},
		{x64, auditX86_64, "personality", [6]uint64{0xffffffffffffffff}, retEPERM},
		{x64, auditX86_64, "clone", [6]uint64{uint64(unix.SIGCHLD) | unix.CLONE_VM | unix.CLONE_THREAD}, retAllow},
		{x64, auditX86_64, "clone", [6]uint64{uint64(unix.SIGCHLD) | unix.CLONE_NEWUSER}, retEPERM},
		{x64, auditX86_64, "clone", [6]uint64{unix.CLONE_NEWNET}, retEPERM},
		{x64, auditX86_64, "clone", [6]uint64{1 << 40}, retAllow}, // high half not in the mask
		{x64, auditX86_64, "clone3", [6]uint64{}, retENOSYS},
		{x64, auditX86_64, "open_by_handle_at", [6]uint64{}, retEPERM},
		{x32, auditX86_64, "read", [6]uint64{}, retAllow},
		{x32, auditX86_64, "mount", [6]uint64{}, retEPERM},
		{x32, auditX86_64, "personality", [6]uint64{8}, retAllow},
		{x86, auditI386, "getpid", [6]uint64{}, retAllow},
		{x86, auditI386, "socketcall", [6]uint64{}, retAllow},
		{x86, auditI386, "mount", [6]uint64{}, retEPERM},
		{x86, auditI386, "personality", [6]uint64{0xffffffff}, retAllow},
		{x86, auditI386, "personality", [6]uint64{0xdead00000008}, retAllow}, // i386 has no high half
		{x86, auditI386, "personality", [6]uint64{4}, retEPERM},
		{x86, auditI386, "clone", [6]uint64{unix.CLONE_NEWPID}, retEPERM},
	} {
		d := data{nr: nr(t, c.arch, c.name), arch: c.audit, args: c.args}
		if got := check(t, s, "amd64", prog, d); got != c.want {
			t.Errorf("%s %s%v = %#x, want %#x", c.arch, c.name, c.args, got, c.want)
		}
	}
	for _, d := range []data{
		{nr: 1000, arch: auditX86_64},                  // newer than the profile
		{nr: 0xffffffff, arch: auditX86_64},            // a tracer's skipped syscall
		{nr: 0x40000000 + 5000, arch: auditX86_64},     // x32, newer
		{nr: 3000, arch: auditI386},                    // i386, newer
		{nr: nr(t, x64, "getpid"), arch: auditAARCH64}, // not listed
		{nr: nr(t, x64, "getpid"), arch: auditARM},     // not listed
		{nr: nr(t, x64, "getpid"), arch: 0x12345678},   // unknown
	} {
		check(t, s, "amd64", prog, d)
	}
	if got := run(t, prog, data{nr: 1000, arch: auditX86_64}); got != retENOSYS {
		t.Errorf("syscall newer than the profile: %#x, want ENOSYS", got)
	}
	if got := run(t, prog, data{nr: 39, arch: auditAARCH64}); got != retKillP {
		t.Errorf("unlisted arch: %#x, want kill process", got)
	}
}

// TestDockerExhaustive compares every syscall number of every ABI, with
// random arguments, against the reference evaluator.
func TestDockerExhaustive(t *testing.T) {
	s := dockerProfile(t)
	for _, goarch := range []string{"amd64", "arm64"} {
		s := *s
		if goarch == "arm64" {
			s.Architectures = []specs.Arch{specs.ArchARM, specs.ArchAARCH64}
		}
		prog := mustCompile(t, &s, goarch)
		t.Logf("%s: %d instructions", goarch, len(prog))
		r := rand.New(rand.NewPCG(1, 2))
		for _, audit := range []uint32{auditX86_64, auditI386, auditAARCH64, auditARM, 0} {
			for n := uint32(0); n < 1100; n++ {
				for _, base := range []uint32{0, x32SyscallBit, 0x0f0000} {
					d := data{nr: base + n, arch: audit}
					for i := range d.args {
						d.args[i] = randArg(r)
					}
					check(t, &s, goarch, prog, d)
				}
			}
		}
	}
}

func randArg(r *rand.Rand) uint64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return uint64(r.IntN(16))
	case 2:
		return uint64(r.Uint32())
	case 3:
		return 0xffffffff
	}
	return r.Uint64()
}

// TestOperators checks every operator on edge values of both halves.
func TestOperators(t *testing.T) {
	vals := []uint64{0, 1, 7, 8, 0xfffffffe, 0xffffffff, 1 << 32, 1<<32 + 1, 0xffffffff00000000, 0x1234567800000008, 0xfffffffffffffffe, 0xffffffffffffffff}
	ops := []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	for _, op := range ops {
		for _, v := range vals {
			for _, idx := range []uint{0, 5} {
				s := &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Architectures: []specs.Arch{specs.ArchX86},
					Syscalls: []specs.LinuxSyscall{{
						Names:    []string{"ioctl"},
						Action:   specs.ActErrno,
						ErrnoRet: uptr(22),
						Args:     []specs.LinuxSeccompArg{{Index: idx, Value: v, ValueTwo: v & 0xff0000000f, Op: op}},
					}},
				}
				prog := mustCompile(t, s, "amd64")
				for _, arg := range vals {
					for _, audit := range []uint32{auditX86_64, auditI386} {
						d := data{arch: audit, nr: 16}
						if audit == auditI386 {
							d.nr = 54
						}
						d.args[idx] = arg
						check(t, s, "amd64", prog, d)
					}
				}
			}
		}
	}
}

func TestPrecedence(t *testing.T) {
	arg := func(i uint, v uint64, op specs.LinuxSeccompOperator) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: i, Value: v, Op: op}}
	}
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			// Conditional rules: first match in profile order.
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uptr(97), Args: arg(0, 40, specs.OpEqualTo)},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: arg(0, 100, specs.OpLessThan)},
			// An unconditional rule beats earlier conditional ones.
			{Names: []string{"ioctl"}, Action: specs.ActErrno, ErrnoRet: uptr(25), Args: arg(1, 0x5401, specs.OpEqualTo)},
			{Names: []string{"ioctl"}, Action: specs.ActAllow},
			// Two unconditional rules: the first wins.
			{Names: []string{"getpid"}, Action: specs.ActAllow},
			{Names: []string{"getpid"}, Action: specs.ActKillProcess},
			// A rule doing the default is dropped, as runc does: the
			// conditional allow then applies.
			{Names: []string{"mkdir"}, Action: specs.ActErrno},
			{Names: []string{"mkdir"}, Action: specs.ActAllow, Args: arg(1, 0o700, specs.OpEqualTo)},
			// Conditions of one rule are ANDed.
			{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 1, Op: specs.OpGreaterThan}, {Index: 1, Value: 9, Op: specs.OpNotEqual}}},
			{Names: []string{"no_such_syscall", "getppid"}, Action: specs.ActLog},
		},
	}
	prog := mustCompile(t, s, "amd64")
	x := specs.ArchX86_64
	for _, c := range []struct {
		name string
		args [6]uint64
		want uint32
	}{
		{"socket", [6]uint64{40}, unix.SECCOMP_RET_ERRNO | 97},
		{"socket", [6]uint64{2}, retAllow},
		{"socket", [6]uint64{200}, retEPERM},
		{"ioctl", [6]uint64{1, 0x5401}, retAllow},
		{"getpid", [6]uint64{}, retAllow},
		{"mkdir", [6]uint64{0, 0o700}, retAllow},
		{"mkdir", [6]uint64{0, 0o755}, retEPERM},
		{"kill", [6]uint64{5, 15}, retAllow},
		{"kill", [6]uint64{5, 9}, retEPERM},
		{"kill", [6]uint64{1, 15}, retEPERM},
		{"getppid", [6]uint64{}, unix.SECCOMP_RET_LOG},
	} {
		d := data{nr: nr(t, x, c.name), arch: auditX86_64, args: c.args}
		if got := check(t, s, "amd64", prog, d); got != c.want {
			t.Errorf("%s%v = %#x, want %#x", c.name, c.args, got, c.want)
		}
	}
}

func TestActions(t *testing.T) {
	for _, c := range []struct {
		act   specs.LinuxSeccompAction
		errno *uint
		want  uint32
	}{
		{specs.ActKill, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillThread, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillProcess, nil, unix.SECCOMP_RET_KILL_PROCESS},
		{specs.ActTrap, nil, unix.SECCOMP_RET_TRAP},
		{specs.ActErrno, nil, retEPERM},
		{specs.ActErrno, uptr(38), retENOSYS},
		{specs.ActErrno, uptr(0), unix.SECCOMP_RET_ERRNO},
		{specs.ActTrace, nil, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{specs.ActTrace, uptr(7), unix.SECCOMP_RET_TRACE | 7},
		{specs.ActLog, nil, unix.SECCOMP_RET_LOG},
	} {
		s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: c.act, ErrnoRet: c.errno}}}
		prog := mustCompile(t, s, "amd64")
		if got := run(t, prog, data{nr: 39, arch: auditX86_64}); got != c.want {
			t.Errorf("%s errno %v: %#x, want %#x", c.act, c.errno, got, c.want)
		}
		// The same as default action.
		s = &specs.LinuxSeccomp{DefaultAction: c.act, DefaultErrnoRet: c.errno}
		prog = mustCompile(t, s, "amd64")
		if got := run(t, prog, data{nr: 39, arch: auditX86_64}); got != c.want {
			t.Errorf("default %s errno %v: %#x, want %#x", c.act, c.errno, got, c.want)
		}
	}
}

func TestFlags(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}}
	_, flags, err := compile(s, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); flags != want {
		t.Errorf("flags %#x, want %#x", flags, want)
	}
}

func TestErrors(t *testing.T) {
	base := func() *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
			{Names: []string{"write"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		}}
	}
	for _, c := range []struct {
		mod  func(*specs.LinuxSeccomp)
		want string
		is   error
	}{
		{func(s *specs.LinuxSeccomp) { s.DefaultAction = "SCMP_ACT_NOPE" }, `linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.DefaultAction = "" }, `linux.seccomp.defaultAction: unknown action ""`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActAllow; s.DefaultErrnoRet = uptr(1) }, `linux.seccomp.defaultErrnoRet: set, but defaultAction SCMP_ACT_ALLOW`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchX86, "SCMP_ARCH_VAX"} }, `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FOO"} }, `linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FOO"`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[1].Action = "SCMP_ACT_FOO" }, `linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FOO"`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[1].Args[0].Op = "SCMP_CMP_FOO" }, `linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_FOO"`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[1].Args[0].Index = 6 }, `linux.seccomp.syscalls[1].args[0].index: 6 out of range`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[0].ErrnoRet = uptr(1) }, `linux.seccomp.syscalls[0].errnoRet: set, but action SCMP_ACT_ALLOW`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Action = specs.ActErrno
			s.Syscalls[0].ErrnoRet = uptr(70000)
		}, `linux.seccomp.syscalls[0].errnoRet: 70000 out of range`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = nil }, `linux.seccomp.syscalls[0].names: empty`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[1].Names = []string{"write", ""} }, `linux.seccomp.syscalls[1].names[1]: empty syscall name`, ErrInvalidProfile},
		{func(s *specs.LinuxSeccomp) { s.Syscalls[0].Action = specs.ActNotify }, `linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listenerPath`, ErrInvalidProfile},
	} {
		s := base()
		c.mod(s)
		_, _, err := compile(s, "amd64")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, c.is) {
			t.Errorf("got %v, want %q (%v)", err, c.want, c.is)
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%v is no *FieldError", err)
		}
	}
	if _, _, err := Compile(nil); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("nil profile: %v", err)
	}
	if _, _, err := compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow}, "riscv64"); !errors.Is(err, ErrNotSupported) {
		t.Errorf("riscv64: %v", err)
	}
}

// TestLongJumps builds a profile whose rules spread far beyond the 255
// instructions a conditional jump reaches.
func TestLongJumps(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32}}
	for i, e := range sysX86_64 {
		if i%3 != 0 {
			continue
		}
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
			Names:  []string{e.name},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: uint(i % 6), Value: uint64(i) << 30, Op: specs.OpGreaterEqual},
				{Index: uint((i + 1) % 6), Value: 0xf0, ValueTwo: 0x10, Op: specs.OpMaskedEqual},
			},
		})
	}
	prog := mustCompile(t, s, "amd64")
	t.Logf("%d instructions", len(prog))
	if len(prog) < 1000 {
		t.Fatalf("only %d instructions; the test wants long jumps", len(prog))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, audit := range []uint32{auditX86_64, auditI386} {
		for n := uint32(0); n < 600; n++ {
			for k := 0; k < 8; k++ {
				d := data{nr: n, arch: audit}
				if k%2 == 1 && audit == auditX86_64 {
					d.nr |= x32SyscallBit
				}
				for i := range d.args {
					d.args[i] = randArg(r)
					if r.IntN(2) == 0 {
						d.args[i] = uint64(n) << 30
					}
					if r.IntN(3) == 0 {
						d.args[i] = 0x10
					}
				}
				check(t, s, "amd64", prog, d)
			}
		}
	}
}

func TestTooLarge(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for i := range 2000 {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"ioctl"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 1, Value: uint64(i) << 32, Op: specs.OpEqualTo}}})
	}
	if _, _, err := compile(s, "amd64"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestSupported(t *testing.T) {
	actions, archs, flags := Supported()
	for _, want := range []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"} {
		if !contains(actions, want) {
			t.Errorf("actions %v lack %s", actions, want)
		}
	}
	if !contains(actions, "SCMP_ACT_NOTIFY") {
		t.Errorf("actions do not list SCMP_ACT_NOTIFY")
	}
	for _, a := range archs {
		if _, _, err := compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)}}, "amd64"); err != nil {
			t.Errorf("listed arch %s: %v", a, err)
		}
	}
	for _, f := range flags {
		if _, _, err := compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(f)}}, "amd64"); err != nil {
			t.Errorf("listed flag %s: %v", f, err)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func BenchmarkCompileDocker(b *testing.B) {
	s := dockerProfile(b)
	for b.Loop() {
		if _, _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSameArgumentTwice: runc's seccomp_syscall_test1 rules. Conditions
// on different arguments are ANDed (kcmp); two on the same argument are
// each a rule, ORed (process_vm_readv, process_vm_writev), as runc does
// with libseccomp.
func TestSameArgumentTwice(t *testing.T) {
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kcmp"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}, {Index: 1, Value: 1337, Op: specs.OpEqualTo}}},
			{Names: []string{"process_vm_readv"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 100, Op: specs.OpEqualTo}, {Index: 0, Value: 9001, Op: specs.OpEqualTo}}},
			{Names: []string{"process_vm_writev"}, Action: specs.ActErrno, ErrnoRet: uptr(55), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1337, Op: specs.OpEqualTo}, {Index: 0, Value: 2020, Op: specs.OpEqualTo}}},
		},
	}
	prog := mustCompile(t, s, "amd64")
	perm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	for _, c := range []struct {
		name string
		args [6]uint64
		want uint32
	}{
		{"kcmp", [6]uint64{0, 1337}, unix.SECCOMP_RET_ALLOW},
		{"kcmp", [6]uint64{0, 0}, perm},
		{"kcmp", [6]uint64{500, 1337}, perm},
		{"process_vm_readv", [6]uint64{100}, unix.SECCOMP_RET_ALLOW},
		{"process_vm_readv", [6]uint64{9001}, unix.SECCOMP_RET_ALLOW},
		{"process_vm_readv", [6]uint64{0}, perm},
		{"process_vm_writev", [6]uint64{1337}, unix.SECCOMP_RET_ERRNO | 55},
		{"process_vm_writev", [6]uint64{2020}, unix.SECCOMP_RET_ERRNO | 55},
		{"process_vm_writev", [6]uint64{0}, perm},
	} {
		d := data{arch: auditX86_64, nr: nr(t, specs.ArchX86_64, c.name), args: c.args}
		if got := check(t, s, "amd64", prog, d); got != c.want {
			t.Errorf("%s%v: %#x, want %#x", c.name, c.args[:2], got, c.want)
		}
	}
}
