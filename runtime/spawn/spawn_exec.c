// The child's process: its fds and console, credentials and capabilities,
// seccomp, the program's lookup and the exec (the program's own, or
// fre-dmz's). Everything here runs in the child after clone(): raw system
// calls and stack memory only.
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

/* send_fd sends len bytes of data with fd attached (SCM_RIGHTS) on the
 * unix socket sock: sendmsg's result. */
static ssize_t send_fd(int sock, void *data, size_t len, int fd)
{
	struct iovec iov = { .iov_base = data, .iov_len = len };
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

void spawn_setup_console(struct fre_spawn *s)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) spawn_fail(errno, "open", "/dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0) spawn_fail(errno, "unlock pty", NULL);
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) spawn_fail(errno, "open pty peer", NULL);
	if (s->cons_rows || s->cons_cols) {
		struct winsize ws = { .ws_row = s->cons_rows, .ws_col = s->cons_cols };
		ioctl(slave, TIOCSWINSZ, &ws);
	}
	/* The process's own terminal, as runc's fixStdioPermissions makes it:
	 * a user other than root can then reopen and set it. Only the owner
	 * changes: the group stays devpts' (gid=5, tty, in runc's spec). */
	if (s->set_user && fchown(slave, s->uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM)
		spawn_fail(errno, "chown pty", NULL);
	/* Send the master over the console socket as runc does. */
	char name[] = "/dev/ptmx";
	if (send_fd(s->console_fd, name, sizeof(name) - 1, master) < 0) spawn_fail(errno, "send console", NULL);
	close(master);
	close(s->console_fd);
	if (ioctl(slave, TIOCSCTTY, 0) < 0) spawn_fail(errno, "set controlling tty", NULL);
	for (int i = 0; i < 3; i++)
		if (dup3(slave, i, 0) < 0) spawn_fail(errno, "dup pty", NULL);
	if (slave > 2) close(slave);
}

struct cap_data { uint32_t effective, permitted, inheritable; };

void spawn_set_creds(struct fre_spawn *s)
{
	if (s->set_caps) {
		for (int c = 0; c <= s->cap_last; c++)
			if (!(s->cap_bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				spawn_fail(errno, "drop bounding capability", NULL);
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) spawn_fail(errno, "keepcaps", NULL);
	}
	if (s->set_user) {
		if (syscall(SYS_setgroups, s->ngroups, s->groups) < 0) spawn_fail(errno, "setgroups", NULL);
		if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) spawn_fail(errno, "setgid", NULL);
		if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) spawn_fail(errno, "setuid", NULL);
	}
	if (s->set_caps) {
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) spawn_fail(errno, "keepcaps", NULL);
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct cap_data d[2];
		for (int i = 0; i < 2; i++) {
			d[i].effective = (uint32_t)(s->cap_effective >> (32 * i));
			d[i].permitted = (uint32_t)(s->cap_permitted >> (32 * i));
			d[i].inheritable = (uint32_t)(s->cap_inheritable >> (32 * i));
		}
		if (syscall(SYS_capset, &hdr, d) < 0) spawn_fail(errno, "capset", NULL);
		for (int c = 0; c <= s->cap_last; c++)
			/* EPERM: not in the inheritable set, which the kernel requires;
			 * runc's default spec asks for such ambient caps, runc skips them. */
			if ((s->cap_ambient & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0 && errno != EPERM && errno != EINVAL)
				spawn_fail(errno, "raise ambient capability", NULL);
	}
}

