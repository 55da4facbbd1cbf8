// See spawn.h for the protocol. Everything after clone() in the child uses
// raw system calls and stack memory only.
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ---- fre-runc's one-CPU start ---- */

/* The CPUs fre-runc may run on when it started, saved by fre_pin_start. */
static cpu_set_t start_affinity;
static int start_affinity_saved;

void fre_pin_start(void)
{
	if (sched_getaffinity(0, sizeof start_affinity, &start_affinity) != 0 ||
	    CPU_COUNT(&start_affinity) < 2)
		return;
	int cpu = sched_getcpu();
	if (cpu < 0)
		return;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof one, &one) == 0)
		start_affinity_saved = 1;
}

int fre_start_affinity(cpu_set_t *out)
{
	if (!start_affinity_saved)
		return 0;
	*out = start_affinity;
	return 1;
}

int fre_unpin_thread(void)
{
	if (!start_affinity_saved)
		return 0;
	return sched_setaffinity(0, sizeof start_affinity, &start_affinity) == 0 ? 0 : -errno;
}

/* ---- fre-runc's start without transparent huge pages ---- */

/* Set when fre_thp_off disabled THP for this process (it had not been). */
static int thp_off_by_us;

void fre_thp_off(void)
{
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 0 &&
	    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0)
		thp_off_by_us = 1;
}

void fre_thp_restore(void)
{
	if (thp_off_by_us) {
		thp_off_by_us = 0;
		prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
	}
}

/* child carries the plan out in the cloned child, in order, from clone()
 * to the exec (fre-dmz's, or the program's own). */
