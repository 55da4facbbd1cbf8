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
 * starts in a row), this process forks before Go starts. The child goes on
 * into Go, does the start command's work itself and becomes the daemon
 * (manager.ForkedStart); it hands the bootstrap result back through a
 * pipe, and this parent, which never starts Go, prints it and exits as the
 * start command. FRE_SHIM_FORK_START=0 turns this off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The write end of the start pipe in the forked child, for Go; -1 when
 * the process did not fork (read by fastpath.go). */
int fre_start_pipe = -1;

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
	const char *action, *bundle, *ns;
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
	for (unsigned char *w = out; w < o;) {
		ssize_t k = write(1, w, (size_t)(o - w));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			_exit(1);
		w += k;
	}
	_exit(0);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

static void fork_start(void)
{
	const char *off = getenv("FRE_SHIM_FORK_START");
	if (off && is(off, "0"))
		return;
	/* The daemon's listening sockets go at fds 3 and 4, where the shim
	 * library looks for them: hold those two before Go opens anything. */
	for (int fd = 3; fd <= 4; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			return; /* something inherited there: not ours to clobber */
	}
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		return;
	if (nul != 3 && dup3(nul, 3, O_CLOEXEC) < 0)
		return;
	if (dup3(3, 4, O_CLOEXEC) < 0)
		return;
	if (nul > 4)
		close(nul);
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

__attribute__((constructor)) static void fre_fastpath(int argc, char **argv)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		fre_exec_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	struct args a;
	if (parse(argc, argv, &a) != 0 || !a.action || !a.ns || !*a.ns)
		return;
	if (is(a.action, "delete"))
		fast_delete(&a);
	else if (is(a.action, "start"))
		fork_start();
}
