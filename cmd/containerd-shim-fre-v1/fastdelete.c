/*
 * The delete command's fast path, run before the Go runtime starts.
 *
 * containerd runs "containerd-shim-fre-v1 ... delete" whenever its
 * connection to a shim closes, also right after a clean task delete (ctr
 * run --rm waits for it). When the shim daemon deleted the container and
 * all it held, it left <bundle>/fre-deleted ("pid status sec nsec", see
 * shim/task.DeletedFile): then there is nothing to clean, and this prints
 * the task.DeleteResponse containerd expects and exits, without paying for
 * the start of a large Go program. In any other case (no such file, an
 * argument this does not understand) it returns and Go's delete command
 * (manager.Stop) does the full clean-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

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

__attribute__((constructor)) static void fre_fast_delete(int argc, char **argv)
{
	const char *action = 0, *bundle = 0, *ns = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == 0) {
			action = a;
			if (i != argc - 1)
				return; /* more than one argument after the flags */
			break;
		}
		const char *name = a + 1;
		if (*name == '-')
			name++;
		if (*name == 0 || *name == '-')
			return; /* "--" or "---x": leave it to Go */
		const char *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		const char *val;
		if (in(name, n, bool_flags)) {
			if (n == 5 && strncmp(name, "debug", 5) == 0 && (!eq || is(eq + 1, "false") || is(eq + 1, "true")))
				continue;
			return; /* -v, -info: not a delete */
		}
		if (!in(name, n, value_flags))
			return;
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return;
			val = argv[++i];
		}
		if (n == 6 && strncmp(name, "bundle", 6) == 0)
			bundle = val;
		else if (n == 9 && strncmp(name, "namespace", 9) == 0)
			ns = val;
	}
	if (!action || !is(action, "delete") || !ns || !*ns)
		return;

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
