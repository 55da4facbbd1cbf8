package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// data is struct seccomp_data.
type data struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

func (d data) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// verify checks what the kernel's verifier checks: jumps stay in the
// program, loads in seccomp_data, the last instruction returns.
func verify(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("length %d", len(prog))
	}
	for pc, in := range prog {
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K >= 64 || in.K%4 != 0 {
				return fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_RET | unix.BPF_K:
		case unix.BPF_JMP | unix.BPF_JA:
			if uint64(pc)+1+uint64(in.K) >= uint64(len(prog)) {
				return fmt.Errorf("pc %d: ja out of program", pc)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			if pc+1+int(max(in.Jt, in.Jf)) >= len(prog) {
				return fmt.Errorf("pc %d: jump out of program", pc)
			}
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	if last := prog[len(prog)-1]; last.Code != unix.BPF_RET|unix.BPF_K && last.Code != unix.BPF_JMP|unix.BPF_JA {
		return fmt.Errorf("last instruction %#x does not return", last.Code)
	}
	return nil
}

// run interprets prog as the kernel would, returning the action and the
// number of instructions executed.
func run(t testing.TB, prog []unix.SockFilter, d data) uint32 {
	t.Helper()
	mem := d.bytes()
	var acc uint32
	for pc, steps := 0, 0; ; steps++ {
		if pc >= len(prog) || steps > len(prog) {
			t.Fatalf("pc %d ran off the program (%d instructions)", pc, len(prog))
		}
		in := prog[pc]
		pc++
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(mem[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += int(pick(acc == in.K, in))
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			pc += int(pick(acc > in.K, in))
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += int(pick(acc >= in.K, in))
		default:
			t.Fatalf("pc %d: opcode %#x", pc-1, in.Code)
		}
	}
}

func pick(c bool, in unix.SockFilter) uint8 {
	if c {
		return in.Jt
	}
	return in.Jf
}

// reference evaluates a profile by the package doc's rules, written
// independently of the code generator.
func reference(s *specs.LinuxSeccomp, goarch string, d data) uint32 {
	def, _ := action("", s.DefaultAction, s.DefaultErrnoRet, "")
	allowed := map[specs.Arch]bool{nativeArch[goarch]: true}
	for _, a := range s.Architectures {
		allowed[a] = true
	}
	var ab *abi
	for i := range abis {
		if abis[i].audit != d.arch || !allowed[abis[i].arch] {
			continue
		}
		x32 := d.arch == 0xc000003e && d.nr >= x32SyscallBit && d.nr != 0xffffffff
		if abis[i].audit == 0xc000003e && x32 != (abis[i].arch == specs.ArchX32) {
			continue
		}
		ab = &abis[i]
	}
	if ab == nil {
		return unix.SECCOMP_RET_KILL_PROCESS
	}
	if ab.table == nil {
		return def
	}
	var conds []specs.LinuxSyscall
	var last uint32
	named, clone3 := false, false
	for _, sc := range s.Syscalls {
		match := false
		for _, n := range sc.Names {
			clone3 = clone3 || n == "clone3"
			if nr, ok := ab.resolve(n); ok {
				named = true
				last = max(last, nr)
				match = match || nr == d.nr
			}
		}
		act, _ := action("", sc.Action, sc.ErrnoRet, "")
		if !match || act == def {
			continue
		}
		if len(sc.Args) == 0 {
			return act
		}
		conds = append(conds, sc)
	}
	for _, sc := range conds {
		// Conditions are ANDed, unless two name the same argument: then
		// each is a rule of its own, ORed (runc's reading).
		idx := map[uint]bool{}
		or := false
		for _, c := range sc.Args {
			or = or || idx[c.Index]
			idx[c.Index] = true
		}
		ok := !or
		for _, c := range sc.Args {
			arg := d.args[c.Index]
			if ab.bits32 {
				arg &= 0xffffffff
			}
			if or {
				ok = ok || holds(c, arg)
			} else {
				ok = ok && holds(c, arg)
			}
		}
		if ok {
			act, _ := action("", sc.Action, sc.ErrnoRet, "")
			return act
		}
	}
	denies := s.DefaultAction != specs.ActAllow && s.DefaultAction != specs.ActLog && s.DefaultAction != specs.ActTrace
	if denies {
		if nr, ok := ab.resolve("clone3"); ok && nr == d.nr && !clone3 {
			return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
		if named && d.nr > last {
			return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
	}
	return def
}

func holds(c specs.LinuxSeccompArg, arg uint64) bool {
	switch c.Op {
	case specs.OpEqualTo:
		return arg == c.Value
	case specs.OpNotEqual:
		return arg != c.Value
	case specs.OpLessThan:
		return arg < c.Value
	case specs.OpLessEqual:
		return arg <= c.Value
	case specs.OpGreaterThan:
		return arg > c.Value
	case specs.OpGreaterEqual:
		return arg >= c.Value
	case specs.OpMaskedEqual:
		return arg&c.Value == c.ValueTwo
	}
	panic(c.Op)
}

func mustCompile(t testing.TB, s *specs.LinuxSeccomp, goarch string) []unix.SockFilter {
	t.Helper()
	prog, _, err := compile(s, goarch)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(prog); err != nil {
		t.Fatal(err)
	}
	return prog
}

// check runs d through the compiled program and the reference.
func check(t testing.TB, s *specs.LinuxSeccomp, goarch string, prog []unix.SockFilter, d data) uint32 {
	t.Helper()
	got, want := run(t, prog, d), reference(s, goarch, d)
	if got != want {
		t.Fatalf("%+v: program returns %#x, reference %#x", d, got, want)
	}
	return got
}