static int child(void *arg)
{
	struct fre_spawn *s = arg;
	spawn_ts(s, FRE_TS_START);
	pid_t ppid = s->ppid;
	spawn_sync_fd = s->sync_fd;
	/* Die with the creating thread until set-up is done. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	pid_t pp = getppid();
	if (pp != 0 && pp != ppid) /* 0: the parent is outside our new pid namespace */
		_exit(1);
	/* Every signal stays blocked (fre_spawn_start blocked them): Go's
	 * handlers must not run here. execve resets the handlers to their
	 * defaults and fre-dmz unblocks, so nothing is reset one by one. */
	close(s->parent_sync_fd);
	spawn_close_others(s);
	spawn_join_cgroups(s);
	/* Device nodes and mount targets get their exact modes. */
	umask(0);

	spawn_join_namespaces(s);

	/* Wait for the parent: maps written, cgroup joined, limits set. With
	 * late_go nothing below depends on those, so the set-up runs while the
	 * parent works and the wait comes after it, before seccomp. */
	/* go_at_mount >= 0: that wait comes amid the mounts instead (and
	 * a second one at go2_at_mount). */
	if (!s->late_go && s->go_at_mount < 0)
		spawn_go_and_join(s);
	if (s->userns_root) {
		if (syscall(SYS_setresgid, 0, 0, 0) < 0) spawn_fail(errno, "setgid in user namespace", NULL);
		if (syscall(SYS_setresuid, 0, 0, 0) < 0) spawn_fail(errno, "setuid in user namespace", NULL);
	}
	if (s->go_at_mount < 0 && s->cgroupns_new && unshare(CLONE_NEWCGROUP) < 0)
		spawn_fail(errno, "unshare cgroup namespace", NULL);
	/* A time namespace is entered at the next exec, so its offsets are
	 * written now, before anything lives in it. */
	if (s->time_ns) {
		if (unshare(CLONE_NEWTIME) < 0)
			spawn_fail(errno, "unshare time namespace", NULL);
		if (s->time_offsets)
			spawn_write_file("/proc/self/timens_offsets", s->time_offsets);
	}

	if (s->mount_ns)
		spawn_setup_root(s);
	if (s->hostname && sethostname(s->hostname, slen(s->hostname)) < 0)
		spawn_fail(errno, "sethostname", s->hostname);
	if (s->domainname && setdomainname(s->domainname, slen(s->domainname)) < 0)
		spawn_fail(errno, "setdomainname", s->domainname);
	for (int i = 0; i < s->nsysctl; i++)
		spawn_write_file(s->sysctl_paths[i], s->sysctl_values[i]);
	if (s->mount_ns) {
		spawn_finish_root(s);
	} else if (s->rootfs && s->rootfs[0]) { /* the init: exec and hooks have none */
		/* No mount namespace: the host's mounts stay as they are, and the
		 * container's root is its rootfs by chroot, as runc does. */
		if (chdir(s->rootfs) < 0 || chroot(".") < 0 || chdir("/") < 0)
			spawn_fail(errno, "chroot", s->rootfs);
	}

	for (int i = 0; i < 3; i++)
		if (s->stdio[i] >= 0 && s->stdio[i] != i && dup3(s->stdio[i], i, 0) < 0)
			spawn_fail(errno, "dup stdio", NULL);
	/* The container always gets its own session, as with runc. */
	if (setsid() < 0)
		spawn_fail(errno, "setsid", NULL);
	if (s->console_fd >= 0)
		spawn_setup_console(s);
	for (int i = 0; i < s->nrlimits; i++) {
		struct rlimit rl = { s->rlimits[i].soft, s->rlimits[i].hard };
		if (setrlimit(s->rlimits[i].resource, &rl) < 0)
			spawn_fail(errno, "setrlimit", NULL);
	}

	/* No fd beyond stdio and --preserve-fds may reach the program; our own
	 * sync and fifo fds are CLOEXEC and so are marked here too. */
	syscall(SYS_close_range, 3 + s->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);

	/* The cwd must be inside the container's root (CVE-2024-21626): it is
	 * checked right after each chdir, before a seccomp filter that might
	 * refuse getcwd. */
	char cwdbuf[4096];
	int chdir_done = 0;
	if (s->cwd && chdir(s->cwd) == 0) {
		chdir_done = 1;
		if (syscall(SYS_getcwd, cwdbuf, sizeof(cwdbuf)) < 0 || cwdbuf[0] != '/')
			spawn_fail(EPERM, "cwd is outside the container root", s->cwd);
	}
	/* Without no_new_privs only a privileged process may install a filter,
	 * so it goes in before the credentials drop (as runc does); the filter
	 * must then allow what follows. Otherwise fre-dmz installs it last. */
	/* A filter with a listener (SCMP_ACT_NOTIFY) goes in here too: its fd
	 * goes to the parent ("S" + SCM_RIGHTS), which hands it to the agent. */
	/* The late (or final) wait goes before a filter that might refuse
	 * recv. */
	if (s->late_go || s->final_go)
		spawn_wait_go(s);
	spawn_seccomp_early(s);
	spawn_set_creds(s);
	if (s->cwd && !chdir_done) {
		/* Only the user may enter it (root could not: root-squashed NFS). */
		if (chdir(s->cwd) < 0)
			spawn_fail(errno, "chdir to cwd", s->cwd);
		if (syscall(SYS_getcwd, cwdbuf, sizeof(cwdbuf)) < 0 || cwdbuf[0] != '/')
			spawn_fail(EPERM, "cwd is outside the container root", s->cwd);
	}
	umask(s->umask >= 0 ? s->umask : 022); /* runc's default */

	char pathbuf[4096];
	const char *prog = spawn_lookup(s, pathbuf, sizeof(pathbuf));

	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		spawn_fail(errno, "no_new_privs", NULL);
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);

	/* What takes effect at the next exec (the LSM labels) or stays
	 * across it. */
	for (int i = 0; i < s->nattr; i++)
		spawn_write_file(s->attr_paths[i], s->attr_values[i]);
	if (s->personality >= 0 && personality((unsigned long)s->personality) < 0)
		spawn_fail(errno, "personality", NULL);
	if (s->ioprio >= 0 && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, s->ioprio) < 0)
		spawn_fail(errno, "ioprio_set", NULL);
	if (s->set_sched)
		spawn_set_sched(s);

	/* Nothing left for fre-dmz to do (no start to wait for, no filter at
	 * all: one installed above would have to allow the calls below, which
	 * fre-dmz does not make) and a program that is safe to exec from here:
	 * exec it directly, one exec less on the start path. */
	spawn_exec_direct(s, prog);
	spawn_exec_dmz(s, prog);
}

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* clone3 with a function to run on the new stack, as clone(2)'s libc
 * wrapper does for clone: the child must not return into our frames.
 * x86_64 only; elsewhere -ENOSYS (the caller falls back). */
