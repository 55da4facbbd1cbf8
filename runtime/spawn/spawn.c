// See spawn.h for the protocol. Everything after clone() in the child uses
// raw system calls and stack memory only.
#define _GNU_SOURCE
#include "spawn.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

/* ---- small helpers: no libc state, no allocation ---- */

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

static char *scat(char *dst, char *end, const char *src)
{
	while (*src && dst < end - 1)
		*dst++ = *src++;
	*dst = 0;
	return dst;
}

static char *sitoa(char *dst, char *end, long v)
{
	char tmp[24];
	int n = 0;
	if (v < 0) { if (dst < end - 1) *dst++ = '-'; v = -v; }
	do { tmp[n++] = '0' + (v % 10); v /= 10; } while (v && n < 23);
	while (n && dst < end - 1) *dst++ = tmp[--n];
	*dst = 0;
	return dst;
}

/* The child runs in the parent's memory (CLONE_VM) and on the parent
 * thread's TLS until it execs; that thread waits in Go meanwhile, so a
 * thread-local is the child's own and concurrent spawns (the shim) on
 * other threads do not share it. */
static __thread int sync_fd = -1;

static void ts(struct fre_spawn *s, int i);

static void wait_go(struct fre_spawn *s)
{
	char go;
	ssize_t r;
	/* Only the first wait is timed: a second one (go2_at_mount) falls
	 * into the step of the mounts. */
	int first = !s->ts[FRE_TS_GO];
	if (first)
		ts(s, FRE_TS_WAIT);
	do r = recv(s->sync_fd, &go, 1, 0); while (r < 0 && errno == EINTR);
	if (r != 1 || go != 'G')
		_exit(1);
	if (first)
		ts(s, FRE_TS_GO);
}

static void ts(struct fre_spawn *s, int i)
{
	if (s->trace) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		s->ts[i] = (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
	}
}

/* fail reports "E" + errno (4 bytes) + what, then exits the child. */
static void __attribute__((noreturn)) fail(int err, const char *what, const char *path)
{
	char buf[4096], *p = buf, *end = buf + sizeof(buf);
	int32_t e = err;
	*p++ = 'E';
	memcpy(p, &e, 4);
	p += 4;
	p = scat(p, end, what);
	if (path) { p = scat(p, end, " "); p = scat(p, end, path); }
	if (sync_fd >= 0)
		send(sync_fd, buf, p - buf, MSG_NOSIGNAL);
	_exit(1);
}

/* go_and_join waits for "G", then joins the cgroup the parent claimed
 * meanwhile (cgroup_late: by path, as no user namespace is in this mode);
 * when that wait comes amid the mounts, the cgroup namespace is made here,
 * once in the cgroup. */
static void go_and_join(struct fre_spawn *s)
{
	wait_go(s);
	for (int i = 0; i < s->ncgroup_late; i++) {
		int fd = open(s->cgroup_late[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			fail(errno, "join cgroup", s->cgroup_late[i]);
		close(fd);
	}
	if (s->go_at_mount >= 0 && s->cgroupns_new && unshare(CLONE_NEWCGROUP) < 0)
		fail(errno, "unshare cgroup namespace", NULL);
}

static void procfd(char *buf, size_t n, int fd)
{
	char *p = scat(buf, buf + n, "/proc/self/fd/");
	sitoa(p, buf + n, fd);
}

static int openat2_in(int dirfd, const char *path, int flags)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = flags | O_CLOEXEC;
	/* Resolve as if dirfd were "/": symlinks and ".." cannot leave it. */
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	int fd;
	do {
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	} while (fd < 0 && errno == EAGAIN);
	return fd;
}

/*
 * create_last makes the last component of path (absolute, inside the root
 * dirfd) in its parent, which exists, and opens it with O_PATH: a mount
 * target in a directory of the image, the common case. -1 means "take the
 * long way" (resolve's walk): the parent is missing, the name exists (a
 * dangling symlink, say), or anything else went wrong; nothing is left
 * half done that the walk does not expect.
 */
static int create_last(int rootfd, const char *path, int is_file)
{
	char dir[4096], name[256];
	size_t n = slen(path);
	while (n > 1 && path[n - 1] == '/') n--;
	size_t k = n;
	while (k > 0 && path[k - 1] != '/') k--;
	if (k == 0 || k == n || n >= sizeof(dir) || n - k >= sizeof(name))
		return -1;
	memcpy(dir, path, k);
	dir[k] = 0;
	memcpy(name, path + k, n - k);
	name[n - k] = 0;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -1;
	int parent = openat2_in(rootfd, dir, O_PATH | O_DIRECTORY);
	if (parent < 0)
		return -1;
	int r;
	if (is_file) {
		r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0755);
		if (r >= 0) close(r);
	} else {
		r = mkdirat(parent, name, 0755);
	}
	int fd = -1;
	if (r == 0 || (is_file && r >= 0)) {
		/* Just made: one component, no symlink, below the parent. */
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = O_PATH | O_CLOEXEC;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
		do fd = syscall(SYS_openat2, parent, name, &how, sizeof(how));
		while (fd < 0 && errno == EAGAIN);
	}
	close(parent);
	return fd;
}

