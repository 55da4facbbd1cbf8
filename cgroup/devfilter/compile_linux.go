package devfilter

import (
	"fmt"
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Offsets in struct bpf_cgroup_dev_ctx: access_type is (access << 16) | type.
const (
	offAccessType = 0
	offMajor      = 4
	offMinor      = 8
)

const accAll = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

// rule is a validated LinuxDeviceCgroup.
type rule struct {
	allow bool
	typ   uint32 // BPF_DEVCG_DEV_*; 0 is any
	major int64  // -1 is any
	minor int64
	acc   uint32 // BPF_DEVCG_ACC_* bits
}

// Compile translates OCI device rules into a BPF_PROG_TYPE_CGROUP_DEVICE
// program (see the package doc for the rules' meaning). Errors are
// *FieldError wrapping ErrInvalidRule, or ErrTooLarge.
func Compile(rules []specs.LinuxDeviceCgroup) ([]Insn, error) {
	rs := make([]rule, len(rules))
	for i, d := range rules {
		r, err := parse(i, d)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	return generate(rs)
}

func parse(i int, d specs.LinuxDeviceCgroup) (rule, error) {
	field := func(f string) string { return fmt.Sprintf("linux.resources.devices[%d].%s", i, f) }
	r := rule{allow: d.Allow, major: -1, minor: -1}
	switch d.Type {
	case "", "a":
	case "b":
		r.typ = unix.BPF_DEVCG_DEV_BLOCK
	case "c":
		r.typ = unix.BPF_DEVCG_DEV_CHAR
	default:
		return r, &FieldError{Field: field("type"), Msg: fmt.Sprintf("unknown device type %q (want a, b or c)", d.Type)}
	}
	for _, n := range []struct {
		name string
		v    *int64
		to   *int64
	}{{"major", d.Major, &r.major}, {"minor", d.Minor, &r.minor}} {
		if n.v == nil || *n.v < 0 { // negative: runc's and cgroup v1's wildcard
			continue
		}
		if *n.v > math.MaxUint32 {
			return r, &FieldError{Field: field(n.name), Msg: fmt.Sprintf("%d does not fit in 32 bits", *n.v)}
		}
		*n.to = *n.v
	}
	if d.Access == "" {
		r.acc = accAll
	}
	for _, c := range d.Access {
		switch c {
		case 'r':
			r.acc |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			r.acc |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			r.acc |= unix.BPF_DEVCG_ACC_MKNOD
		default:
			return r, &FieldError{Field: field("access"), Msg: fmt.Sprintf("%q has %q (want letters of \"rwm\")", d.Access, c)}
		}
	}
	return r, nil
}

// chain is the rules that can match requests of one device type, in
// order, without those that change nothing, and the verdict when none
// matches.
type chain struct {
	def   bool
	rules []rule
}

// chainOf keeps the rules of rs that apply to devices of type typ.
func chainOf(rs []rule, typ uint32) chain {
	var c chain
	for _, r := range rs {
		if r.typ != 0 && r.typ != typ {
			continue
		}
		// A rule matching every request of the type hides the rules
		// before it (a leading "a *:* rwm") and is the default.
		if r.major < 0 && r.minor < 0 && r.acc == accAll {
			c = chain{def: r.allow}
			continue
		}
		c.rules = append(c.rules, r)
	}
	// Rules right before the default saying what it says change nothing.
	for len(c.rules) > 0 && c.rules[0].allow == c.def {
		c.rules = c.rules[1:]
	}
	return c
}

// generate dispatches on the device type once (the kernel asks for block
// and char devices only: anything not block is taken as char) to a chain
// per type. A chain tests its rules last first, each a block that returns
// the rule's verdict when it matches and falls through to the rule before
// otherwise, and ends in the chain's default.
//
// Each block has one test that falls through to the next block, on a
// value it does not narrow (a failed equality): narrowed registers would
// reach the blocks after and keep the verifier from pruning its states,
// whose count, and the load time, would then grow with the square of the
// rules. So major and minor are compared at once (R4), and access bits are
// tested in a copy (R0).
func generate(rs []rule) ([]Insn, error) {
	chains := [...]chain{chainOf(rs, unix.BPF_DEVCG_DEV_CHAR), chainOf(rs, unix.BPF_DEVCG_DEV_BLOCK)}
	var used [2]bool
	var needAllow, needDeny, needKey, needMajor, needMinor bool
	for _, c := range chains {
		used[b2i(c.def)] = true
		for _, r := range c.rules {
			used[b2i(r.allow)] = true
			partial := r.acc != accAll
			needAllow = needAllow || partial && r.allow
			needDeny = needDeny || partial && !r.allow
			needKey = needKey || r.major >= 0 && r.minor >= 0
			needMajor = needMajor || r.major >= 0 && r.minor < 0
			needMinor = needMinor || r.major < 0 && r.minor >= 0
		}
	}
	a := &asm{}
	if !used[0] || !used[1] { // one verdict for everything
		a.ret(b2i(used[1]))
		return a.program(), nil
	}
	// Chains in program order char, block, then the returns, the block
	// chain's default right after it.
	var ret [2]label
	last := b2i(chains[1].def)
	ret[1-last] = a.ret(1 - last)
	ret[last] = a.ret(last)
	var entry [2]label
	for i := len(chains) - 1; i >= 0; i-- {
		c := chains[i]
		if len(c.rules) == 0 {
			entry[i] = ret[b2i(c.def)]
			continue
		}
		if t := ret[b2i(c.def)]; t != a.first() {
			a.jump(opJA, 0, 0, 0, t)
		}
		for _, r := range c.rules {
			a.block(r, ret[b2i(r.allow)])
		}
		entry[i] = a.first()
	}
	if entry[0] != a.first() {
		a.jump(opJA, 0, 0, 0, entry[0])
	}
	a.jump(opJEQImm, r2, 0, unix.BPF_DEVCG_DEV_BLOCK, entry[1])

	// The prologue, back to front.
	if needKey {
		a.emit(Insn{Code: opOr64, Dst: r4, Src: r5})
		a.emit(Insn{Code: opLsh64, Dst: r4, Imm: 32})
		a.emit(Insn{Code: opMov64, Dst: r4, Src: r6})
	}
	if needKey || needMajor {
		a.emit(Insn{Code: opLoadW, Dst: r6, Src: r1, Off: offMajor})
	}
	if needKey || needMinor {
		a.emit(Insn{Code: opLoadW, Dst: r5, Src: r1, Off: offMinor})
	}
	a.emit(Insn{Code: opAndImm, Dst: r2, Imm: 0xffff})
	if needDeny { // R7 = access | (access == 0 ? 7 : 0), without a branch
		a.emit(Insn{Code: opOr64, Dst: r7, Src: r3})
		a.emit(Insn{Code: opMul64, Dst: r7, Imm: accAll})
		a.emit(Insn{Code: opRsh64, Dst: r7, Imm: 63})
		a.emit(Insn{Code: opAdd64, Dst: r7, Imm: -1})
		a.emit(Insn{Code: opMov64, Dst: r7, Src: r3})
	}
	if needAllow || needDeny {
		a.emit(Insn{Code: opRshImm, Dst: r3, Imm: 16})
		a.emit(Insn{Code: opMovReg, Dst: r3, Src: r2})
	}
	a.emit(Insn{Code: opLoadW, Dst: r2, Src: r1, Off: offAccessType})
	if a.far {
		return nil, fmt.Errorf("%w: %d rules make a program of %d instructions", ErrTooLarge, len(rs), len(a.rev))
	}
	return a.program(), nil
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// block emits the test of r: on a match go to ret, else fall through to
// the code emitted before (the rule before r).
func (a *asm) block(r rule, ret label) {
	next := a.first()
	dev := r.major >= 0 || r.minor >= 0
	switch {
	case r.major >= 0 && r.minor >= 0:
		a.jumpEq(r4, uint64(r.major)<<32|uint64(r.minor), ret)
	case r.major >= 0:
		a.jumpEq(r6, uint64(r.major), ret)
	case r.minor >= 0:
		a.jumpEq(r5, uint64(r.minor), ret)
	}
	if r.acc == accAll {
		return
	}
	// R0 = the access bits that decide: for an allow those asked beyond
	// the rule's (none may be), for a deny those of the rule asked (one
	// must be; R7 asks every bit when the request asks none).
	src, mask, fail, pass := uint8(r3), int32(accAll&^r.acc), uint8(opJNEImm), uint8(opJEQImm)
	if !r.allow {
		src, mask, fail, pass = r7, int32(r.acc), opJEQImm, opJNEImm
	}
	if dev {
		a.jump(fail, r0, 0, 0, next)
	} else {
		a.jump(pass, r0, 0, 0, ret)
	}
	a.emit(Insn{Code: opAndImm, Dst: r0, Imm: mask})
	a.emit(Insn{Code: opMovReg, Dst: r0, Src: src})
}
