/*
 * The shim binary's fast paths, run before the Go runtime starts (a C
 * constructor, as runc's nsexec): containerd runs this binary three times
 * per shim (start, the daemon, delete), and each Go start of a binary this
 * size costs milliseconds on ctr run's critical path.
 *
 * delete: containerd runs "containerd-shim-fre-v1 ... delete" whenever its
 * connection to a shim closes, also right after a clean task delete (ctr
 * run --rm waits for it). When the shim daemon deleted the container and
 * all it held, it left <bundle>/fre-deleted ("pid status sec nsec", see
 * shim/task.DeletedFile): then there is nothing to clean, and this prints
 * the task.DeleteResponse containerd expects and exits. In any other case
 * (no such file, an argument this does not understand) it returns and Go's
 * delete command (manager.Stop) does the full clean-up.
 *
 * start: instead of a Go start command that execs a Go daemon (two Go
 * starts in a row, the second on the critical path), a container of no
 * group gets its answer from here (front_start: socket made, answer
 * printed, the forked child goes on into Go as the daemon while containerd
 * connects). Otherwise this process forks before Go starts; the child goes
 * on into Go, does the start command's work itself and becomes the daemon
 * (manager.ForkedStart); it hands the bootstrap result back through a
 * pipe, and this parent, which never starts Go, prints it and exits as the
 * start command. FRE_SHIM_FRONT_START=0 and FRE_SHIM_FORK_START=0 turn
 * these off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

/* The write end of the start pipe in the forked child, for Go; -1 when
 * the process did not fork (read by fastpath.go). */
int fre_start_pipe = -1;

/* The daemon's socket address when the start command made it before Go
 * started (front_start), for Go; empty otherwise. */
char fre_start_addr[160];

/* What the start command read from stdin before it handed the job to Go
 * (fork_start), for Go; NULL when it read nothing. */
const unsigned char *fre_start_stdin;
size_t fre_start_stdin_len;

/* CLOCK_MONOTONIC when this process entered the constructor, in ns: the
 * base of the timing log's shim.* milestones. */
long long fre_exec_ns;

static int is(const char *a, const char *name)
{
	return strcmp(a, name) == 0;
}

/* The Go shim library's flags (containerd's pkg/shim parseFlags). */
static const char *value_flags[] = { "namespace", "id", "socket", "debug-socket", "bundle", "address", "publish-binary", 0 };
static const char *bool_flags[] = { "debug", "v", "version", "info", 0 };

static int in(const char *name, size_t n, const char **set)
{
	for (; *set; set++)
		if (strlen(*set) == n && strncmp(*set, name, n) == 0)
			return 1;
	return 0;
}

static unsigned char *varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static int parse_int(const char **s, int64_t *out)
{
	const char *p = *s;
	int neg = 0;
	int64_t v = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p++ - '0');
	}
	if (*p != ' ' && *p != '\n')
		return -1;
	*out = neg ? -v : v;
	*s = p + 1;
	return 0;
}

struct args {
	const char *action, *bundle, *ns, *id, *address;
};

/* parse reads the Go shim library's command line; 0 when it understood
 * all of it. */