/*
 * resolve opens path (absolute, inside the root dirfd) with O_PATH. With
 * create it makes missing directories (and the last component, as a file
 * when is_file) on the way; a dangling symlink is followed inside the
 * root and its target created there, as runc's securejoin does. Every
 * step is resolved inside the root.
 */
static int resolve(int rootfd, const char *path, int create, int is_file)
{
	char cur[4096], prefix[4096], next_path[4096];
	size_t n = slen(path);
	if (n >= sizeof(cur)) { errno = ENAMETOOLONG; return -1; }
	memcpy(cur, path, n + 1);
	int fd = openat2_in(rootfd, cur, O_PATH);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;
	if ((fd = create_last(rootfd, cur, is_file)) >= 0)
		return fd;
	for (int hops = 0; hops < 40; hops++) {
		n = slen(cur);
		int parent = openat2_in(rootfd, "/", O_PATH | O_DIRECTORY);
		if (parent < 0)
			return -1;
		size_t i = 0, j;
		int restarted = 0;
		while (i < n) {
			while (i < n && cur[i] == '/') i++;
			if (i >= n) break;
			j = i;
			while (j < n && cur[j] != '/') j++;
			int last = 1;
			for (size_t k = j; k < n; k++) if (cur[k] != '/') { last = 0; break; }
			char name[256];
			if (j - i >= sizeof(name)) { close(parent); errno = ENAMETOOLONG; return -1; }
			memcpy(name, cur + i, j - i);
			name[j - i] = 0;
			memcpy(prefix, cur, j);
			prefix[j] = 0;
			int next = openat2_in(rootfd, prefix, O_PATH);
			if (next < 0 && errno == ENOENT) {
				/* A dangling symlink: substitute it and start over. */
				char target[4096];
				ssize_t l = readlinkat(parent, name, target, sizeof(target) - 1);
				if (l > 0) {
					target[l] = 0;
					char *p = next_path, *end = next_path + sizeof(next_path);
					if (target[0] != '/') {
						memcpy(prefix, cur, i);
						prefix[i] = 0;
						p = scat(p, end, prefix);
						p = scat(p, end, "/");
					}
					p = scat(p, end, target);
					p = scat(p, end, cur + j);
					memcpy(cur, next_path, sizeof(cur));
					close(parent);
					restarted = 1;
					break;
				}
				/* O_PATH dirfds serve as dirfd for the *at calls. */
				int r;
				if (last && is_file) {
					r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0755);
					if (r >= 0) close(r);
				} else {
					r = mkdirat(parent, name, 0755);
				}
				if (r < 0 && errno != EEXIST) { close(parent); return -1; }
				next = openat2_in(rootfd, prefix, O_PATH);
			}
			close(parent);
			if (next < 0)
				return -1;
			parent = next;
			i = j;
		}
		if (!restarted)
			return parent;
	}
	errno = ELOOP;
	return -1;
}

