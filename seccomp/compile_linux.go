package seccomp

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// maxInsns is the kernel's BPF_MAXINSNS.
const maxInsns = 4096

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// badArchAction is returned for an ABI the profile does not allow; see the
// package doc for why it kills the process rather than the thread.
const badArchAction = unix.SECCOMP_RET_KILL_PROCESS

type cond struct {
	index uint
	op    specs.LinuxSeccompOperator
	value uint64
	two   uint64
}

// rule is one validated profile entry; no conds means unconditional.
type rule struct {
	names []string
	act   uint32
	conds []cond
}

// profile is a validated LinuxSeccomp.
type profile struct {
	def    uint32
	archs  []*abi
	rules  []rule
	flags  uint
	denies bool            // default action denies: ENOSYS for unknown new syscalls
	names  map[string]bool // every syscall name in the profile
}

// Compile translates an OCI seccomp profile into a BPF program for
// seccomp(SECCOMP_SET_MODE_FILTER) and the filter flags to pass with it,
// for the architecture this binary runs on. Errors are *FieldError
// wrapping ErrInvalidProfile or ErrNotSupported, or ErrTooLarge.
func Compile(s *specs.LinuxSeccomp) (prog []unix.SockFilter, flags uint, err error) {
	return compile(s, runtime.GOARCH)
}

func compile(s *specs.LinuxSeccomp, goarch string) ([]unix.SockFilter, uint, error) {
	native, ok := nativeArch[goarch]
	if !ok {
		return nil, 0, fmt.Errorf("%w: architecture %s", ErrNotSupported, goarch)
	}
	p, err := validate(s, native)
	if err != nil {
		return nil, 0, err
	}
	// SCMP_ACT_NOTIFY: the filter is installed with a new listener, whose
	// fd the runtime hands to the agent at listenerPath.
	if UsesNotify(s) {
		if s.ListenerPath == "" {
			return nil, 0, invalid("linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY needs a listenerPath")
		}
		if s.DefaultAction == specs.ActNotify {
			return nil, 0, invalid("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
		}
		// The runtime's own reports to its parent are writes made under
		// the filter: an agent could never see them (runc refuses it too).
		for i, sc := range s.Syscalls {
			if sc.Action == specs.ActNotify && slices.Contains(sc.Names, "write") {
				return nil, 0, invalid(fmt.Sprintf("linux.seccomp.syscalls[%d]", i), "SCMP_ACT_NOTIFY cannot be used for the write syscall")
			}
		}
		p.flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	prog := generate(p)
	if len(prog) > maxInsns {
		return nil, 0, fmt.Errorf("%w: %d instructions, the kernel takes at most %d", ErrTooLarge, len(prog), maxInsns)
	}
	return prog, p.flags, nil
}

// UsesNotify reports whether any rule of the profile notifies a listener.
func UsesNotify(s *specs.LinuxSeccomp) bool {
	if s == nil {
		return false
	}
	if s.DefaultAction == specs.ActNotify {
		return true
	}
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

func invalid(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...), Err: ErrInvalidProfile}
}

// action turns an OCI action into a SECCOMP_RET_* value.
func action(field string, act specs.LinuxSeccompAction, errnoRet *uint, errnoField string) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		if act != specs.ActErrno && act != specs.ActTrace {
			return 0, invalid(errnoField, "set, but action %s takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)", act)
		}
		if *errnoRet > unix.SECCOMP_RET_DATA {
			return 0, invalid(errnoField, "%d out of range (0-65535)", *errnoRet)
		}
		data = uint32(*errnoRet)
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | data, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | data, nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	}
	return 0, invalid(field, "unknown action %q", string(act))
}

var flagBits = map[specs.LinuxSeccompFlag]uint{
	"SECCOMP_FILTER_FLAG_TSYNC":            unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: 0, // only means something with a listener, which notify needs
}

var ops = map[specs.LinuxSeccompOperator]bool{
	specs.OpNotEqual: true, specs.OpLessThan: true, specs.OpLessEqual: true, specs.OpEqualTo: true,
	specs.OpGreaterEqual: true, specs.OpGreaterThan: true, specs.OpMaskedEqual: true,
}