/* spawn_lookup finds the program as execvp would, in the container's PATH. */
const char *spawn_lookup(struct fre_spawn *s, char *buf, size_t n)
{
	if (s->exec_path)
		return s->exec_path;
	const char *prog = s->argv[0];
	for (const char *q = prog; *q; q++) {
		if (*q != '/')
			continue;
		/* A path: it must be there now, inside the container's root, as
		 * runc checks (create fails, not the exec after start). */
		struct stat st;
		if (stat(prog, &st) < 0) {
			char msg[512], *m = msg, *mend = msg + sizeof(msg);
			m = scat(m, mend, "exec: \"");
			m = scat(m, mend, prog);
			m = scat(m, mend, "\": stat ");
			scat(m, mend, prog);
			spawn_fail(errno, msg, NULL);
		}
		return prog;
	}
	const char *path = s->path_env ? s->path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int denied = 0;
	while (*path) {
		const char *e = path;
		while (*e && *e != ':') e++;
		char *p = buf, *end = buf + n;
		if (e == path) p = scat(p, end, ".");
		else { size_t l = e - path; if (l > n - 2) l = n - 2; memcpy(p, path, l); p += l; *p = 0; }
		p = scat(p, end, "/");
		scat(p, end, prog);
		struct stat st;
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(buf, X_OK) == 0) return buf;
			denied = 1;
		}
		path = *e ? e + 1 : e;
	}
	char msg[512], *m = msg, *mend = msg + sizeof(msg);
	m = scat(m, mend, "exec: \"");
	m = scat(m, mend, prog);
	scat(m, mend, denied ? "\": permission denied" : "\": executable file not found in $PATH");
	spawn_fail(denied ? EACCES : ENOENT, msg, NULL);
}

/* spawn_close_others closes every fd the plan does not name. The child has a
 * copy of the whole fd table of a process whose other threads go on
 * working: a pool lock held at the instant of clone, another container's
 * stdio pipe. CLOEXEC would drop them only at exec, and until then a lock
 * would stay held by this copy — by a child that may itself be waiting
 * for that lock's holder (a cgroup claimed after clone). */
void spawn_close_others(struct fre_spawn *s)
{
	int keep[160], n = 0;
#define KEEP(fd) do { if ((fd) > 2 && n < 160) keep[n++] = (fd); } while (0)
	KEEP(s->sync_fd);
	KEEP(s->fifo_fd);
	KEEP(s->console_fd);
	for (int i = 0; i < 3; i++)
		KEEP(s->stdio[i]);
	for (int i = 0; i < s->ncgroup_fds; i++)
		KEEP(s->cgroup_fds[i]);
	for (int i = 0; i < s->njoin; i++)
		KEEP(s->join[i].fd);
	KEEP(s->seccomp_fd);
	KEEP(s->dmz_fd);
#undef KEEP
	if (n >= 160)
		return; /* cannot happen with the plans FRE makes; keep all */
	for (int i = 1; i < n; i++) /* insertion sort: n is small */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t;
		}
	unsigned int from = 3 + (unsigned int)(s->preserve_fds > 0 ? s->preserve_fds : 0);
	for (int i = 0; i < n; i++) {
		if ((unsigned int)keep[i] < from)
			continue;
		if ((unsigned int)keep[i] > from)
			syscall(SYS_close_range, from, (unsigned int)keep[i] - 1, 0);
		from = (unsigned int)keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

/*
 * open_static_elf opens prog for a direct exec when that is as safe as
 * exec'ing it from fre-dmz: a native 64-bit ELF with no interpreter,
 * reached without a magic link (/proc/self/exe and the like). The kernel
 * then maps that file alone: no "#!" line and no PT_INTERP can lead it to
 * the host's fre-runc, as both could in CVE-2019-5736. Exec'd from this
 * close-on-exec fd, a file turned into a script meanwhile fails to exec
 * (execveat(2): ENOENT). -1: go through fre-dmz.
 */
static int open_static_elf(const char *prog)
{
#if defined(__x86_64__)
	const int machine = EM_X86_64;
#elif defined(__aarch64__)
	const int machine = EM_AARCH64;
#else
	const int machine = -1;
#endif
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_CLOEXEC;
	how.resolve = RESOLVE_NO_MAGICLINKS;
	int fd = syscall(SYS_openat2, AT_FDCWD, prog, &how, sizeof(how));
	if (fd < 0)
		return -1;
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != machine ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum == 0 || eh.e_phnum > 64)
		goto no;
	ssize_t want = (ssize_t)eh.e_phnum * (ssize_t)sizeof(Elf64_Phdr);
	if (pread(fd, ph, want, (off_t)eh.e_phoff) != want)
		goto no;
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_INTERP)
			goto no;
	return fd;
no:
	close(fd);
	return -1;
}

void spawn_set_sched(struct fre_spawn *s)
{
	struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t priority; uint64_t runtime, deadline, period; } attr = {
		.size = 48, .policy = s->sched_policy, .flags = s->sched_flags, .nice = s->sched_nice,
		.priority = s->sched_priority, .runtime = s->sched_runtime, .deadline = s->sched_deadline, .period = s->sched_period };
	if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
		spawn_fail(errno, "sched_setattr", NULL);
}

