// The child's root file system: the plan's mounts, resolved inside the
// root, then pivot_root and what comes after it. Everything here runs in
// the child after clone(): raw system calls and stack memory only.
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442 /* Linux 5.12, the same on every architecture */
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

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

static void do_mount(struct fre_spawn *s, int rootfd, struct fre_mount *m)
{
	char p[64];
	int fd;
	switch (m->kind) {
	case FRE_MNT_MKDIR:
		fd = resolve(rootfd, m->target, 1, 0);
		if (fd < 0) spawn_fail(errno, "mkdir", m->target);
		close(fd);
		return;
	case FRE_MNT_SYMLINK: {
		char name[256];
		int dfd = parent_of(rootfd, m->target, name, sizeof(name));
		if (dfd < 0) spawn_fail(errno, "symlink", m->target);
		if (symlinkat(m->source, dfd, name) < 0 && errno != EEXIST)
			spawn_fail(errno, "symlink", m->target);
		close(dfd);
		return;
	}
	case FRE_MNT_MKNOD: {
		char name[256];
		int dfd = parent_of(rootfd, m->target, name, sizeof(name));
		if (dfd < 0) spawn_fail(errno, "mknod", m->target);
		if (mknodat(dfd, name, m->mode, m->dev) < 0) {
			if (errno != EEXIST || unlinkat(dfd, name, 0) < 0 || mknodat(dfd, name, m->mode, m->dev) < 0)
				spawn_fail(errno, "mknod", m->target);
		}
		if ((m->uid || m->gid) && fchownat(dfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
			spawn_fail(errno, "chown device", m->target);
		close(dfd);
		return;
	}
	case FRE_MNT_MASK: {
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT) return;
			spawn_fail(errno, "mask", m->target);
		}
		struct stat st;
		if (fstat(fd, &st) < 0) spawn_fail(errno, "mask", m->target);
		procfd(p, sizeof(p), fd);
		int r;
		if (S_ISDIR(st.st_mode))
			r = mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k,nr_inodes=1");
		else
			r = mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (r < 0) spawn_fail(errno, "mask", m->target);
		close(fd);
		return;
	}
	case FRE_MNT_RO: {
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) {
			if (errno == ENOENT) return;
			spawn_fail(errno, "readonly path", m->target);
		}
		procfd(p, sizeof(p), fd);
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			spawn_fail(errno, "readonly path", m->target);
		close(fd);
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) spawn_fail(errno, "readonly path", m->target);
		procfd(p, sizeof(p), fd);
		if (remount_bind(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
			spawn_fail(errno, "readonly path", m->target);
		close(fd);
		return;
	}
	case FRE_MNT_SETATTR: {
		/* A spec mount's recursive options (rro, rnosuid, ...), on the
		 * mount just made and every mount below it, as runc applies them. */
		fd = resolve(rootfd, m->target, 0, 0);
		if (fd < 0) spawn_fail(errno, "mount destination", m->target);
		struct { uint64_t attr_set, attr_clr, propagation, userns_fd; } a = { m->attr_set, m->attr_clr, 0, 0 };
		if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
			spawn_fail(errno, "mount_setattr", m->target);
		close(fd);
		return;
	}
	case FRE_MNT_BIND: {
		fd = resolve(rootfd, m->target, 1, m->is_file);
		if (fd < 0) spawn_fail(errno, "mount destination", m->target);
		procfd(p, sizeof(p), fd);
		const char *src = m->source;
		char srcbuf[64];
		if (m->src >= 0) {
			/* Opened by the parent here: /proc/self/fd/N needs no search
			 * permission on the way to it. */
			procfd(srcbuf, sizeof(srcbuf), s->src_fds[m->src]);
			src = srcbuf;
		}
		if (mount(src, p, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			spawn_fail(errno, "bind mount", m->source);
		if (m->src >= 0)
			close(s->src_fds[m->src]);
		close(fd);
		unsigned long extra = m->flags & MS_BIND_KEEP;
		if (extra || m->propagation) {
			/* Re-resolve: the new fd must be on top of the new mount. */
			fd = resolve(rootfd, m->target, 0, 0);
			if (fd < 0) spawn_fail(errno, "mount destination", m->target);
			procfd(p, sizeof(p), fd);
			if (extra && remount_bind(p, extra) < 0)
				spawn_fail(errno, "remount", m->target);
			if (m->propagation && mount(NULL, p, NULL, m->propagation, NULL) < 0)
				spawn_fail(errno, "mount propagation", m->target);
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
				if (fstat(fd, &st) < 0) spawn_fail(errno, "mount destination", m->target);
				if (!S_ISDIR(st.st_mode)) {
					char msg[128], *q = scat(msg, msg + sizeof(msg), "filesystem \"");
					q = scat(q, msg + sizeof(msg), m->fstype);
					scat(q, msg + sizeof(msg), "\" must be mounted on ordinary directory");
					spawn_fail(ENOTDIR, msg, NULL);
				}
			} else if (errno != ENOENT) {
				spawn_fail(errno, "mount destination", m->target);
			}
		}
		if (fd < 0)
			fd = resolve(rootfd, m->target, 1, 0);
		if (fd < 0) spawn_fail(errno, "mount destination", m->target);
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
			spawn_fail(e, "mount", m->target);
		}
		close(fd);
		if (m->propagation) {
			fd = resolve(rootfd, m->target, 0, 0);
			if (fd < 0) spawn_fail(errno, "mount destination", m->target);
			procfd(p, sizeof(p), fd);
			if (mount(NULL, p, NULL, m->propagation, NULL) < 0)
				spawn_fail(errno, "mount propagation", m->target);
			close(fd);
		}
		return;
	}
	}
}