/* parent_of opens the directory that holds target, creating it. */
static int parent_of(int rootfd, const char *target, char *name, size_t namelen)
{
	char dir[4096];
	size_t n = slen(target);
	while (n > 1 && target[n - 1] == '/') n--;
	size_t k = n;
	while (k > 0 && target[k - 1] != '/') k--;
	if (n >= sizeof(dir) || n - k >= namelen) { errno = ENAMETOOLONG; return -1; }
	memcpy(dir, target, k);
	dir[k] = 0;
	memcpy(name, target + k, n - k);
	name[n - k] = 0;
	return resolve(rootfd, k ? dir : "/", 1, 0);
}

/* remount_flags remounts a bind mount with flags, keeping locked flags. */
static int remount_bind(const char *target, unsigned long flags)
{
	if (mount(NULL, target, NULL, flags | MS_BIND | MS_REMOUNT, NULL) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	struct statvfs st;
	if (statvfs(target, &st) < 0)
		return -1;
	unsigned long keep = st.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_RDONLY);
	return mount(NULL, target, NULL, flags | keep | MS_BIND | MS_REMOUNT, NULL);
}

#define MS_BIND_KEEP (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

static void do_mount(int rootfd, struct fre_mount *m)
{
	char p[64];
	int fd;
	switch (m->kind) {
	case FRE_MNT_MKDIR:
		fd = resolve(rootfd, m->target, 1, 0);
		if (fd < 0) fail(errno, "mkdir", m->target);
		close(fd);
		return;
	case FRE_MNT_SYMLINK: {
		char name[256];
		int dfd = parent_of(rootfd, m->target, name, sizeof(name));
		if (dfd < 0) fail(errno, "symlink", m->target);
		if (symlinkat(m->source, dfd, name) < 0 && errno != EEXIST)
			fail(errno, "symlink", m->target);
		close(dfd);
		return;
	}
	case FRE_MNT_MKNOD: {
		char name[256];
		int dfd = parent_of(rootfd, m->target, name, sizeof(name));
		if (dfd < 0) fail(errno, "mknod", m->target);
		if (mknodat(dfd, name, m->mode, m->dev) < 0) {
			if (errno != EEXIST || unlinkat(dfd, name, 0) < 0 || mknodat(dfd, name, m->mode, m->dev) < 0)
				fail(errno, "mknod", m->target);
		}
		if ((m->uid || m->gid) && fchownat(dfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
			fail(errno, "chown device", m->target);
		close(dfd);
		return;
	}
	case FRE_MNT_MASK: {
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT) return;
			fail(errno, "mask", m->target);
		}
		struct stat st;
		if (fstat(fd, &st) < 0) fail(errno, "mask", m->target);
		procfd(p, sizeof(p), fd);
		int r;
		if (S_ISDIR(st.st_mode))
			r = mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k,nr_inodes=1");
		else
			r = mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (r < 0) fail(errno, "mask", m->target);
		close(fd);
		return;
	}
	case FRE_MNT_RO: {
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT) return;
			fail(errno, "readonly path", m->target);
		}
		procfd(p, sizeof(p), fd);
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			fail(errno, "readonly path", m->target);
		close(fd);
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) fail(errno, "readonly path", m->target);
		procfd(p, sizeof(p), fd);
		if (remount_bind(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
			fail(errno, "readonly path", m->target);
		close(fd);
		return;
	}
	case FRE_MNT_BIND: {
		fd = resolve(rootfd, m->target, 1, m->is_file);
		if (fd < 0) fail(errno, "mount destination", m->target);
		procfd(p, sizeof(p), fd);
		if (mount(m->source, p, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			fail(errno, "bind mount", m->source);
		close(fd);
		unsigned long extra = m->flags & MS_BIND_KEEP;
		if (extra || m->propagation) {
			/* Re-resolve: the new fd must be on top of the new mount. */
			fd = resolve(rootfd, m->target, 0, 0);
			if (fd < 0) fail(errno, "mount destination", m->target);
			procfd(p, sizeof(p), fd);
			if (extra && remount_bind(p, extra) < 0)
				fail(errno, "remount", m->target);
			if (m->propagation && mount(NULL, p, NULL, m->propagation, NULL) < 0)
				fail(errno, "mount propagation", m->target);
			close(fd);
		}
		return;
	}
	case FRE_MNT_MOUNT:
	default: {
		fd = -1;
		if (m->fstype && (!strcmp(m->fstype, "proc") || !strcmp(m->fstype, "sysfs"))) {
			/* proc and sysfs go on an ordinary directory, never through
			 * a symlink (or onto a file), as runc insists: a rootfs whose
			 * /proc points elsewhere would put the kernel's files where
			 * the image chose. */
			fd = openat2_in(rootfd, m->target, O_PATH | O_NOFOLLOW);
			if (fd >= 0) {
				struct stat st;
				if (fstat(fd, &st) < 0) fail(errno, "mount destination", m->target);
				if (!S_ISDIR(st.st_mode)) {
					char msg[128], *q = scat(msg, msg + sizeof(msg), "filesystem \"");
					q = scat(q, msg + sizeof(msg), m->fstype);
					scat(q, msg + sizeof(msg), "\" must be mounted on ordinary directory");
					fail(ENOTDIR, msg, NULL);
				}
			} else if (errno != ENOENT) {
				fail(errno, "mount destination", m->target);
			}
		}
		if (fd < 0)
			fd = resolve(rootfd, m->target, 1, 0);
		if (fd < 0) fail(errno, "mount destination", m->target);
		procfd(p, sizeof(p), fd);
		if (mount(m->source, p, m->fstype, m->flags, m->data) < 0) {
			int e = errno;
			/* sysfs cannot be mounted without a netns of ours: bind it. */
			if (e == EPERM && m->fstype && !strcmp(m->fstype, "sysfs")) {
				if (mount("/sys", p, NULL, MS_BIND | MS_REC, NULL) == 0) {
					close(fd);
					fd = resolve(rootfd, m->target, 0, 0);
					if (fd >= 0) { procfd(p, sizeof(p), fd); remount_bind(p, m->flags & MS_BIND_KEEP); }
					if (fd >= 0) close(fd);
					return;
				}
			}
			fail(e, "mount", m->target);
		}
		close(fd);
		if (m->propagation) {
			fd = resolve(rootfd, m->target, 0, 0);
			if (fd < 0) fail(errno, "mount destination", m->target);
			procfd(p, sizeof(p), fd);
			if (mount(NULL, p, NULL, m->propagation, NULL) < 0)
				fail(errno, "mount propagation", m->target);
			close(fd);
		}
		return;
	}
	}
}

static void setup_root(struct fre_spawn *s)
{
	/* Shared or unbindable propagation is applied to the new root after
	 * pivot_root: a shared parent makes pivot_root fail, an unbindable one
	 * the bind below. Until then the tree is a slave of the host's. */
	unsigned long late = s->root_propagation & (MS_SHARED | MS_UNBINDABLE);
	unsigned long early = late ? (MS_SLAVE | MS_REC) : s->root_propagation;
	if (mount(NULL, "/", NULL, early, NULL) < 0)
		fail(errno, "make / ", "slave");
	/* The container's root file system, mounted here, in our namespace
	 * only (a slave now: nothing propagates back to the host). */
	if (s->root_mount_type && mount(s->root_mount_source, s->rootfs, s->root_mount_type,
	                                s->root_mount_flags, s->root_mount_data) < 0)
		fail(errno, "mount rootfs", s->rootfs);
	/* pivot_root wants a mount: bind the rootfs onto itself unless it is
	 * one already (its copy in this namespace, a slave now). */
	if (!s->root_is_mount && mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		fail(errno, "bind rootfs", s->rootfs);
	ts(s, FRE_TS_ROOTBIND);
	int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(errno, "open rootfs", s->rootfs);
	for (int i = 0; i < s->nmounts; i++) {
		if (i == s->go_at_mount)
			go_and_join(s);
		if (i == s->go2_at_mount)
			wait_go(s);
		do_mount(rootfd, &s->mounts[i]);
	}
	if (s->go_at_mount >= s->nmounts)
		go_and_join(s);
	if (s->go2_at_mount >= s->nmounts)
		wait_go(s);
	close(rootfd);
	ts(s, FRE_TS_MOUNTS);

	/* createContainer hooks run here: mounts done, before pivot_root. */
	if (s->hook_pause) {
		if (send(sync_fd, "H", 1, MSG_NOSIGNAL) != 1)
			_exit(1);
		char go;
		ssize_t r;
		do r = recv(sync_fd, &go, 1, 0); while (r < 0 && errno == EINTR);
		if (r != 1 || go != 'G')
			_exit(1);
	}

	if (s->no_pivot) {
		if (chdir(s->rootfs) < 0) fail(errno, "chdir", s->rootfs);
		if (mount(s->rootfs, "/", NULL, MS_MOVE, NULL) < 0) fail(errno, "move root", s->rootfs);
		if (chroot(".") < 0) fail(errno, "chroot", s->rootfs);
		if (chdir("/") < 0) fail(errno, "chdir", "/");
	} else {
		int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		int newroot = open(s->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (oldroot < 0 || newroot < 0) fail(errno, "open", "root");
		if (fchdir(newroot) < 0) fail(errno, "fchdir", s->rootfs);
		/* pivot_root(".", "."): the old root ends up stacked under the new one. */
		if (syscall(SYS_pivot_root, ".", ".") < 0) fail(errno, "pivot_root", s->rootfs);
		if (fchdir(oldroot) < 0) fail(errno, "fchdir", "old root");
		/* Keep unmount events from reaching the host (done already when
		 * the whole tree was made a slave or private at the start). */
		if (!((early & MS_REC) && (early & (MS_SLAVE | MS_PRIVATE))) &&
		    mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			fail(errno, "make old root", "slave");
		if (umount2(".", MNT_DETACH) < 0) fail(errno, "unmount", "old root");
		if (chdir("/") < 0) fail(errno, "chdir", "/");
		close(oldroot);
		close(newroot);
	}
	if (late && mount(NULL, "/", NULL, s->root_propagation, NULL) < 0)
		fail(errno, "root propagation", NULL);
	ts(s, FRE_TS_PIVOT);

}

/* finish_root runs after the sysctls are written: /proc/sys is one of
 * the read-only paths. */
static void finish_root(struct fre_spawn *s)
{
	if (s->npost_mounts) {
		int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) fail(errno, "open", "/");
		for (int i = 0; i < s->npost_mounts; i++)
			do_mount(fd, &s->post_mounts[i]);
		close(fd);
	}
	if (s->readonly_root && remount_bind("/", MS_RDONLY) < 0)
		fail(errno, "remount / read-only", NULL);
	ts(s, FRE_TS_POST);
}

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) fail(errno, "open", path);
	if (write(fd, val, slen(val)) < 0) fail(errno, "write", path);
	close(fd);
}

static void setup_console(struct fre_spawn *s)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) fail(errno, "open", "/dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0) fail(errno, "unlock pty", NULL);
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) fail(errno, "open pty peer", NULL);
	if (s->cons_rows || s->cons_cols) {
		struct winsize ws = { .ws_row = s->cons_rows, .ws_col = s->cons_cols };
		ioctl(slave, TIOCSWINSZ, &ws);
	}
	/* Send the master over the console socket as runc does. */
	char name[] = "/dev/ptmx";
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) - 1 };
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	if (sendmsg(s->console_fd, &msg, MSG_NOSIGNAL) < 0) fail(errno, "send console", NULL);
	close(master);
	close(s->console_fd);
	if (ioctl(slave, TIOCSCTTY, 0) < 0) fail(errno, "set controlling tty", NULL);
	for (int i = 0; i < 3; i++)
		if (dup3(slave, i, 0) < 0) fail(errno, "dup pty", NULL);
	if (slave > 2) close(slave);
}