func validate(s *specs.LinuxSeccomp, native specs.Arch) (*profile, error) {
	if s == nil {
		return nil, invalid("linux.seccomp", "no profile")
	}
	p := &profile{names: map[string]bool{}}
	var err error
	if s.DefaultErrnoRet != nil && s.DefaultAction != specs.ActErrno && s.DefaultAction != specs.ActTrace {
		return nil, invalid("linux.seccomp.defaultErrnoRet", "set, but defaultAction %s takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)", s.DefaultAction)
	}
	if p.def, err = action("linux.seccomp.defaultAction", s.DefaultAction, s.DefaultErrnoRet, "linux.seccomp.defaultErrnoRet"); err != nil {
		return nil, err
	}
	switch s.DefaultAction {
	case specs.ActErrno, specs.ActKill, specs.ActKillThread, specs.ActKillProcess, specs.ActTrap:
		p.denies = true
	}

	seen := map[specs.Arch]bool{native: true}
	p.archs = append(p.archs, lookupABI(native))
	for i, a := range s.Architectures {
		ab := lookupABI(a)
		if ab == nil {
			return nil, invalid(fmt.Sprintf("linux.seccomp.architectures[%d]", i), "unknown architecture %q", string(a))
		}
		if !seen[a] {
			seen[a] = true
			p.archs = append(p.archs, ab)
		}
	}

	for i, f := range s.Flags {
		bit, ok := flagBits[f]
		if !ok {
			return nil, invalid(fmt.Sprintf("linux.seccomp.flags[%d]", i), "unknown flag %q", string(f))
		}
		p.flags |= bit
	}

	for i, sc := range s.Syscalls {
		field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
		if len(sc.Names) == 0 {
			return nil, invalid(field+".names", "empty")
		}
		for j, n := range sc.Names {
			if n == "" {
				return nil, invalid(fmt.Sprintf("%s.names[%d]", field, j), "empty syscall name")
			}
			p.names[n] = true
		}
		r := rule{names: sc.Names}
		if r.act, err = action(field+".action", sc.Action, sc.ErrnoRet, field+".errnoRet"); err != nil {
			return nil, err
		}
		for j, a := range sc.Args {
			af := fmt.Sprintf("%s.args[%d]", field, j)
			if a.Index > 5 {
				return nil, invalid(af+".index", "%d out of range (syscalls have 6 arguments, 0-5)", a.Index)
			}
			if !ops[a.Op] {
				return nil, invalid(af+".op", "unknown operator %q", string(a.Op))
			}
			r.conds = append(r.conds, cond{a.Index, a.Op, a.Value, a.ValueTwo})
		}
		// Like runc: a rule that does what the default does is dropped.
		if r.act == p.def {
			continue
		}
		if sameArgTwice(r.conds) {
			// Like runc: conditions on the same argument could never all
			// hold, so each becomes a rule of its own (they are ORed).
			for _, c := range r.conds {
				p.rules = append(p.rules, rule{names: r.names, act: r.act, conds: []cond{c}})
			}
			continue
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// sameArgTwice reports whether two conditions test the same argument.
func sameArgTwice(conds []cond) bool {
	var seen [6]bool
	for _, c := range conds {
		if seen[c.index] {
			return true
		}
		seen[c.index] = true
	}
	return false
}

// outcome is what happens to one syscall number: a ret, or a list of
// conditional rules falling back to the default.
type outcome struct {
	ret   uint32
	conds []*rule // non-nil: try these in order, then ret
}

// segment is an interval of syscall numbers [start, next segment's start)
// with one outcome.
type segment struct {
	start uint64
	out   outcome
}

// plan computes the per-number outcomes of one ABI as sorted segments.
func (p *profile) plan(a *abi) []segment {
	lo, hi := a.nrRange()
	if a.table == nil {
		return []segment{{lo, outcome{ret: p.def}}}
	}
	type sys struct {
		uncond *rule
		conds  []*rule
	}
	calls := make(map[uint32]*sys, len(p.names))
	var last uint64 // highest number the profile names, for the ENOSYS stub
	named := false
	for i := range p.rules {
		r := &p.rules[i]
		for _, n := range r.names {
			nr, ok := a.resolve(n)
			if !ok {
				continue
			}
			c := calls[nr]
			if c == nil {
				c = &sys{}
				calls[nr] = c
			}
			if len(r.conds) == 0 {
				if c.uncond == nil {
					c.uncond = r
				}
			} else {
				c.conds = append(c.conds, r)
			}
		}
	}
	// runc sizes its ENOSYS stub by every name in the config, including
	// rules dropped for matching the default.
	for n := range p.names {
		if nr, ok := a.resolve(n); ok {
			named = true
			last = max(last, uint64(nr))
		}
	}
	outs := make(map[uint64]outcome, len(calls)+1)
	for nr, c := range calls {
		if c.uncond != nil {
			outs[uint64(nr)] = outcome{ret: c.uncond.act}
		} else {
			outs[uint64(nr)] = outcome{ret: p.def, conds: c.conds}
		}
	}
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	if p.denies {
		if nr, ok := a.resolve("clone3"); ok && !p.names["clone3"] {
			outs[uint64(nr)] = outcome{ret: enosys}
		}
	}
	nrs := make([]uint64, 0, len(outs))
	for nr := range outs {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })

	var segs []segment
	add := func(start uint64, o outcome) {
		if n := len(segs); n > 0 && segs[n-1].out.conds == nil && o.conds == nil && segs[n-1].out.ret == o.ret {
			return // extends the previous interval
		}
		segs = append(segs, segment{start, o})
	}
	// gap fills [from, to) where the profile has no rule: the default,
	// but, like runc, ENOSYS above every number the profile names, as
	// those are syscalls newer than the profile; libc then falls back.
	gap := func(from, to uint64) {
		if p.denies && named && to > last+1 {
			if from <= last {
				add(from, outcome{ret: p.def})
				from = last + 1
			}
			add(from, outcome{ret: enosys})
			return
		}
		add(from, outcome{ret: p.def})
	}
	pos := lo
	for _, nr := range nrs {
		if nr > pos {
			gap(pos, nr)
		}
		add(nr, outs[nr])
		pos = nr + 1
	}
	if pos < hi {
		gap(pos, hi)
	}
	return segs
}

// generate assembles the program: arch dispatch, then per ABI a binary
// search over its segments.
func generate(p *profile) []unix.SockFilter {
	a := newAsm()
	bad := a.ret(badArchAction)

	// Group ABIs by audit value: x86_64 and x32 share one.
	type group struct {
		audit  uint32
		native *abi // x86_64 numbers (or the only ABI of this audit value)
		x32    *abi
	}
	var groups []*group
	byAudit := map[uint32]*group{}
	for _, ab := range p.archs {
		g := byAudit[ab.audit]
		if g == nil {
			g = &group{audit: ab.audit}
			byAudit[ab.audit] = g
			groups = append(groups, g)
		}
		if ab.arch == specs.ArchX32 {
			g.x32 = ab
		} else {
			g.native = ab
		}
	}

	// Back to front: the last group's code first, the arch checks last.
	entries := make([]label, len(groups))
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		if g.audit != 0xc000003e {
			t := a.tree(p, g.native, p.plan(g.native))
			if a.isRet(t) {
				entries[i] = t // no table, or nothing to check
				continue
			}
			a.next(t)
			entries[i] = a.load(offNr)
			continue
		}
		// x86_64 audit value: nr ≥ x32 bit is x32, except nr -1.
		x32 := bad
		if g.x32 != nil {
			x32 = a.tree(p, g.x32, p.plan(g.x32))
		}
		nat := bad
		if g.native != nil {
			nat = a.tree(p, g.native, p.plan(g.native))
		}
		split := a.jump(unix.BPF_JGE, x32SyscallBit, x32, nat)
		a.jump(unix.BPF_JEQ, math.MaxUint32, nat, split)
		entries[i] = a.load(offNr)
	}
	next := bad
	for i := len(groups) - 1; i >= 0; i-- {
		next = a.jump(unix.BPF_JEQ, groups[i].audit, entries[i], next)
	}
	a.next(next)
	a.load(offArch)
	return a.program()
}

// tree emits a binary search over segs (A holds nr) and returns its entry.
func (a *asm) tree(p *profile, ab *abi, segs []segment) label {
	if len(segs) == 1 {
		o := segs[0].out
		fallback := a.ret(o.ret)
		return a.rules(o.conds, fallback, ab.bits32)
	}
	mid := len(segs) / 2
	right := a.tree(p, ab, segs[mid:])
	left := a.tree(p, ab, segs[:mid])
	return a.jump(unix.BPF_JGE, uint32(segs[mid].start), right, left)
}

// rules emits conditional rules tried in order, falling back to fallback.
func (a *asm) rules(rs []*rule, fallback label, bits32 bool) label {
	next := fallback
	for i := len(rs) - 1; i >= 0; i-- {
		l := a.ret(rs[i].act)
		for j := len(rs[i].conds) - 1; j >= 0; j-- {
			l = a.cond(rs[i].conds[j], l, next, bits32)
		}
		next = l
	}
	return next
}

// cond emits one 64-bit argument comparison: to t if it holds, else f.
// Arguments are little-endian in seccomp_data on every ABI with a table
// here: the low half first.
func (a *asm) cond(c cond, t, f label, bits32 bool) label {
	lo := uint32(offArgs + 8*c.index)
	hi := lo + 4
	vlo, vhi := uint32(c.value), uint32(c.value>>32)
	switch c.op {
	case specs.OpLessThan: // not ≥
		c.op, t, f = specs.OpGreaterEqual, f, t
	case specs.OpLessEqual: // not >
		c.op, t, f = specs.OpGreaterThan, f, t
	case specs.OpNotEqual: // not =
		c.op, t, f = specs.OpEqualTo, f, t
	}
	switch c.op {
	case specs.OpEqualTo:
		if bits32 && vhi != 0 {
			return f
		}
		at := a.here()
		l := a.loaded(lo, at, a.jump(unix.BPF_JEQ, vlo, t, f))
		if bits32 {
			return l
		}
		at = a.here()
		return a.loaded(hi, at, a.jump(unix.BPF_JEQ, vhi, l, f))
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		if bits32 && vhi != 0 {
			return f // the high half, 0, is below vhi
		}
		op := uint16(unix.BPF_JGT)
		if c.op == specs.OpGreaterEqual {
			op = unix.BPF_JGE
		}
		at := a.here()
		l := a.loaded(lo, at, a.jump(op, vlo, t, f))
		if bits32 {
			return l
		}
		at = a.here()
		if vhi != 0 { // not above vhi: equal goes on to the low half
			l = a.jump(unix.BPF_JEQ, vhi, l, f)
		}
		return a.loaded(hi, at, a.jump(unix.BPF_JGT, vhi, t, l))
	case specs.OpMaskedEqual:
		dlo, dhi := uint32(c.two), uint32(c.two>>32)
		l := a.masked(lo, vlo, dlo, t, f)
		if bits32 {
			if dhi != 0 {
				return f
			}
			return l
		}
		return a.masked(hi, vhi, dhi, l, f)
	}
	panic("seccomp: operator not validated: " + string(c.op))
}

// loaded puts "A = word at off" before l if code using A was emitted
// since at; a comparison that collapsed into a plain target needs none.
func (a *asm) loaded(off uint32, at int, l label) label {
	if a.here() == at {
		return l
	}
	return a.load(off)
}

// masked emits "(word at off & m) == d ? t : f".
func (a *asm) masked(off, m, d uint32, t, f label) label {
	if m == 0 {
		if d == 0 {
			return t
		}
		return f
	}
	at := a.here()
	l := a.jump(unix.BPF_JEQ, d, t, f)
	if a.here() == at {
		return l
	}
	if m != math.MaxUint32 {
		a.and(m)
	}
	return a.load(off)
}
