package devfilter

import (
	"fmt"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// request is struct bpf_cgroup_dev_ctx, access and type apart.
type request struct {
	typ, acc, major, minor uint32
}

func (q request) String() string {
	t := map[uint32]string{unix.BPF_DEVCG_DEV_BLOCK: "b", unix.BPF_DEVCG_DEV_CHAR: "c"}[q.typ]
	return fmt.Sprintf("%s %d:%d acc %03b", t, q.major, q.minor, q.acc)
}

// verify checks what the kernel's verifier would hold against the
// programs Compile makes: known opcodes, jumps forward, inside the program
// and not into the second half of a 64-bit load, context loads of whole
// fields through R1, no register read before it is written on every path,
// no unreachable instruction, nothing running off the end.
func verify(prog []Insn) error {
	n := len(prog)
	if n == 0 {
		return fmt.Errorf("empty program")
	}
	// init[pc]: registers written on every path to pc; reached[pc] once a
	// path gets there (jumps go forward, so one pass in order is enough).
	init := make([]uint16, n)
	ctx := make([]uint16, n) // registers holding the context pointer
	reached := make([]bool, n)
	half := make([]bool, n) // second slot of a 64-bit load
	init[0], ctx[0], reached[0] = 1<<r1, 1<<r1, true
	flow := func(from, to int, in, c uint16) error {
		if to <= from || to >= n || half[to] {
			return fmt.Errorf("pc %d: jump to %d", from, to)
		}
		if !reached[to] {
			reached[to], init[to], ctx[to] = true, in, c
		} else {
			init[to] &= in
			ctx[to] &= c
		}
		return nil
	}
	for pc := 0; pc < n; pc++ {
		in := prog[pc]
		if !reached[pc] {
			return fmt.Errorf("pc %d: unreachable", pc)
		}
		if in.Dst > 10 || in.Src > 10 {
			return fmt.Errorf("pc %d: register out of range", pc)
		}
		regs, c := init[pc], ctx[pc]
		use := func(r uint8) error {
			if regs&(1<<r) == 0 {
				return fmt.Errorf("pc %d: R%d read before written", pc, r)
			}
			return nil
		}
		def := func(r uint8) { regs |= 1 << r; c &^= 1 << r }
		var err error
		step, jump := 1, -1
		switch in.Code {
		case opLoadW:
			if c&(1<<in.Src) == 0 {
				return fmt.Errorf("pc %d: load through R%d, not the context", pc, in.Src)
			}
			if in.Off != offAccessType && in.Off != offMajor && in.Off != offMinor {
				return fmt.Errorf("pc %d: context load at %d", pc, in.Off)
			}
			def(in.Dst)
		case opLoadImm:
			if pc+1 >= n || prog[pc+1] != (Insn{Imm: prog[pc+1].Imm}) {
				return fmt.Errorf("pc %d: 64-bit load without its second slot", pc)
			}
			half[pc+1] = true
			def(in.Dst)
			step = 2
		case opMovImm:
			def(in.Dst)
		case opMovReg, opMov64:
			err = use(in.Src)
			def(in.Dst)
		case opOr64:
			if err = use(in.Dst); err == nil {
				err = use(in.Src)
			}
			def(in.Dst)
		case opAndImm, opRshImm, opAdd64, opMul64, opLsh64, opRsh64:
			err = use(in.Dst)
			def(in.Dst)
		case opJEQImm, opJNEImm:
			err = use(in.Dst)
			jump = pc + 1 + int(in.Off)
		case opJEQReg:
			if err = use(in.Dst); err == nil {
				err = use(in.Src)
			}
			jump = pc + 1 + int(in.Off)
		case opJA:
			step, jump = 0, pc+1+int(in.Off)
		case opExit:
			err, step = use(r0), 0
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
		if err != nil {
			return err
		}
		if jump >= 0 {
			if err := flow(pc, jump, regs, c); err != nil {
				return err
			}
		}
		if step > 0 {
			if pc+step >= n {
				return fmt.Errorf("pc %d: falls off the end", pc)
			}
			if err := flow(pc, pc+step, regs, c); err != nil {
				return err
			}
		}
		pc += max(step, 1) - 1
	}
	return nil
}

// run interprets prog as the kernel would and returns R0.
func run(t testing.TB, prog []Insn, q request) uint32 {
	t.Helper()
	var reg [11]uint64
	mem := map[int16]uint32{offAccessType: q.acc<<16 | q.typ, offMajor: q.major, offMinor: q.minor}
	imm := func(in Insn) uint64 { return uint64(int64(in.Imm)) } // sign-extended
	for pc, steps := 0, 0; ; steps++ {
		if pc < 0 || pc >= len(prog) || steps > len(prog) {
			t.Fatalf("%v: pc %d ran off the program (%d instructions)", q, pc, len(prog))
		}
		in := prog[pc]
		pc++
		d := &reg[in.Dst]
		switch in.Code {
		case opLoadW:
			*d = uint64(mem[in.Off])
		case opLoadImm:
			*d = uint64(uint32(in.Imm)) | uint64(uint32(prog[pc].Imm))<<32
			pc++
		case opMovImm:
			*d = uint64(uint32(in.Imm))
		case opMovReg:
			*d = uint64(uint32(reg[in.Src]))
		case opAndImm:
			*d = uint64(uint32(*d) & uint32(in.Imm))
		case opRshImm:
			*d = uint64(uint32(*d) >> uint32(in.Imm))
		case opMov64:
			*d = reg[in.Src]
		case opAdd64:
			*d += imm(in)
		case opMul64:
			*d *= imm(in)
		case opLsh64:
			*d <<= uint32(in.Imm)
		case opRsh64:
			*d >>= uint32(in.Imm)
		case opOr64:
			*d |= reg[in.Src]
		case opJEQImm:
			pc += jmp(*d == imm(in), in)
		case opJNEImm:
			pc += jmp(*d != imm(in), in)
		case opJEQReg:
			pc += jmp(*d == reg[in.Src], in)
		case opJA:
			pc += int(in.Off)
		case opExit:
			return uint32(reg[r0])
		default:
			t.Fatalf("pc %d: opcode %#x", pc-1, in.Code)
		}
	}
}

func jmp(c bool, in Insn) int {
	if c {
		return int(in.Off)
	}
	return 0
}

// reference decides q by the package doc's rules, written apart from the
// code generator: the rules in order, each match overriding the last.
func reference(rules []specs.LinuxDeviceCgroup, q request) bool {
	allowed := false
	for _, r := range rules {
		switch {
		case r.Type == "b" && q.typ != unix.BPF_DEVCG_DEV_BLOCK,
			r.Type == "c" && q.typ != unix.BPF_DEVCG_DEV_CHAR,
			r.Major != nil && *r.Major >= 0 && uint32(*r.Major) != q.major,
			r.Minor != nil && *r.Minor >= 0 && uint32(*r.Minor) != q.minor:
			continue
		}
		var acc uint32
		for _, c := range r.Access {
			acc |= map[rune]uint32{'r': unix.BPF_DEVCG_ACC_READ, 'w': unix.BPF_DEVCG_ACC_WRITE, 'm': unix.BPF_DEVCG_ACC_MKNOD}[c]
		}
		if r.Access == "" {
			acc = 7
		}
		if r.Allow && q.acc&^acc == 0 || !r.Allow && (q.acc&acc != 0 || q.acc == 0) {
			allowed = r.Allow
		}
	}
	return allowed
}

func mustCompile(t testing.TB, rules []specs.LinuxDeviceCgroup) []Insn {
	t.Helper()
	prog, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(prog); err != nil {
		t.Fatalf("%v\n%s", err, dump(prog))
	}
	return prog
}

// check runs q through prog and the reference.
func check(t testing.TB, rules []specs.LinuxDeviceCgroup, prog []Insn, q request) bool {
	t.Helper()
	got, want := run(t, prog, q), reference(rules, q)
	if got != uint32(b2i(want)) {
		t.Fatalf("%v: program returns %d, reference %v\nrules %s\n%s", q, got, want, ruleList(rules), dump(prog))
	}
	return want
}

func dump(prog []Insn) string {
	s := ""
	for pc, in := range prog {
		s += fmt.Sprintf("%3d: code %#02x dst r%d src r%d off %d imm %d\n", pc, in.Code, in.Dst, in.Src, in.Off, in.Imm)
	}
	return s
}

func ruleList(rules []specs.LinuxDeviceCgroup) string {
	s := "["
	for i, r := range rules {
		if i > 0 {
			s += ", "
		}
		num := func(p *int64) string {
			if p == nil {
				return "*"
			}
			return fmt.Sprint(*p)
		}
		verdict := "deny"
		if r.Allow {
			verdict = "allow"
		}
		s += fmt.Sprintf("%s %q %s:%s %q", verdict, r.Type, num(r.Major), num(r.Minor), r.Access)
	}
	return s + "]"
}

// TestAttrLayout: the attributes' fields sit where union bpf_attr has them.
func TestAttrLayout(t *testing.T) {
	var l progLoadAttr
	var q queryAttr
	var i infoAttr
	var pi progInfo
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"ptr", unsafe.Sizeof(ptr{}), 8},
		{"load.insns", unsafe.Offsetof(l.insns), 8},
		{"load.license", unsafe.Offsetof(l.license), 16},
		{"load.log_buf", unsafe.Offsetof(l.logBuf), 32},
		{"load.prog_name", unsafe.Offsetof(l.progName), 48},
		{"query.prog_ids", unsafe.Offsetof(q.progIDs), 16},
		{"query.prog_cnt", unsafe.Offsetof(q.progCnt), 24},
		{"info.info", unsafe.Offsetof(i.info), 8},
		{"prog_info.name", unsafe.Offsetof(pi.name), 64},
		{"load", unsafe.Sizeof(l), attrSize},
		{"attach", unsafe.Sizeof(attachAttr{}), attrSize},
		{"query", unsafe.Sizeof(q), attrSize},
		{"get id", unsafe.Sizeof(getIDAttr{}), attrSize},
		{"info", unsafe.Sizeof(i), attrSize},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, want %d", c.name, c.got, c.want)
		}
	}
}