struct cap_data { uint32_t effective, permitted, inheritable; };

static void set_creds(struct fre_spawn *s)
{
	if (s->set_caps) {
		for (int c = 0; c <= s->cap_last; c++)
			if (!(s->cap_bounding & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "drop bounding capability", NULL);
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(errno, "keepcaps", NULL);
	}
	if (s->set_user) {
		if (syscall(SYS_setgroups, s->ngroups, s->groups) < 0) fail(errno, "setgroups", NULL);
		if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) fail(errno, "setgid", NULL);
		if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) fail(errno, "setuid", NULL);
	}
	if (s->set_caps) {
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail(errno, "keepcaps", NULL);
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct cap_data d[2];
		for (int i = 0; i < 2; i++) {
			d[i].effective = (uint32_t)(s->cap_effective >> (32 * i));
			d[i].permitted = (uint32_t)(s->cap_permitted >> (32 * i));
			d[i].inheritable = (uint32_t)(s->cap_inheritable >> (32 * i));
		}
		if (syscall(SYS_capset, &hdr, d) < 0) fail(errno, "capset", NULL);
		for (int c = 0; c <= s->cap_last; c++)
			/* EPERM: not in the inheritable set, which the kernel requires;
			 * runc's default spec asks for such ambient caps, runc skips them. */
			if ((s->cap_ambient & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0 && errno != EPERM && errno != EINVAL)
				fail(errno, "raise ambient capability", NULL);
	}
}

