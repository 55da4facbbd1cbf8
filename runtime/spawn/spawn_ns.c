// The child's cgroup and namespace joins. Everything here runs in the
// child after clone(): raw system calls and stack memory only.
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

/* Join the cgroup ourselves: a single thread writing "0" (itself) to
 * a v1 "tasks" file skips the kernel's global threadgroup rwsem,
 * whose write side waits for an RCU grace period (milliseconds) when
 * it has been idle; the parent writing our pid to cgroup.procs takes
 * it. The fds were opened by the parent, whose credentials the kernel
 * checks, so this works in any user namespace. */
void spawn_join_cgroups(struct fre_spawn *s)
{
	for (int i = 0; i < s->ncgroup_fds; i++) {
		if (write(s->cgroup_fds[i], "0", 1) != 1)
			spawn_fail(errno, "join cgroup", NULL);
		close(s->cgroup_fds[i]);
	}
}

/* spawn_join_namespaces enters the namespaces of the plan (setns, in its
 * order: the user namespace first) and then makes those that a joined
 * user namespace owns. */
void spawn_join_namespaces(struct fre_spawn *s)
{
	for (int i = 0; i < s->njoin; i++)
		if (setns(s->join[i].fd, s->join[i].type) < 0)
			spawn_fail(errno, "setns", NULL);
	for (int i = 0; i < s->njoin; i++)
		close(s->join[i].fd);
	if (s->unshare_flags && unshare(s->unshare_flags) < 0)
		spawn_fail(errno, "unshare", NULL);
}

/* spawn_go_and_join waits for "G", then joins the cgroup the parent claimed
 * meanwhile (cgroup_late: by path, as no user namespace is in this mode);
 * when that wait comes amid the mounts, the cgroup namespace is made here,
 * once in the cgroup. */
void spawn_go_and_join(struct fre_spawn *s)
{
	spawn_wait_go(s);
	for (int i = 0; i < s->ncgroup_late; i++) {
		int fd = open(s->cgroup_late[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			spawn_fail(errno, "join cgroup", s->cgroup_late[i]);
		close(fd);
	}
	if (s->go_at_mount >= 0 && s->cgroupns_new && unshare(CLONE_NEWCGROUP) < 0)
		spawn_fail(errno, "unshare cgroup namespace", NULL);
}
