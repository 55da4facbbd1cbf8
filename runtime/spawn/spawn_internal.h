/*
 * Private to the C files of this package (spawn.h is what Go sees too).
 * The child's side of the start path is split by job:
 *
 *   spawn.c        fre_spawn_start (the clone), fre-runc's one-CPU start,
 *                  and child(): the child's set-up in order, from clone()
 *                  to exec
 *   spawn_sync.c   the sync socket: waits for "G", failure reports,
 *                  the set-up's timestamps
 *   spawn_ns.c     cgroup and namespace joins
 *   spawn_mount.c  the root file system: mounts, pivot_root
 *   spawn_exec.c   fds and console, credentials, seccomp, the exec
 *
 * What one file calls in another is named spawn_* (fre_* is for Go);
 * every other function is static to its file. Everything but spawn.c's
 * fre_* functions runs in the child, between clone() and execve: raw system
 * calls and stack memory only (no malloc, no stdio). Each .c file
 * defines _GNU_SOURCE before including this.
 */
#ifndef FRE_SPAWN_INTERNAL_H
#define FRE_SPAWN_INTERNAL_H

#include "spawn.h"

#include <stddef.h>

/* ---- small helpers: no libc state, no allocation ---- */

static inline size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

static inline char *scat(char *dst, char *end, const char *src)
{
	while (*src && dst < end - 1)
		*dst++ = *src++;
	*dst = 0;
	return dst;
}

/* spawn_sync.c */

/* The child's end of the sync socket (s->sync_fd), set first thing in
 * the child; spawn_fail reports through it. */
extern __thread int spawn_sync_fd;

void spawn_wait_go(struct fre_spawn *s);
void spawn_ts(struct fre_spawn *s, int i);
void __attribute__((noreturn)) spawn_fail(int err, const char *what, const char *path);
void spawn_write_file(const char *path, const char *val);

/* spawn_ns.c */

void spawn_join_cgroups(struct fre_spawn *s);
void spawn_join_namespaces(struct fre_spawn *s);
void spawn_go_and_join(struct fre_spawn *s);

/* spawn_mount.c */

void spawn_setup_root(struct fre_spawn *s);
void spawn_finish_root(struct fre_spawn *s);

/* spawn_exec.c */

void spawn_setup_console(struct fre_spawn *s);
void spawn_set_creds(struct fre_spawn *s);
const char *spawn_lookup(struct fre_spawn *s, char *buf, size_t n);
void spawn_close_others(struct fre_spawn *s);
void spawn_set_sched(struct fre_spawn *s);
void spawn_seccomp_early(struct fre_spawn *s);
void spawn_exec_direct(struct fre_spawn *s, const char *prog);
void __attribute__((noreturn)) spawn_exec_dmz(struct fre_spawn *s, const char *prog);

#endif