static int parse(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == 0) {
			a->action = arg;
			return i == argc - 1 ? 0 : -1; /* one argument after the flags */
		}
		const char *name = arg + 1;
		if (*name == '-')
			name++;
		if (*name == 0 || *name == '-')
			return -1; /* "--" or "---x": leave it to Go */
		const char *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		const char *val;
		if (in(name, n, bool_flags)) {
			if (n == 5 && strncmp(name, "debug", 5) == 0 && (!eq || is(eq + 1, "false") || is(eq + 1, "true")))
				continue;
			return -1; /* -v, -info: not a command */
		}
		if (!in(name, n, value_flags))
			return -1;
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return -1;
			val = argv[++i];
		}
		if (n == 6 && strncmp(name, "bundle", 6) == 0)
			a->bundle = val;
		else if (n == 9 && strncmp(name, "namespace", 9) == 0)
			a->ns = val;
		else if (n == 2 && strncmp(name, "id", 2) == 0)
			a->id = val;
		else if (n == 7 && strncmp(name, "address", 7) == 0)
			a->address = val;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void fast_delete(const struct args *a)
{
	const char *bundle = a->bundle;
	int dir = bundle && *bundle ? open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC) : open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return;
	int fd = openat(dir, "fre-deleted", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	close(dir);
	if (fd < 0)
		return;
	char buf[128];
	ssize_t got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return;
	buf[got] = 0;
	const char *s = buf;
	int64_t pid, status, sec, nsec;
	if (parse_int(&s, &pid) || parse_int(&s, &status) || parse_int(&s, &sec) || parse_int(&s, &nsec) || *s != 0)
		return;
	if (pid < 0 || pid > UINT32_MAX || status < 0 || status > UINT32_MAX || nsec < 0 || nsec > 999999999)
		return;

	/* task.DeleteResponse{pid=1, exit_status=2, exited_at=3} with
	 * google.protobuf.Timestamp{seconds=1, nanos=2}, as proto.Marshal
	 * writes it (zero scalars left out, the timestamp always there). */
	unsigned char ts[24], out[64], *t = ts, *o = out;
	if (sec != 0) {
		*t++ = 0x08;
		t = varint(t, (uint64_t)sec);
	}
	if (nsec != 0) {
		*t++ = 0x10;
		t = varint(t, (uint64_t)nsec);
	}
	if (pid != 0) {
		*o++ = 0x08;
		o = varint(o, (uint64_t)pid);
	}
	if (status != 0) {
		*o++ = 0x10;
		o = varint(o, (uint64_t)status);
	}
	*o++ = 0x1a;
	*o++ = (unsigned char)(t - ts);
	memcpy(o, ts, (size_t)(t - ts));
	o += t - ts;
	_exit(write_all(1, (const char *)out, (size_t)(o - out)) == 0 ? 0 : 1);
}

/* ---- start, answered before Go: front_start ----
 *
 * For a container of no group (its own shim), everything the start command
 * computes is simple: containerd's bootstrap parameters (a small protobuf on
 * stdin), the socket address (the hash of "grpc address/namespace/id", as
 * the shim library's CreateSocketAddress), the listening socket and the
 * answer (a small protobuf). This does it all, forks, leaves the sockets at
 * fds 3 and 4 to the child that becomes the daemon, answers and exits: the
 * daemon's Go start overlaps with containerd's own work after start.
 * Anything out of the ordinary returns -1 before a side effect that matters,
 * and the Go start command (fork_start) does the job. */

struct params {
	const char *id, *ns, *grpc, *socket_dir;
	size_t id_len, ns_len, grpc_len, socket_dir_len;
	int have_socket_dir;
	int64_t log_level;
};