struct fre_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#if defined(__x86_64__)
long fre_clone3(struct fre_clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(".text\n.globl fre_clone3\n.type fre_clone3,@function\nfre_clone3:\n"
	"mov %rdx, %r8\n"      /* fn: r8 and r9 survive the syscall */
	"mov %rcx, %r9\n"      /* arg */
	"mov $435, %eax\n"     /* SYS_clone3 */
	"syscall\n"
	"test %rax, %rax\n"
	"jnz 1f\n"
	"xor %ebp, %ebp\n"     /* the child, on its own stack */
	"mov %r9, %rdi\n"
	"call *%r8\n"
	"mov %eax, %edi\n"
	"mov $60, %eax\n"      /* exit */
	"syscall\n"
	"hlt\n"
	"1: ret\n");
#else
static long fre_clone3(struct fre_clone_args *args, size_t size, int (*fn)(void *), void *arg)
{
	(void)args; (void)size; (void)fn; (void)arg;
	return -ENOSYS;
}
#endif

int fre_spawn_start(struct fre_spawn *s, int *pidfd)
{
	/* CLONE_VM: no copy of the parent's page tables (a Go process maps a
	 * lot); the child gets its own stack and its own mm at execve. The
	 * parent keeps s and the stack alive until the child has exec'd or
	 * exited (fre_spawn_free after Wait). */
	const size_t stack_size = 256 * 1024;
	s->stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (s->stack == MAP_FAILED) {
		s->stack = NULL;
		return -errno;
	}
	s->stack_size = stack_size;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (s->pidns_fd >= 0 && setns(s->pidns_fd, CLONE_NEWPID) < 0) {
		int e = errno;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return -e;
	}
	/* Non-dumpable from birth: until it execs fre-dmz, the child's
	 * /proc/<pid>/exe is fre-runc, and no process of the container may
	 * open it (that needs CAP_SYS_PTRACE over a non-dumpable process). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	s->ppid = getpid();
	/* The child inherits this thread's CPUs: fre-runc's original ones, not
	 * the one it pinned itself to (so the container runs where runc's
	 * would, and the child starts on an idle CPU, beside its parent). */
	cpu_set_t pinned;
	int repin = start_affinity_saved && sched_getaffinity(0, sizeof pinned, &pinned) == 0;
	if (repin && sched_setaffinity(0, sizeof start_affinity, &start_affinity) != 0) {
		int e = errno;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return -e;
	}
	int fd = -1;
	int pid, e;
	if (s->cgroup_dir_fd >= 0) {
		/* Born in its cgroup: no migration afterwards, so none of the
		 * write side of the kernel's cgroup_threadgroup_rwsem that a
		 * write to cgroup.procs takes (and its RCU grace period). */
		struct fre_clone_args ca;
		memset(&ca, 0, sizeof(ca));
		ca.flags = (uint64_t)(unsigned)s->clone_flags | CLONE_VM | CLONE_PIDFD | CLONE_INTO_CGROUP;
		ca.pidfd = (uint64_t)(uintptr_t)&fd;
		ca.exit_signal = SIGCHLD;
		ca.stack = (uint64_t)(uintptr_t)s->stack;
		ca.stack_size = stack_size;
		ca.cgroup = (uint64_t)s->cgroup_dir_fd;
		long r = fre_clone3(&ca, sizeof(ca), child, s);
		pid = r < 0 ? -1 : (int)r;
		e = r < 0 ? (int)-r : 0;
		/* No clone3, or none with CLONE_INTO_CGROUP (before 5.7). */
		if (r == -E2BIG)
			e = ENOSYS;
	} else {
		pid = clone(child, (char *)s->stack + stack_size, s->clone_flags | CLONE_VM | CLONE_PIDFD | SIGCHLD, s, &fd);
		e = errno;
	}
	if (repin)
		sched_setaffinity(0, sizeof pinned, &pinned);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		return -e;
	*pidfd = fd;
	return pid;
}

void fre_spawn_free(struct fre_spawn *s)
{
	if (s->stack)
		munmap(s->stack, s->stack_size);
	s->stack = NULL;
}
