package seccomp

import "golang.org/x/sys/unix"

// label is an instruction's position counted from the program's end
// (0 is the last instruction). The assembler works back to front, so a
// label is final as soon as it is emitted and every jump is forward.
type label int

// maxJump is the longest offset a conditional jump encodes (8 bits).
const maxJump = 255

// asm builds a program in reverse.
type asm struct {
	rev  []unix.SockFilter
	rets map[uint32]label // nearest ret of each value, for sharing
}

func newAsm() *asm { return &asm{rets: map[uint32]label{}} }

func (a *asm) here() int { return len(a.rev) }

func (a *asm) emit(code uint16, jt, jf uint8, k uint32) label {
	a.rev = append(a.rev, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
	return label(len(a.rev) - 1)
}

// ret returns a label of "ret k", sharing an earlier one; jump copies it
// when the shared one is out of reach.
func (a *asm) ret(k uint32) label {
	if l, ok := a.rets[k]; ok {
		return l
	}
	l := a.emit(unix.BPF_RET|unix.BPF_K, 0, 0, k)
	a.rets[k] = l
	return l
}

// reach makes t reachable by a conditional jump placed at here()+slack:
// a far ret is copied, anything else far gets a BPF_JA trampoline.
func (a *asm) reach(t label, slack int) label {
	if a.here()+slack-int(t)-1 <= maxJump {
		return t
	}
	if in := a.rev[t]; a.isRet(t) {
		l := a.emit(in.Code, 0, 0, in.K)
		a.rets[in.K] = l
		return l
	}
	return a.emit(unix.BPF_JMP|unix.BPF_JA, 0, 0, uint32(a.here()-int(t)-1))
}

func (a *asm) isRet(l label) bool { return a.rev[l].Code == unix.BPF_RET|unix.BPF_K }

// next makes l the instruction that runs after the one emitted next:
// straight-line code falls through, so a target placed elsewhere needs a
// ret copy or a BPF_JA.
func (a *asm) next(l label) {
	if int(l) == a.here()-1 {
		return
	}
	if a.isRet(l) {
		a.emit(unix.BPF_RET|unix.BPF_K, 0, 0, a.rev[l].K)
		return
	}
	a.emit(unix.BPF_JMP|unix.BPF_JA, 0, 0, uint32(a.here()-int(l)-1))
}

// jump emits "if A <op> k goto jt else goto jf".
func (a *asm) jump(op uint16, k uint32, jt, jf label) label {
	if jt == jf {
		return jt
	}
	// Resolving jf may insert one instruction, moving the jump one
	// further from jt: leave room for it.
	jt = a.reach(jt, 1)
	jf = a.reach(jf, 0)
	p := a.here()
	return a.emit(unix.BPF_JMP|op|unix.BPF_K, uint8(p-int(jt)-1), uint8(p-int(jf)-1), k)
}

// load emits "A = 32-bit word at off in seccomp_data".
func (a *asm) load(off uint32) label {
	return a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0, 0, off)
}

// and emits "A &= k".
func (a *asm) and(k uint32) label {
	return a.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0, 0, k)
}

// program returns the instructions in execution order.
func (a *asm) program() []unix.SockFilter {
	p := make([]unix.SockFilter, len(a.rev))
	for i, in := range a.rev {
		p[len(p)-1-i] = in
	}
	return p
}
