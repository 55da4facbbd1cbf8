package seccomp

import (
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// byteReader turns fuzz input into choices; it yields zeros when spent.
type byteReader struct{ b []byte }

func (r *byteReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) u64() uint64 {
	var v uint64
	switch r.next() % 4 {
	case 0:
		return uint64(r.next())
	case 1:
		return 0xffffffff
	}
	for range 8 {
		v = v<<8 | uint64(r.next())
	}
	return v
}

var (
	fuzzActions = []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKill, specs.ActKillProcess,
		specs.ActTrap, specs.ActTrace, specs.ActLog, specs.ActNotify, "SCMP_ACT_BOGUS"}
	fuzzOps = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual, "SCMP_CMP_BOGUS"}
	fuzzNames = []string{"read", "write", "mkdir", "clone", "clone3", "personality", "socket", "ioctl", "getpid",
		"socketcall", "mmap2", "cacheflush", "newfstatat", "no_such_call", "", "rt_sigaction", "io_uring_setup", "_llseek"}
)

// profileFrom decodes a profile from fuzz bytes: small alphabets make
// valid profiles common, with some invalid values mixed in.
func profileFrom(b []byte) *specs.LinuxSeccomp {
	r := &byteReader{b}
	s := &specs.LinuxSeccomp{DefaultAction: fuzzActions[int(r.next())%len(fuzzActions)]}
	if r.next()%4 == 0 {
		s.DefaultErrnoRet = uptr(uint(r.next()))
	}
	archs, _, flags := Supported()
	for range r.next() % 4 {
		s.Architectures = append(s.Architectures, specs.Arch(archs[int(r.next())%len(archs)]))
	}
	if r.next()%8 == 0 {
		s.Flags = append(s.Flags, specs.LinuxSeccompFlag(flags[int(r.next())%len(flags)]))
	}
	for range r.next() % 24 {
		sc := specs.LinuxSyscall{Action: fuzzActions[int(r.next())%len(fuzzActions)]}
		for range 1 + r.next()%3 {
			sc.Names = append(sc.Names, fuzzNames[int(r.next())%len(fuzzNames)])
		}
		if r.next()%3 == 0 {
			sc.ErrnoRet = uptr(uint(r.next()))
		}
		for range r.next() % 4 {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{
				Index: uint(r.next() % 7), Op: fuzzOps[int(r.next())%len(fuzzOps)], Value: r.u64(), ValueTwo: r.u64(),
			})
		}
		s.Syscalls = append(s.Syscalls, sc)
	}
	return s
}

// FuzzCompile: Compile never panics, and every program it returns passes
// the verifier and agrees with the reference on a few syscalls.
//
//	go test -fuzz FuzzCompile ./seccomp
func FuzzCompile(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 2, 0, 2, 0, 5, 6, 1, 2, 3, 1, 6, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("personality clone socket mkdir ioctl read write"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := profileFrom(b)
		for _, goarch := range []string{"amd64", "arm64"} {
			prog, _, err := compile(s, goarch)
			if err != nil {
				continue
			}
			if err := verify(prog); err != nil {
				t.Fatal(err)
			}
			r := &byteReader{b}
			for _, audit := range []uint32{auditX86_64, auditI386, auditAARCH64, auditARM} {
				for _, name := range fuzzNames {
					d := data{arch: audit}
					for _, ab := range abis {
						if ab.audit == audit && ab.table != nil {
							if n, ok := ab.resolve(name); ok {
								d.nr = n
							}
						}
					}
					for i := range d.args {
						d.args[i] = r.u64()
					}
					check(t, s, goarch, prog, d)
				}
			}
		}
	})
}