/* lookup finds the program as execvp would, in the container's PATH. */
static const char *lookup(struct fre_spawn *s, char *buf, size_t n)
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
			fail(errno, msg, NULL);
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
	fail(denied ? EACCES : ENOENT, msg, NULL);
}

/* close_others closes every fd the plan does not name. The child has a
 * copy of the whole fd table of a process whose other threads go on
 * working: a pool lock held at the instant of clone, another container's
 * stdio pipe. CLOEXEC would drop them only at exec, and until then a lock
 * would stay held by this copy — by a child that may itself be waiting
 * for that lock's holder (a cgroup claimed after clone). */
static void close_others(struct fre_spawn *s)
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

static void set_sched(struct fre_spawn *s)
{
	struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t priority; uint64_t runtime, deadline, period; } attr = {
		.size = 48, .policy = s->sched_policy, .flags = s->sched_flags, .nice = s->sched_nice,
		.priority = s->sched_priority, .runtime = s->sched_runtime, .deadline = s->sched_deadline, .period = s->sched_period };
	if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
		fail(errno, "sched_setattr", NULL);
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

static int child(void *arg)
{
	struct fre_spawn *s = arg;
	ts(s, FRE_TS_START);
	pid_t ppid = s->ppid;
	sync_fd = s->sync_fd;
	/* Die with the creating thread until set-up is done. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	pid_t pp = getppid();
	if (pp != 0 && pp != ppid) /* 0: the parent is outside our new pid namespace */
		_exit(1);
	/* Every signal stays blocked (fre_spawn_start blocked them): Go's
	 * handlers must not run here. execve resets the handlers to their
	 * defaults and fre-dmz unblocks, so nothing is reset one by one. */
	close(s->parent_sync_fd);
	close_others(s);
	/* Join the cgroup ourselves: a single thread writing "0" (itself) to
	 * a v1 "tasks" file skips the kernel's global threadgroup rwsem,
	 * whose write side waits for an RCU grace period (milliseconds) when
	 * it has been idle; the parent writing our pid to cgroup.procs takes
	 * it. The fds were opened by the parent, whose credentials the kernel
	 * checks, so this works in any user namespace. */
	for (int i = 0; i < s->ncgroup_fds; i++) {
		if (write(s->cgroup_fds[i], "0", 1) != 1)
			fail(errno, "join cgroup", NULL);
		close(s->cgroup_fds[i]);
	}
	/* Device nodes and mount targets get their exact modes. */
	umask(0);

	for (int i = 0; i < s->njoin; i++)
		if (setns(s->join[i].fd, s->join[i].type) < 0)
			fail(errno, "setns", NULL);
	for (int i = 0; i < s->njoin; i++)
		close(s->join[i].fd);
	if (s->unshare_flags && unshare(s->unshare_flags) < 0)
		fail(errno, "unshare", NULL);

	/* Wait for the parent: maps written, cgroup joined, limits set. With
	 * late_go nothing below depends on those, so the set-up runs while the
	 * parent works and the wait comes after it, before seccomp. */
	/* go_at_mount >= 0: that wait comes amid the mounts instead (and
	 * a second one at go2_at_mount). */
	if (!s->late_go && s->go_at_mount < 0)
		go_and_join(s);
	if (s->userns_root) {
		if (syscall(SYS_setresgid, 0, 0, 0) < 0) fail(errno, "setgid in user namespace", NULL);
		if (syscall(SYS_setresuid, 0, 0, 0) < 0) fail(errno, "setuid in user namespace", NULL);
	}
	if (s->go_at_mount < 0 && s->cgroupns_new && unshare(CLONE_NEWCGROUP) < 0)
		fail(errno, "unshare cgroup namespace", NULL);
	/* A time namespace is entered at the next exec, so its offsets are
	 * written now, before anything lives in it. */
	if (s->time_ns) {
		if (unshare(CLONE_NEWTIME) < 0)
			fail(errno, "unshare time namespace", NULL);
		if (s->time_offsets)
			write_file("/proc/self/timens_offsets", s->time_offsets);
	}

	if (s->mount_ns)
		setup_root(s);
	if (s->hostname && sethostname(s->hostname, slen(s->hostname)) < 0)
		fail(errno, "sethostname", s->hostname);
	if (s->domainname && setdomainname(s->domainname, slen(s->domainname)) < 0)
		fail(errno, "setdomainname", s->domainname);
	for (int i = 0; i < s->nsysctl; i++)
		write_file(s->sysctl_paths[i], s->sysctl_values[i]);
	if (s->mount_ns) {
		finish_root(s);
	} else if (s->rootfs && s->rootfs[0]) { /* the init: exec and hooks have none */
		/* No mount namespace: the host's mounts stay as they are, and the
		 * container's root is its rootfs by chroot, as runc does. */
		if (chdir(s->rootfs) < 0 || chroot(".") < 0 || chdir("/") < 0)
			fail(errno, "chroot", s->rootfs);
	}

	for (int i = 0; i < 3; i++)
		if (s->stdio[i] >= 0 && s->stdio[i] != i && dup3(s->stdio[i], i, 0) < 0)
			fail(errno, "dup stdio", NULL);
	/* The container always gets its own session, as with runc. */
	if (setsid() < 0)
		fail(errno, "setsid", NULL);
	if (s->console_fd >= 0)
		setup_console(s);
	for (int i = 0; i < s->nrlimits; i++) {
		struct rlimit rl = { s->rlimits[i].soft, s->rlimits[i].hard };
		if (setrlimit(s->rlimits[i].resource, &rl) < 0)
			fail(errno, "setrlimit", NULL);
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
			fail(EPERM, "cwd is outside the container root", s->cwd);
	}
	/* Without no_new_privs only a privileged process may install a filter,
	 * so it goes in before the credentials drop (as runc does); the filter
	 * must then allow what follows. Otherwise fre-dmz installs it last. */
	/* A filter with a listener (SCMP_ACT_NOTIFY) goes in here too: its fd
	 * goes to the parent ("S" + SCM_RIGHTS), which hands it to the agent. */
	/* The late (or final) wait goes before a filter that might refuse
	 * recv. */
	if (s->late_go || s->final_go)
		wait_go(s);
	int notify = (s->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) != 0;
	if (s->seccomp_fd >= 0 && (!s->no_new_privs || notify)) {
		static __thread struct sock_filter filter[4096];
		ssize_t want = (ssize_t)s->seccomp_len * (ssize_t)sizeof(struct sock_filter);
		if (s->seccomp_len <= 0 || s->seccomp_len > 4096 || pread(s->seccomp_fd, filter, want, 0) != want)
			fail(EINVAL, "read seccomp filter", NULL);
		if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			fail(errno, "no_new_privs", NULL);
		struct sock_fprog prog = { .len = (unsigned short)s->seccomp_len, .filter = filter };
		long lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->seccomp_flags, &prog);
		if (lfd < 0)
			fail(errno, "seccomp", NULL);
		if (notify) {
			char tag = 'S';
			struct iovec iov = { .iov_base = &tag, .iov_len = 1 };
			union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
			memset(&u, 0, sizeof(u));
			struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			int fd = (int)lfd;
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
			if (sendmsg(sync_fd, &msg, MSG_NOSIGNAL) != 1)
				fail(errno, "send seccomp listener", NULL);
			close(fd);
		}
		close(s->seccomp_fd);
		s->seccomp_fd = -1;
		s->dmz_argv[3] = "-1";
	}
	set_creds(s);
	if (s->cwd && !chdir_done) {
		/* Only the user may enter it (root could not: root-squashed NFS). */
		if (chdir(s->cwd) < 0)
			fail(errno, "chdir to cwd", s->cwd);
		if (syscall(SYS_getcwd, cwdbuf, sizeof(cwdbuf)) < 0 || cwdbuf[0] != '/')
			fail(EPERM, "cwd is outside the container root", s->cwd);
	}
	umask(s->umask >= 0 ? s->umask : 022); /* runc's default */

	char pathbuf[4096];
	const char *prog = lookup(s, pathbuf, sizeof(pathbuf));

	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errno, "no_new_privs", NULL);
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);

	/* What takes effect at the next exec (the LSM labels) or stays
	 * across it. */
	for (int i = 0; i < s->nattr; i++)
		write_file(s->attr_paths[i], s->attr_values[i]);
	if (s->personality >= 0 && personality((unsigned long)s->personality) < 0)
		fail(errno, "personality", NULL);
	if (s->ioprio >= 0 && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, s->ioprio) < 0)
		fail(errno, "ioprio_set", NULL);
	if (s->set_sched)
		set_sched(s);

	/* Nothing left for fre-dmz to do (no start to wait for, no filter at
	 * all: one installed above would have to allow the calls below, which
	 * fre-dmz does not make) and a program that is safe to exec from here:
	 * exec it directly, one exec less on the start path. */
	if (s->fifo_fd < 0 && s->seccomp_len == 0) {
		int pfd = open_static_elf(prog);
		if (pfd >= 0) {
			default_handlers();
			ts(s, FRE_TS_EXEC);
			/* "X": exec'ing now; the socket closes with the exec (it is
			 * close-on-exec), "E" follows if the exec fails. */
			if (send(s->sync_fd, "X", 1, MSG_NOSIGNAL) != 1)
				_exit(1);
			unsigned long none = 0;
			syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
			syscall(SYS_execveat, pfd, "", s->argv, (char *const *)s->envp, AT_EMPTY_PATH);
			fail(errno, "exec", prog);
		}
	}

	/* Hand over to fre-dmz (see dmz/dmz.c): it waits for start, installs
	 * seccomp and execs the program, so /proc/self/exe is never the host's
	 * fre-runc once the container can see the process. Its fds must
	 * survive this one exec. */
	int keep[3] = { s->sync_fd, s->fifo_fd, s->seccomp_fd };
	for (int i = 0; i < 3; i++)
		if (keep[i] >= 0 && fcntl(keep[i], F_SETFD, 0) < 0)
			fail(errno, "fcntl", NULL);

	s->dmz_argv[6] = (char *)prog;
	ts(s, FRE_TS_EXEC);
	/* With a fifo, fre-dmz only waits for start: say ready now, so the
	 * parent's start does not wait for this exec too. The parent keeps
	 * our stack and plan until fre-dmz closes the socket. */
	if (s->fifo_fd >= 0) {
		char r = 'R';
		if (send(s->sync_fd, &r, 1, MSG_NOSIGNAL) != 1)
			_exit(1);
	}
	syscall(SYS_execveat, s->dmz_fd, "", s->dmz_argv, (char *const *)s->envp, AT_EMPTY_PATH);
	fail(errno, "exec fre-dmz", NULL);
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