static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* parse_params reads containerd.runtime.bootstrap.v1.BootstrapParams. */
static int parse_params(const uint8_t *p, size_t n, struct params *out)
{
	const uint8_t *end = p + n;
	memset(out, 0, sizeof(*out));
	while (p < end) {
		uint64_t key, v;
		if (pb_varint(&p, end, &key))
			return -1;
		unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
		switch (wire) {
		case 0:
			if (pb_varint(&p, end, &v))
				return -1;
			if (field == 3)
				out->log_level = (int64_t)(int32_t)(uint32_t)v; /* an enum: int32 */
			break;
		case 1:
			if (end - p < 8)
				return -1;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return -1;
			p += 4;
			break;
		case 2: {
			if (pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return -1;
			const char *str = (const char *)p;
			switch (field) {
			case 1: out->id = str, out->id_len = v; break;
			case 2: out->ns = str, out->ns_len = v; break;
			case 6: out->grpc = str, out->grpc_len = v; break;
			case 9: out->socket_dir = str, out->socket_dir_len = v, out->have_socket_dir = 1; break;
			}
			p += v;
			break;
		}
		default:
			return -1;
		}
	}
	return 0;
}

static int same(const char *a, size_t n, const char *b)
{
	return a && b && strlen(b) == n && memcmp(a, b, n) == 0;
}

/* A namespace or ID that filepath.Join keeps as it is. */
static int plain_name(const char *s, size_t n)
{
	if (n == 0 || n > 255 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == 0)
			return 0;
	return 1;
}

/* An absolute path that filepath.Clean keeps as it is. */
static int clean_path(const char *s, size_t n)
{
	if (n < 2 || s[0] != '/' || s[n - 1] == '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0)
			return 0;
		if (s[i] != '/')
			continue;
		/* every component: not empty, ".", or ".." */
		size_t j = i + 1;
		while (j < n && s[j] != '/')
			j++;
		size_t len = j - i - 1;
		if (len == 0 || (len == 1 && s[i + 1] == '.') || (len == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
			return 0;
	}
	return 1;
}

/* config.json names a group (the Go start command handles those): either
 * key anywhere, or any \u escape (a key could hide behind one). */
static int maybe_grouped(void)
{
	int fd = open("config.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (4 << 20)) {
		close(fd);
		return 1;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return 1;
	}
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = 0;
	int grouped = n != (size_t)st.st_size || memmem(buf, n, "\"run.fre.group\"", 15) || memmem(buf, n, "\"io.kubernetes.cri.sandbox-id\"", 30) || memmem(buf, n, "\\u", 2);
	free(buf);
	return grouped;
}

/* socket_address writes "unix://DIR/HEX" for grpc/ns/id (+"/debug"). */
static int socket_address(char *out, size_t cap, const char *dir, size_t dir_len, const struct params *pp, int debug)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%.*s/%.*s/%.*s%s", (int)pp->grpc_len, pp->grpc, (int)pp->ns_len, pp->ns,
			 (int)pp->id_len, pp->id, debug ? "/debug" : "");
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	uint8_t sum[32];
	fre_sha256(path, (size_t)n, sum);
	char hex[65];
	for (int i = 0; i < 32; i++) {
		static const char digits[] = "0123456789abcdef";
		hex[2 * i] = digits[sum[i] >> 4];
		hex[2 * i + 1] = digits[sum[i] & 15];
	}
	hex[64] = 0;
	n = snprintf(out, cap, "unix://%.*s/%s", (int)dir_len, dir, hex);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* listen_at makes the daemon's listening socket, as the library's
 * NewSocket: the directory 0700, the socket 0600. -1 on any failure (an
 * address in use included: a stale socket is Go's to judge). */
static int listen_at(const char *addr)
{
	const char *path = addr + 7; /* after unix:// */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	char dir[sizeof(sa.sun_path)];
	strcpy(dir, path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -1;
	*slash = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		/* MkdirAll: the parent may be missing too */
		char *q = strrchr(dir, '/');
		if (!q || q == dir)
			return -1;
		*q = 0;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
		*q = '/';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	if (listen(fd, 4096) < 0 || chmod(path, 0600) < 0) {
		unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

static uint8_t *pb_string(uint8_t *o, unsigned field, const char *s, size_t n)
{
	*o++ = (uint8_t)(field << 3 | 2);
	o = varint(o, n);
	memcpy(o, s, n);
	return o + n;
}

/* fds 3 and 4 hold /dev/null placeholders of ours. */
static int fds_held;

/* hold_fds keeps fds 3 and 4, where the shim library looks for the
 * daemon's listening sockets, from anything else (Go's own files above
 * all) until the sockets take their place. -1 when something inherited is
 * there: not ours to clobber. */
static int hold_fds(void)
{
	if (fds_held)
		return 0;
	for (int fd = 3; fd <= 4; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			return -1;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		return -1;
	if ((nul != 3 && dup3(nul, 3, O_CLOEXEC) < 0) || dup3(3, 4, O_CLOEXEC) < 0)
		return -1;
	if (nul > 4)
		close(nul);
	fds_held = 1;
	return 0;
}

static int front_start(const struct args *a)
{
	const char *off = getenv("FRE_SHIM_FRONT_START");
	if (off && is(off, "0"))
		return -1;
	if (!a->id || !a->ns || hold_fds())
		return -1;
	/* stdin: read it all (the library caps it at 10 MiB; the parameters
	 * are a few hundred bytes). Past this point a fallback must hand the
	 * bytes on: only pure checks come before the first side effect. */
	static uint8_t in[64 << 10];
	size_t n = 0;
	for (;;) {
		if (n == sizeof(in))
			return -1; /* too big for this: Go gets what was read */
		ssize_t k = read(0, in + n, sizeof(in) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	fre_start_stdin = in;
	fre_start_stdin_len = n;
	struct params pp;
	if (n == 0 || parse_params(in, n, &pp) || !same(pp.id, pp.id_len, a->id) || !same(pp.ns, pp.ns_len, a->ns))
		return -1;
	if (!plain_name(pp.id, pp.id_len) || !plain_name(pp.ns, pp.ns_len) || !clean_path(pp.grpc, pp.grpc_len))
		return -1;
	const char *dir = "/run/containerd/s";
	size_t dir_len = strlen(dir);
	if (pp.have_socket_dir && pp.socket_dir_len > 0) {
		dir = pp.socket_dir, dir_len = pp.socket_dir_len;
		if (memchr(dir, 0, dir_len) || dir_len >= 4096)
			return -1;
	}
	if (maybe_grouped())
		return -1;
	int debug = pp.log_level <= -4;
	char addr[sizeof(fre_start_addr)], daddr[sizeof(fre_start_addr)];
	if (socket_address(addr, sizeof(addr), dir, dir_len, &pp, 0) || socket_address(daddr, sizeof(daddr), dir, dir_len, &pp, 1))
		return -1;
	/* Side effects, as the Go start command has them, in its order. */
	if (pp.have_socket_dir && pp.socket_dir_len > 0) {
		char d[4096];
		memcpy(d, dir, dir_len);
		d[dir_len] = 0;
		unlink("s");
		if (symlink(d, "s") < 0)
			return -1;
	}
	if (debug) {
		int fd = open("fre-debug-socket", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		write_all(fd, daddr, strlen(daddr));
		close(fd);
	}
	int l = listen_at(addr);
	if (l < 0)
		return -1;
	int dl = -1;
	if (debug && (dl = listen_at(daddr)) < 0) {
		unlink(addr + 7);
		close(l);
		return -1;
	}
	/* The answer: BootstrapResult{version=3, address, protocol="ttrpc"}. */
	uint8_t out[256], *o = out;
	*o++ = 0x08;
	*o++ = 3;
	o = pb_string(o, 2, addr, strlen(addr));
	o = pb_string(o, 3, "ttrpc", 5);
	/* The child must not hold the start command's stdio: containerd
	 * reads our stdout to its end. Swap /dev/null in before the fork and
	 * answer through a copy. */
	int saved[3] = { -1, -1, -1 };
	int nulio = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3 && nulio >= 0; fd++)
		if ((saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 5)) < 0 || dup3(nulio, fd, 0) < 0)
			break;
	/* containerd goes on when this process has exited; the child, which
	 * starts Go (milliseconds of CPU), waits for that first. */
	int gate[2] = { -1, -1 };
	pid_t pid = saved[2] >= 0 && nulio >= 0 && pipe2(gate, O_CLOEXEC) == 0 ? fork() : -1;
	if (nulio >= 0)
		close(nulio);
	if (pid < 0) {
		if (gate[0] >= 0) {
			close(gate[0]);
			close(gate[1]);
		}
		for (int fd = 0; fd < 3; fd++)
			if (saved[fd] >= 0) {
				dup3(saved[fd], fd, 0);
				close(saved[fd]);
			}
		unlink(addr + 7);
		close(l);
		if (dl >= 0) {
			unlink(daddr + 7);
			close(dl);
		}
		return -1;
	}
	if (pid == 0) {
		for (int fd = 0; fd < 3; fd++)
			close(saved[fd]);
		close(gate[1]);
		char c;
		while (read(gate[0], &c, 1) < 0 && errno == EINTR)
			;
		close(gate[0]);
		/* The daemon to be: its sockets where the library looks, its
		 * own process group and OOM score (containerd's + 1). */
		if (dup3(l, 3, 0) < 0 || (dl >= 0 && dup3(dl, 4, 0) < 0))
			_exit(1);
		close(l);
		if (dl >= 0)
			close(dl);
		setpgid(0, 0);
		int sfd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
		if (sfd >= 0) {
			char b[16] = { 0 };
			ssize_t k = read(sfd, b, sizeof(b) - 1);
			if (k > 0) {
				long score = strtol(b, 0, 10) + 1;
				if (score > 1000)
					score = 1000;
				int m = snprintf(b, sizeof(b), "%ld", score);
				if (m > 0)
					pwrite(sfd, b, (size_t)m, 0);
			}
			close(sfd);
		}
		strcpy(fre_start_addr, addr);
		return 0;
	}
	close(gate[0]);
	write_all(saved[1], (const char *)out, (size_t)(o - out));
	_exit(0); /* closes gate[1]: the child goes on */
}

static void fork_start(void)
{
	const char *off = getenv("FRE_SHIM_FORK_START");
	if (off && is(off, "0"))
		return;
	if (hold_fds())
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		fre_start_pipe = p[1];
		return;
	}
	/* The start command: relay the child's answer ("O" + the bootstrap
	 * result, or "E" + an error) and exit; the child lives on as the
	 * daemon, or has exited when a shim of its group serves already. */
	close(p[1]);
	static char buf[1 << 16];
	size_t n = 0;
	while (n < sizeof(buf)) {
		ssize_t k = read(p[0], buf + n, sizeof(buf) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	if (n > 0 && buf[0] == 'O') {
		write_all(1, buf + 1, n - 1);
		_exit(0);
	}
	if (n > 0 && buf[0] == 'E') {
		write_all(2, buf + 1, n - 1);
		_exit(1);
	}
	static const char msg[] = "containerd-shim-fre-v1: the shim daemon exited during start\n";
	write_all(2, msg, sizeof(msg) - 1);
	_exit(1);
}

static void fastpath(int argc, char **argv)
{
	struct args a;
	if (parse(argc, argv, &a) != 0 || !a.action || !a.ns || !*a.ns)
		return;
	if (is(a.action, "delete"))
		fast_delete(&a);
	else if (is(a.action, "start")) {
		if (front_start(&a) == 0)
			return; /* the daemon's child: on into Go */
		fork_start();
	}
}

static void stamp_exec(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		fre_exec_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#ifdef __GLIBC__
__attribute__((constructor)) static void fre_fastpath(int argc, char **argv)
{
	stamp_exec();
	fastpath(argc, argv);
}
#else
/* read_cmdline splits /proc/self/cmdline into argv: only glibc passes a
 * constructor the program's arguments; musl (make build's static link)
 * passes none. Returns argc, or -1 when the command line cannot be read
 * whole (Go then takes the command as usual). */
static int read_cmdline(char **argv, int max)
{
	static char buf[16384];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
		if (n == sizeof(buf) - 1)
			break;
	}
	close(fd);
	if (n == 0 || n == sizeof(buf) - 1 || buf[n - 1] != '\0')
		return -1;
	int argc = 0;
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		if (argc == max - 1)
			return -1;
		argv[argc++] = buf + i;
	}
	argv[argc] = NULL;
	return argc;
}

__attribute__((constructor)) static void fre_fastpath(void)
{
	stamp_exec();
	char *argv[64];
	int argc = read_cmdline(argv, 64);
	if (argc >= 0)
		fastpath(argc, argv);
}
#endif
