package seccomp

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
)

//go:generate go run mksyscalls.go

// sysEntry is one row of a generated syscall table (zsyscalls.go).
type sysEntry struct {
	name string
	nr   uint32
}

// x32SyscallBit marks x32 syscall numbers; x32 reports AUDIT_ARCH_X86_64.
const x32SyscallBit = 0x40000000

// abi is one syscall ABI: what seccomp_data.arch reads for it and how its
// syscall numbers are resolved.
type abi struct {
	arch  specs.Arch
	audit uint32
	table []sysEntry // nil: no table; every syscall gets the default action
	// bits32: arguments are 32-bit, the high half of each is zero.
	bits32 bool
}

// abis lists every architecture the OCI spec names. AUDIT_ARCH_* values
// are those of linux/audit.h (also golang.org/x/sys/unix).
var abis = []abi{
	{specs.ArchX86_64, 0xc000003e, sysX86_64, false},
	{specs.ArchX86, 0x40000003, sysX86, true},
	{specs.ArchX32, 0xc000003e, sysX32, false},
	{specs.ArchAARCH64, 0xc00000b7, sysAARCH64, false},
	{specs.ArchARM, 0x40000028, sysARM, true},
	{specs.ArchMIPS, 0x8, nil, true},
	{specs.ArchMIPS64, 0x80000008, nil, false},
	{specs.ArchMIPS64N32, 0xa0000008, nil, false},
	{specs.ArchMIPSEL, 0x40000008, nil, true},
	{specs.ArchMIPSEL64, 0xc0000008, nil, false},
	{specs.ArchMIPSEL64N32, 0xe0000008, nil, false},
	{specs.ArchPPC, 0x14, nil, true},
	{specs.ArchPPC64, 0x80000015, nil, false},
	{specs.ArchPPC64LE, 0xc0000015, nil, false},
	{specs.ArchS390, 0x16, nil, true},
	{specs.ArchS390X, 0x80000016, nil, false},
	{specs.ArchPARISC, 0xf, nil, true},
	{specs.ArchPARISC64, 0x8000000f, nil, false},
	{specs.ArchRISCV64, 0xc00000f3, nil, false},
	{specs.ArchLOONGARCH64, 0xc0000102, nil, false},
	{specs.ArchM68K, 0x4, nil, true},
	// libseccomp's "sh" is little-endian SuperH, "sheb" big-endian.
	{specs.ArchSH, 0x4000002a, nil, true},
	{specs.ArchSHEB, 0x2a, nil, true},
}

func lookupABI(a specs.Arch) *abi {
	for i := range abis {
		if abis[i].arch == a {
			return &abis[i]
		}
	}
	return nil
}

// nativeArch maps GOARCH to the ABI the kernel runs us with.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64,
	"386":   specs.ArchX86,
	"arm64": specs.ArchAARCH64,
	"arm":   specs.ArchARM,
}

// resolve returns the syscall number of name in the ABI's table.
func (a *abi) resolve(name string) (uint32, bool) {
	t := a.table
	i := sort.Search(len(t), func(i int) bool { return t[i].name >= name })
	if i < len(t) && t[i].name == name {
		return t[i].nr, true
	}
	return 0, false
}

// nrRange is the span of syscall numbers the ABI's dispatch sees.
func (a *abi) nrRange() (lo, hi uint64) {
	switch a.arch {
	case specs.ArchX32:
		return x32SyscallBit, 1 << 32
	case specs.ArchX86_64:
		// [0, x32 bit) plus nr -1 (a tracer skipping a syscall), which
		// falls in the last interval.
		return 0, 1 << 32
	}
	return 0, 1 << 32
}
