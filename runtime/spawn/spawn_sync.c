// The child's side of the sync socket (see spawn.h for the protocol): the
// waits for "G", the failure report, the set-up's timestamps; and
// spawn_write_file, which fails through it. Everything here runs in the
// child after clone(): raw system calls and stack memory only.
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The child runs in the parent's memory (CLONE_VM) and on the parent
 * thread's TLS until it execs; that thread waits in Go meanwhile, so a
 * thread-local is the child's own and concurrent spawns (the shim) on
 * other threads do not share it. */
__thread int spawn_sync_fd = -1;

void spawn_wait_go(struct fre_spawn *s)
{
	char go;
	ssize_t r;
	/* Only the first wait is timed: a second one (go2_at_mount) falls
	 * into the step of the mounts. */
	int first = !s->ts[FRE_TS_GO];
	if (first)
		spawn_ts(s, FRE_TS_WAIT);
	if (s->nsrc_fds > 0 && s->src_fds[0] < 0) {
		/* The first "G" carries the bind sources' fds. */
		union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * FRE_MAX_SRC_FDS)]; } u;
		struct iovec iov = { &go, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		                     .msg_controllen = CMSG_SPACE(sizeof(int) * s->nsrc_fds) };
		do r = recvmsg(s->sync_fd, &mh, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
		if (r != 1 || go != 'G')
			_exit(1);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * s->nsrc_fds))
			spawn_fail(EBADMSG, "bind mount sources from the parent", NULL);
		memcpy(s->src_fds, CMSG_DATA(c), sizeof(int) * s->nsrc_fds);
		if (first)
			spawn_ts(s, FRE_TS_GO);
		return;
	}
	do r = recv(s->sync_fd, &go, 1, 0); while (r < 0 && errno == EINTR);
	if (r != 1 || go != 'G')
		_exit(1);
	if (first)
		spawn_ts(s, FRE_TS_GO);
}

void spawn_ts(struct fre_spawn *s, int i)
{
	if (s->trace) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		s->ts[i] = (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
	}
}

/* spawn_fail reports "E" + errno (4 bytes) + what, then exits the child. */
void __attribute__((noreturn)) spawn_fail(int err, const char *what, const char *path)
{
	char buf[4096], *p = buf, *end = buf + sizeof(buf);
	int32_t e = err;
	*p++ = 'E';
	memcpy(p, &e, 4);
	p += 4;
	p = scat(p, end, what);
	if (path) { p = scat(p, end, " "); p = scat(p, end, path); }
	if (spawn_sync_fd >= 0)
		send(spawn_sync_fd, buf, p - buf, MSG_NOSIGNAL);
	_exit(1);
}

void spawn_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) spawn_fail(errno, "open", path);
	if (write(fd, val, slen(val)) < 0) spawn_fail(errno, "write", path);
	close(fd);
}