/* default_handlers gives every signal that has a handler (the Go
 * runtime's, copied at clone) its default action, so the mask can be
 * cleared before a direct exec: no Go handler may run in the child. */
static void default_handlers(void)
{
	/* The kernel's struct sigaction (x86_64, aarch64), for raw calls. */
	struct ksigaction { unsigned long handler, flags, restorer, mask; } dfl = { 0 }, old;
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(old.mask)) == 0 &&
		    old.handler != (unsigned long)SIG_DFL && old.handler != (unsigned long)SIG_IGN)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	}
}

/* spawn_seccomp_early installs the filter now, before the credentials
 * change, when fre-dmz is not to install it: without no_new_privs, or
 * with a listener, whose fd goes to the parent (see child in spawn.c). */
void spawn_seccomp_early(struct fre_spawn *s)
{
	int notify = (s->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) != 0;
	if (s->seccomp_fd >= 0 && (!s->no_new_privs || notify)) {
		static __thread struct sock_filter filter[4096];
		ssize_t want = (ssize_t)s->seccomp_len * (ssize_t)sizeof(struct sock_filter);
		if (s->seccomp_len <= 0 || s->seccomp_len > 4096 || pread(s->seccomp_fd, filter, want, 0) != want)
			spawn_fail(EINVAL, "read seccomp filter", NULL);
		if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			spawn_fail(errno, "no_new_privs", NULL);
		struct sock_fprog prog = { .len = (unsigned short)s->seccomp_len, .filter = filter };
		long lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->seccomp_flags, &prog);
		if (lfd < 0)
			spawn_fail(errno, "seccomp", NULL);
		if (notify) {
			char tag = 'S';
			if (send_fd(spawn_sync_fd, &tag, 1, (int)lfd) != 1)
				spawn_fail(errno, "send seccomp listener", NULL);
			close((int)lfd);
		}
		close(s->seccomp_fd);
		s->seccomp_fd = -1;
		s->dmz_argv[3] = "-1";
	}
}

/* spawn_exec_direct execs the program itself when fre-dmz would have
 * nothing to do (see child in spawn.c); it returns when it cannot. */
void spawn_exec_direct(struct fre_spawn *s, const char *prog)
{
	if (s->fifo_fd < 0 && s->seccomp_len == 0) {
		int pfd = open_static_elf(prog);
		if (pfd >= 0) {
			default_handlers();
			spawn_ts(s, FRE_TS_EXEC);
			/* "X": exec'ing now; the socket closes with the exec (it is
			 * close-on-exec), "E" follows if the exec fails. */
			if (send(s->sync_fd, "X", 1, MSG_NOSIGNAL) != 1)
				_exit(1);
			unsigned long none = 0;
			syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
			fre_thp_restore();
			syscall(SYS_execveat, pfd, "", s->argv, (char *const *)s->envp, AT_EMPTY_PATH);
			spawn_fail(errno, "exec", prog);
		}
	}
}

/* Hand over to fre-dmz (see dmz/dmz.c): it waits for start, installs
 * seccomp and execs the program, so /proc/self/exe is never the host's
 * fre-runc once the container can see the process. Its fds must
 * survive this one exec. */
void spawn_exec_dmz(struct fre_spawn *s, const char *prog)
{
	int keep[3] = { s->sync_fd, s->fifo_fd, s->seccomp_fd };
	for (int i = 0; i < 3; i++)
		if (keep[i] >= 0 && fcntl(keep[i], F_SETFD, 0) < 0)
			spawn_fail(errno, "fcntl", NULL);

	s->dmz_argv[6] = (char *)prog;
	spawn_ts(s, FRE_TS_EXEC);
	/* With a fifo, fre-dmz only waits for start: say ready now, so the
	 * parent's start does not wait for this exec too. The parent keeps
	 * our stack and plan until fre-dmz closes the socket. */
	if (s->fifo_fd >= 0) {
		char r = 'R';
		if (send(s->sync_fd, &r, 1, MSG_NOSIGNAL) != 1)
			_exit(1);
	}
	fre_thp_restore();
	syscall(SYS_execveat, s->dmz_fd, "", s->dmz_argv, (char *const *)s->envp, AT_EMPTY_PATH);
	spawn_fail(errno, "exec fre-dmz", NULL);
}