/* make_private makes the mount that holds path (path itself, if it is a
 * mount) private, as runc does before it binds the rootfs: nothing
 * mounted there reaches the host, and pivot_root takes it. */
static void make_private(const char *path)
{
	char buf[4096];
	char *end = scat(buf, buf + sizeof(buf), path);
	for (;;) {
		if (mount(NULL, buf, NULL, MS_PRIVATE, NULL) == 0)
			return;
		if (errno != EINVAL || (buf[0] == '/' && buf[1] == 0))
			spawn_fail(errno, "make private", buf);
		/* Not a mount point: its parent directory. */
		while (end > buf + 1 && end[-1] != '/') end--;
		if (end > buf + 1) end--;
		*end = 0;
	}
}

/* unescape_octal undoes mountinfo's \ooo escapes in place. */
static void unescape_octal(char *p)
{
	char *w = p;
	for (; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
}

/* hide_pseudo_mounts, before --no-pivot's move of the root: the host's
 * full proc and sysfs mounts stay in our namespace behind the chroot, and
 * with them the kernel lets the container mount a fresh, unmasked procfs
 * (mount_too_revealing looks at the namespace, not at what the root can
 * reach). Each one outside the rootfs is unmounted here, or covered by a
 * tmpfs where it cannot be, as runc does (CVE-2023-27561's fix). */
static void hide_pseudo_mounts(const char *rootfs)
{
	size_t cap = 8 << 20, len = 0;
	char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) spawn_fail(errno, "mmap", NULL);
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0) spawn_fail(errno, "open", "/proc/self/mountinfo");
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) spawn_fail(errno, "read", "/proc/self/mountinfo");
		if (n == 0 || len + (size_t)n >= cap - 1) { len += n > 0 ? (size_t)n : 0; break; }
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	size_t rl = slen(rootfs);
	for (char *line = buf, *next; *line; line = next) {
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : line + slen(line);
		if (nl) *nl = 0;
		/* id parent maj:min root mountpoint opts [optional...] - fstype ... */
		char *f[5] = { 0 };
		char *q = line;
		for (int i = 0; i < 5 && q; i++) {
			f[i] = q;
			q = strchr(q, ' ');
			if (q) *q++ = 0;
		}
		char *sep = q ? strstr(q, " - ") : NULL;
		if (!f[4] || !sep) continue;
		char *fstype = sep + 3, *end = strchr(fstype, ' ');
		if (end) *end = 0;
		if (strcmp(f[3], "/") != 0 || (strcmp(fstype, "proc") != 0 && strcmp(fstype, "sysfs") != 0))
			continue;
		char *mp = f[4];
		unescape_octal(mp);
		if (!strncmp(mp, rootfs, rl) && (mp[rl] == 0 || mp[rl] == '/'))
			continue; /* the container's own */
		if (mount(NULL, mp, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
			if (errno == ENOENT) continue; /* below one already gone */
			spawn_fail(errno, "make slave", mp);
		}
		if (umount2(mp, MNT_DETACH) < 0) {
			if (errno != EINVAL && errno != EPERM) spawn_fail(errno, "unmount", mp);
			if (mount("tmpfs", mp, "tmpfs", 0, NULL) < 0) spawn_fail(errno, "cover", mp);
		}
	}
	munmap(buf, cap);
}

