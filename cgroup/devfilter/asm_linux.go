package devfilter

import (
	"encoding/binary"
	"math"

	"golang.org/x/sys/unix"
)

// Insn is one eBPF instruction (struct bpf_insn).
type Insn struct {
	Code uint8 // class | operation | source
	Dst  uint8 // destination register, 0-10
	Src  uint8 // source register
	Off  int16 // jump offset, or memory offset
	Imm  int32
}

// Registers. R1 holds the context on entry, R0 the return value; both
// are scratch in between.
const (
	r0 = iota
	r1
	r2 // type
	r3 // access
	r4 // major<<32 | minor
	r5 // minor
	r6 // major
	r7 // access, or every bit when none is asked (for denies)
)

// Opcodes used. 32-bit ALU operations (BPF_ALU) zero-extend their result,
// so registers hold the context's u32 fields as they are.
const (
	opLoadW   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W
	opLoadImm = unix.BPF_LD | unix.BPF_DW | unix.BPF_IMM // two slots: imm low, then high
	opMovImm  = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K
	opMovReg  = unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X
	opAndImm  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opRshImm  = unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K
	opMov64   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
	opAdd64   = unix.BPF_ALU64 | unix.BPF_ADD | unix.BPF_K
	opMul64   = unix.BPF_ALU64 | unix.BPF_MUL | unix.BPF_K
	opLsh64   = unix.BPF_ALU64 | unix.BPF_LSH | unix.BPF_K
	opRsh64   = unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K
	opOr64    = unix.BPF_ALU64 | unix.BPF_OR | unix.BPF_X
	opJA      = unix.BPF_JMP | unix.BPF_JA
	opJEQImm  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJNEImm  = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
	opJEQReg  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_X
	opExit    = unix.BPF_JMP | unix.BPF_EXIT
)

// label is an instruction's position counted from the program's end (0 is
// the last instruction). The assembler works back to front, as seccomp's
// does, so every jump is forward and its offset known when it is emitted.
type label int

// asm builds a program in reverse.
type asm struct {
	rev []Insn
	far bool // a jump offset did not fit in 16 bits
}

func (a *asm) emit(in Insn) { a.rev = append(a.rev, in) }

// first is the label of the instruction emitted last, the first in
// program order so far: what the next instruction emitted falls through to.
func (a *asm) first() label { return label(len(a.rev) - 1) }

// jump emits a jump to t.
func (a *asm) jump(code, dst, src uint8, imm int32, t label) {
	off := len(a.rev) - int(t) - 1
	if off > math.MaxInt16 {
		a.far = true
	}
	a.emit(Insn{Code: code, Dst: dst, Src: src, Off: int16(off), Imm: imm})
}

// jumpEq emits "if reg == v goto t". The immediate is sign-extended to 64
// bits, so a larger v is put in R1 first.
func (a *asm) jumpEq(reg uint8, v uint64, t label) {
	if v <= math.MaxInt32 {
		a.jump(opJEQImm, reg, 0, int32(v), t)
		return
	}
	a.jump(opJEQReg, reg, r1, 0, t)
	a.emit(Insn{Imm: int32(uint32(v >> 32))})
	a.emit(Insn{Code: opLoadImm, Dst: r1, Imm: int32(uint32(v))})
}

// ret emits "return v" and returns its label.
func (a *asm) ret(v int32) label {
	a.emit(Insn{Code: opExit})
	a.emit(Insn{Code: opMovImm, Dst: r0, Imm: v})
	return a.first()
}

// program returns the instructions in execution order.
func (a *asm) program() []Insn {
	p := make([]Insn, len(a.rev))
	for i, in := range a.rev {
		p[len(p)-1-i] = in
	}
	return p
}

// encode lays insns out as the kernel reads them: struct bpf_insn in host
// byte order, whose register nibbles swap places on big-endian hosts.
func encode(insns []Insn) []byte {
	le := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	b := make([]byte, 8*len(insns))
	for i, in := range insns {
		p := b[8*i : 8*i+8]
		p[0] = in.Code
		if le {
			p[1] = in.Dst&0xf | in.Src<<4
		} else {
			p[1] = in.Dst<<4 | in.Src&0xf
		}
		binary.NativeEndian.PutUint16(p[2:], uint16(in.Off))
		binary.NativeEndian.PutUint32(p[4:], uint32(in.Imm))
	}
	return b
}
