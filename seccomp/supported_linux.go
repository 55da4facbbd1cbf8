package seccomp

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Supported lists the actions, architectures and flags Compile accepts,
// for `fre-runc features`. Architectures without a syscall table here are
// accepted (their syscalls get the default action) and listed too, as
// runc lists every architecture libseccomp knows.
func Supported() (actions []string, archs []string, flags []string) {
	for _, a := range []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
	} {
		actions = append(actions, string(a))
	}
	for _, ab := range abis {
		archs = append(archs, string(ab.arch))
	}
	for f := range flagBits {
		flags = append(flags, string(f))
	}
	sort.Strings(flags)
	return actions, archs, flags
}
