/*
 * fre-dmz: the last step between FRE's set-up and the container's program.
 *
 * The child of fre-runc is a fork of it, so until it execs, /proc/<pid>/exe
 * is the host's fre-runc binary. A container program that is a script with
 * "#!/proc/self/exe" (or an ELF interpreter pointing there) would make the
 * kernel run that host binary inside the container, and a process in the
 * container could then open it and later write it (CVE-2019-5736). So the
 * child execs this tiny static program from a sealed memfd instead; from
 * then on /proc/self/exe is that memfd, and the host binary is out of
 * reach. It also waits for "start" (the exec fifo) and installs seccomp as
 * the very last step, so that only execve must be allowed by the filter.
 *
 * argv: fre-dmz SYNC_FD FIFO_FD SECCOMP_FD SECCOMP_FLAGS SECCOMP_LEN PATH ARGV0 ARGS...
 *   PATH         the program to execve, with ARGV0 ARGS... as its argv
 *   SYNC_FD      sync socket (closed before waiting on the fifo, "X" just
 *                before execve without a fifo, "E"+errno on failure)
 *   FIFO_FD      exec fifo to read one byte from before exec, or -1
 *   SECCOMP_FD   fd holding SECCOMP_LEN struct sock_filter, or -1
 * Built with -nostdlib: no libc, raw system calls only (x86_64, aarch64).
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <asm/unistd.h>

typedef unsigned long ul;

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
	return x0;
#else
#error "fre-dmz: unsupported architecture"
#endif
}

#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static long atol_(const char *s)
{
	long v = 0, neg = 0;
	if (*s == '-') { neg = 1; s++; }
	while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
	return neg ? -v : v;
}

/* die reports "E", the errno (4 bytes) and what failed (what, then path
 * if any), as spawn.c's fail does, and exits 127. */
static void __attribute__((noreturn)) die(long sync, long err, const char *what, const char *path)
{
	if (sync >= 0) {
		static char m[4096];
		long n = 0;
		m[n++] = 'E';
		int e = (int)-err;
		__builtin_memcpy(m + n, &e, 4);
		n += 4;
		for (const char *p = what; p && *p && n < (long)sizeof(m) - 1; p++)
			m[n++] = *p;
		if (path && n < (long)sizeof(m) - 1)
			m[n++] = ' ';
		for (const char *p = path; p && *p && n < (long)sizeof(m); p++)
			m[n++] = *p;
		sys6(__NR_sendto, sync, (long)m, n, 0x4000 /* MSG_NOSIGNAL */, 0, 0);
	}
	sys3(__NR_exit_group, 127, 0, 0);
	__builtin_unreachable();
}

#define F_SETFD 2
#define FD_CLOEXEC 1
#define PR_SET_SECCOMP 22

static struct sock_filter filter[4096];

/* Until start, a signal whose default action ends a process ends the
 * waiting init, as it ends runc's (a Go process then): `kill` of a created
 * container with SIGTERM must not be a no-op. As the init of a new pid
 * namespace the kernel drops such a signal while its action is the
 * default, so the wait catches them. The handler dies of the signal where
 * it can (not a namespace's init) and exits 128+signal where it cannot.
 * It never returns, but x86_64 delivers no signal to a handler without a
 * restorer; execve resets it. */
struct ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};
#define SA_NODEFER 0x40000000UL
#if defined(__x86_64__)
#define SA_RESTORER 0x04000000UL
void dmz_restorer(void);
__asm__(".text\n.global dmz_restorer\ndmz_restorer:\n"
	"mov $15,%rax\n" /* rt_sigreturn */
	"syscall\n");
#define DMZ_SA_FLAGS (SA_NODEFER | SA_RESTORER)
#define DMZ_RESTORER dmz_restorer
#else
#define DMZ_SA_FLAGS SA_NODEFER
#define DMZ_RESTORER 0
#endif