void spawn_setup_root(struct fre_spawn *s)
{
	/* Shared or unbindable propagation is applied to the new root after
	 * pivot_root: a shared parent makes pivot_root fail, an unbindable one
	 * the bind below. Until then the tree is a slave of the host's, but
	 * for a shared root (CRI's Bidirectional volumes), where it stays
	 * the host's peer, as runc has it, so that a shared bind's mounts go
	 * both ways: then the mount holding the rootfs is made private, so
	 * that nothing mounted in the root reaches the host. */
	unsigned long late = s->root_propagation & (MS_SHARED | MS_UNBINDABLE);
	int peer = late == MS_SHARED;
	unsigned long early = late && !peer ? (MS_SLAVE | MS_REC) : s->root_propagation;
	if (mount(NULL, "/", NULL, early, NULL) < 0)
		spawn_fail(errno, "make / ", "slave");
	if (peer)
		make_private(s->rootfs);
	/* The container's root file system, mounted here, in our namespace
	 * only (a slave now: nothing propagates back to the host). */
	if (s->root_mount_type && mount(s->root_mount_source, s->rootfs, s->root_mount_type,
	                                s->root_mount_flags, s->root_mount_data) < 0)
		spawn_fail(errno, "mount rootfs", s->rootfs);
	/* pivot_root wants a mount: bind the rootfs onto itself unless it is
	 * one already (its copy in this namespace, a slave now). */
	if (!s->root_is_mount && mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		spawn_fail(errno, "bind rootfs", s->rootfs);
	spawn_ts(s, FRE_TS_ROOTBIND);
	int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		spawn_fail(errno, "open rootfs", s->rootfs);
	for (int i = 0; i < s->nmounts; i++) {
		if (i == s->go_at_mount)
			spawn_go_and_join(s);
		if (i == s->go2_at_mount)
			spawn_wait_go(s);
		do_mount(s, rootfd, &s->mounts[i]);
	}
	if (s->go_at_mount >= s->nmounts)
		spawn_go_and_join(s);
	if (s->go2_at_mount >= s->nmounts)
		spawn_wait_go(s);
	close(rootfd);
	spawn_ts(s, FRE_TS_MOUNTS);

	/* createContainer hooks run here: mounts done, before pivot_root. */
	if (s->hook_pause) {
		if (send(spawn_sync_fd, "H", 1, MSG_NOSIGNAL) != 1)
			_exit(1);
		char go;
		ssize_t r;
		do r = recv(spawn_sync_fd, &go, 1, 0); while (r < 0 && errno == EINTR);
		if (r != 1 || go != 'G')
			_exit(1);
	}

	if (s->no_pivot) {
		hide_pseudo_mounts(s->rootfs);
		if (chdir(s->rootfs) < 0) spawn_fail(errno, "chdir", s->rootfs);
		if (mount(s->rootfs, "/", NULL, MS_MOVE, NULL) < 0) spawn_fail(errno, "move root", s->rootfs);
		if (chroot(".") < 0) spawn_fail(errno, "chroot", s->rootfs);
		if (chdir("/") < 0) spawn_fail(errno, "chdir", "/");
	} else {
		int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		int newroot = open(s->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (oldroot < 0 || newroot < 0) spawn_fail(errno, "open", "root");
		if (fchdir(newroot) < 0) spawn_fail(errno, "fchdir", s->rootfs);
		/* pivot_root(".", "."): the old root ends up stacked under the new one. */
		if (syscall(SYS_pivot_root, ".", ".") < 0) spawn_fail(errno, "pivot_root", s->rootfs);
		if (fchdir(oldroot) < 0) spawn_fail(errno, "fchdir", "old root");
		/* Keep unmount events from reaching the host (done already when
		 * the whole tree was made a slave or private at the start). */
		if (!((early & MS_REC) && (early & (MS_SLAVE | MS_PRIVATE))) &&
		    mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			spawn_fail(errno, "make old root", "slave");
		if (umount2(".", MNT_DETACH) < 0) spawn_fail(errno, "unmount", "old root");
		if (chdir("/") < 0) spawn_fail(errno, "chdir", "/");
		close(oldroot);
		close(newroot);
	}
	if (late && mount(NULL, "/", NULL, s->root_propagation, NULL) < 0)
		spawn_fail(errno, "root propagation", NULL);
	spawn_ts(s, FRE_TS_PIVOT);

}

/* spawn_finish_root runs after the sysctls are written: /proc/sys is one of
 * the read-only paths. */
void spawn_finish_root(struct fre_spawn *s)
{
	if (s->npost_mounts) {
		int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) spawn_fail(errno, "open", "/");
		for (int i = 0; i < s->npost_mounts; i++)
			do_mount(s, fd, &s->post_mounts[i]);
		close(fd);
	}
	if (s->readonly_root && remount_bind("/", MS_RDONLY) < 0)
		spawn_fail(errno, "remount / read-only", NULL);
	spawn_ts(s, FRE_TS_POST);
}
