// Package seccomp compiles an OCI seccomp profile (linux.seccomp of a
// runtime spec) into a classic BPF program for seccomp(2), in pure Go, so
// FRE needs neither libseccomp nor cgo to confine a container.
//
// Compile returns the program and the SECCOMP_FILTER_FLAG_* bits; Load
// installs them on the calling thread. Supported lists what Compile
// accepts, for `fre-runc features`.
//
// # Layout of the program
//
//	ld  seccomp_data.arch
//	jeq AUDIT_ARCH_… for every allowed ABI, else ret bad-arch action
//	ld  seccomp_data.nr
//	binary search (jge) over intervals of syscall numbers that share an
//	outcome; a leaf is a ret, or a syscall's argument rules
//
// The program is assembled back to front, so every jump is forward to code
// already placed; a conditional jump farther than 255 instructions goes
// through a BPF_JA trampoline (32-bit offset), or a copy of the ret it
// aims at. Docker's default profile compiles to 310 instructions for x86_64,
// i386 and x32 together, far from the kernel's 4096 limit.
//
// # Semantics (chosen to behave as runc with libseccomp does)
//
//   - Architectures: the native ABI (runtime.GOARCH) is always allowed, as
//     seccomp_init does. Each listed architecture is matched on
//     seccomp_data.arch and its syscalls resolved with its own table
//     (x86_64, i386, x32, aarch64, arm). x32 shares AUDIT_ARCH_X86_64 and is
//     told apart by nr ≥ 0x40000000. A listed architecture without a table
//     here (mips, ppc, s390…; the running kernel never reports them on
//     x86 or arm) gets the default action for every syscall.
//   - Any other architecture, and x32 numbers when x32 is not listed, get
//     SECCOMP_RET_KILL_PROCESS. libseccomp's bad-arch default is
//     SCMP_ACT_KILL (kill the thread); killing the process is stricter and
//     leaves no half-dead multi-threaded process. Kernels before 4.14 read it
//     as kill-thread.
//   - Syscall names unknown to an ABI's table are ignored for that ABI,
//     as runc does (profiles list names of every arch).
//   - A rule whose action equals the default action is dropped, as runc
//     does (libseccomp refuses such rules).
//   - Precedence per syscall, as libseccomp's rule database has it: an
//     unconditional rule wins over every conditional rule of that syscall
//     (the first unconditional one in profile order); otherwise
//     conditional rules are tried in profile order and the first whose
//     conditions all hold decides; if none holds, the default action.
//   - Conditions of one rule are ANDed. Arguments are compared as unsigned
//     64-bit values, both 32-bit halves, as libseccomp does; on the 32-bit
//     ABIs (i386, arm) the high half is taken as zero and is not read.
//     SCMP_CMP_MASKED_EQ is (arg & value) == valueTwo.
//   - SCMP_ACT_ERRNO returns errnoRet, or EPERM when unset (the OCI spec's
//     default; defaultErrnoRet only applies to defaultAction).
//     SCMP_ACT_TRACE passes errnoRet (default EPERM, as runc) to the tracer.
//     SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD, as in libseccomp.
//   - Like runc, when the default action denies (errno, kill, trap),
//     syscalls numbered above every syscall the profile names for an ABI
//     return ENOSYS, and so does clone3 when the profile does not name it,
//     so that libc falls back to older syscalls instead of failing.
//   - SCMP_ACT_NOTIFY returns SECCOMP_RET_USER_NOTIF and adds
//     SECCOMP_FILTER_FLAG_NEW_LISTENER; it needs listenerPath (the runtime
//     sends the listener fd there) and cannot be the default action.
package seccomp