static void on_signal(int sig)
{
	struct ksigaction dfl = { 0 };
	sys6(__NR_rt_sigaction, sig, (long)&dfl, 0, sizeof(dfl.mask), 0, 0);
	sys3(__NR_kill, sys3(__NR_getpid, 0, 0, 0), sig, 0);
	sys3(__NR_exit_group, 128 + sig, 0, 0);
}

static int ends_process(int sig)
{
	switch (sig) {
	case 9: case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 28:
		/* SIGKILL (cannot be caught), SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP,
		 * SIGTTIN, SIGTTOU, SIGURG, SIGWINCH */
		return 0;
	}
	return 1;
}

int dmz_main(long argc, char **argv, char **envp)
{
	if (argc < 8)
		sys3(__NR_exit_group, 126, 0, 0);
	long sync = atol_(argv[1]), fifo = atol_(argv[2]);
	long sfd = atol_(argv[3]), sflags = atol_(argv[4]), slen = atol_(argv[5]);
	char *prog = argv[6];
	long r;
	if (fifo >= 0) {
		struct ksigaction sa = { .handler = on_signal, .flags = DMZ_SA_FLAGS, .restorer = DMZ_RESTORER };
		for (int sig = 1; sig <= 64; sig++)
			if (ends_process(sig))
				sys6(__NR_rt_sigaction, sig, (long)&sa, 0, sizeof(sa.mask), 0, 0);
	}
	/* fre-runc's child blocked every signal; our handlers are the
	 * defaults (or, until start, on_signal: execve resets it), so the
	 * program starts with none blocked. */
	unsigned long none = 0;
	sys6(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, (long)&none, 0, sizeof(none), 0, 0);

	if (sfd >= 0) {
		if (slen <= 0 || slen > 4096)
			die(sync, -22, "read seccomp filter", 0);
		long want = slen * (long)sizeof(struct sock_filter), got = 0;
		while (got < want) {
			r = sys6(__NR_pread64, sfd, (long)filter + got, want - got, got, 0, 0);
			if (r <= 0) die(sync, r < 0 ? r : -5, "read seccomp filter", 0);
			got += r;
		}
		sys3(__NR_close, sfd, 0, 0);
	}
	if (fifo >= 0) {
		/* The child said ready before it exec'd us; closing the socket
		 * tells the parent we no longer run on its memory. */
		sys3(__NR_close, sync, 0, 0);
		sync = -1;
		char c;
		do r = sys3(__NR_read, fifo, &c, 1); while (r == -4 /* EINTR */);
		if (r != 1)
			sys3(__NR_exit_group, 1, 0, 0);
		sys3(__NR_close, fifo, 0, 0);
	} else if (sync >= 0) {
		sys3(__NR_fcntl, sync, F_SETFD, FD_CLOEXEC);
		if (sys6(__NR_sendto, sync, (long)"X", 1, 0x4000, 0, 0) != 1)
			sys3(__NR_exit_group, 1, 0, 0);
	}
	if (sfd >= 0) {
		struct sock_fprog p = { .len = (unsigned short)slen, .filter = filter };
		r = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, sflags, &p);
		if (r < 0) die(sync, r, "seccomp", 0);
	}
	r = sys3(__NR_execve, prog, argv + 7, envp);
	if (sync < 0) {
		/* After start nobody listens on the sync socket: say it on stderr. */
		static const char msg[] = "fre-dmz: exec failed\n";
		sys3(__NR_write, 2, msg, sizeof(msg) - 1);
	}
	die(sync, r, "exec", prog);
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
	"xor %rbp,%rbp\n"
	"mov (%rsp),%rdi\n"
	"lea 8(%rsp),%rsi\n"
	"lea 16(%rsp,%rdi,8),%rdx\n"
	"and $-16,%rsp\n"
	"call dmz_main\n"
	"hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n"
	"ldr x0,[sp]\n"
	"add x1,sp,#8\n"
	"add x2,x1,x0,lsl #3\n"
	"add x2,x2,#8\n"
	"bl dmz_main\n"
	"brk #0\n");
#endif
