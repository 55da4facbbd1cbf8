/*
 * The C part of FRE's start path. Go cannot fork safely, and setns into a
 * mount or user namespace fails in a multithreaded process, so the child
 * side of container creation is this small C program-interpreter: Go
 * prepares every decision (namespaces, a flat list of mount operations,
 * devices, credentials) in a struct fre_spawn allocated in C memory; C
 * clones and, in the child, executes that plan with raw system calls only
 * (no malloc, no stdio: the child of a multithreaded fork may only make
 * async-signal-safe calls) and finally execs the container's program.
 *
 * Protocol on sync_fd (a SOCK_SEQPACKET pair, one message per packet):
 *   parent -> child  "G"           after uid/gid maps, cgroup join, limits
 *   child  -> parent "H"           (hook_pause) mounts done, before pivot_root;
 *                                  waits for "G" again
 *   child  -> parent "E<message>"  set-up failed; the child exits 1
 * then the child execs fre-dmz (dmz/dmz.c), which sends
 *   dmz    -> parent "R"           waiting on the exec fifo (create)
 *   dmz    -> parent "X"           no exec fifo (run): about to execve; EOF
 *                                  then means execve closed the CLOEXEC socket
 *   dmz    -> parent "E"+errno     the program's execve failed
 */
#ifndef FRE_SPAWN_H
#define FRE_SPAWN_H

/* At most this many bind sources come from the parent (SCM_MAX_FD). */
#define FRE_MAX_SRC_FDS 253

#include <sched.h>
#include <stdint.h>

/* Mount operation kinds. */
enum {
	FRE_MNT_MOUNT = 0,   /* mount(source, target, fstype, flags, data) */
	FRE_MNT_BIND = 1,    /* bind source on target, then remount for flags */
	FRE_MNT_MKNOD = 2,   /* device node at target (mode, dev, uid, gid) */
	FRE_MNT_SYMLINK = 3, /* symlink source at target */
	FRE_MNT_MKDIR = 4,   /* mkdir -p target */
	FRE_MNT_MASK = 5,    /* maskedPaths entry: /dev/null on files, ro tmpfs on dirs */
	FRE_MNT_RO = 6,      /* readonlyPaths entry: bind on itself, remount ro */
	FRE_MNT_SETATTR = 7, /* mount_setattr(target, AT_RECURSIVE, attr_set, attr_clr): rro and the like */
};

struct fre_mount {
	int kind;
	const char *source;
	const char *target; /* absolute inside the container root */
	const char *fstype;
	const char *data;
	unsigned long flags;   /* MS_* for the mount itself */
	unsigned long propagation; /* MS_SHARED/SLAVE/PRIVATE/UNBINDABLE (+MS_REC), 0 = none */
	int is_file;  /* the target is a file (bind of a file) */
	unsigned int mode; /* mknod mode (type|perm) */
	unsigned long long dev;
	unsigned int uid, gid;
	unsigned long long attr_set, attr_clr; /* FRE_MNT_SETATTR: MOUNT_ATTR_* */
	int src; /* >= 0 (FRE_MNT_BIND): bind from src_fds[src], not from source */
};

struct fre_ns {
	int type; /* CLONE_NEW* */
	int fd;   /* open namespace file to setns into */
};

struct fre_rlimit {
	int resource;
	unsigned long long soft, hard;
};

struct fre_spawn {
	/* namespaces */
	int clone_flags;    /* new namespaces created by clone() */
	int unshare_flags;  /* new namespaces created after joins (owned by a joined userns) */
	int cgroupns_new;   /* unshare(CLONE_NEWCGROUP) after the parent joined the cgroup */
	struct fre_ns *join; int njoin; /* setns in this order (user first) */
	int *cgroup_fds; int ncgroup_fds; /* v1 "tasks" files: the child writes "0" to each */
	const char **cgroup_late; int ncgroup_late; /* the same by path, opened after the (early) "G" */
	int pidns_fd;       /* >= 0: setns(CLONE_NEWPID) in the parent thread before clone */
	int cgroup_dir_fd;  /* >= 0: a cgroup v2 directory the child is born in (clone3's
	                     * CLONE_INTO_CGROUP); fre_spawn_start returns -ENOSYS where
	                     * the kernel has no clone3 with it */

	int sync_fd;        /* child end of the sync socket */
	int parent_sync_fd; /* parent end, closed in the child */
	int fifo_fd;        /* exec fifo opened O_RDWR|O_CLOEXEC, or -1 (run) */
	int console_fd;     /* console socket, or -1 */
	int stdio[3];       /* fds to become 0, 1, 2, or -1 to inherit */
	unsigned short cons_rows, cons_cols;

	/* file system */
	int mount_ns;       /* set up the root (a new mount namespace was made) */
	const char *rootfs;
	unsigned long root_propagation; /* for "/" before anything, default MS_SLAVE|MS_REC */
	int readonly_root;
	int no_pivot;
	int root_is_mount; /* rootfs is the root of a mount: pivot to it as it is */
	const char *root_mount_type; /* non-NULL: mount this on rootfs first (the shim's overlay) */
	const char *root_mount_source, *root_mount_data; unsigned long root_mount_flags;
	int late_go;        /* set up first, wait for "G" just before exec */
	int final_go;       /* and wait for one more "G" there (after the others) */
	int go_at_mount;    /* >= 0: wait for "G" (then join cgroup_late, unshare the
	                     * cgroup ns) before mounts[go_at_mount], or after the
	                     * last one when it is nmounts; -1: before the set-up */
	int go2_at_mount;   /* >= go_at_mount: wait for a second "G" there (-1: none) */
	int hook_pause;     /* send "H" after the mounts and wait for "G" (createContainer hooks) */
	struct fre_mount *mounts; int nmounts;           /* before pivot_root, relative to rootfs */
	/* Bind sources the parent opened in our mount namespace (O_PATH, as
	 * root of the host: a user namespace's root may not reach them) and
	 * sends with the first "G" (SCM_RIGHTS); the child fills src_fds. */
	int *src_fds; int nsrc_fds;
	struct fre_mount *post_mounts; int npost_mounts; /* after pivot_root (masked/readonly paths) */
	const char **sysctl_paths; const char **sysctl_values; int nsysctl;
	const char *hostname; const char *domainname;
	const char **attr_paths; const char **attr_values; int nattr; /* LSM exec attributes */

	/* process */
	const char *path_env; /* the container's PATH for the program lookup */
	const char *const *argv;
	const char *exec_path; /* run this instead of looking argv[0] up, or NULL */
	const char *const *envp;
	const char *cwd;
	int set_user;          /* change credentials */
	unsigned int uid, gid;
	unsigned int *groups; int ngroups;
	int umask;             /* -1: leave */
	struct fre_rlimit *rlimits; int nrlimits;
	int no_new_privs;
	int set_caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	int cap_last;          /* /proc/sys/kernel/cap_last_cap */
	int userns_root;       /* in a new user namespace: become uid/gid 0 after maps */
	int preserve_fds;      /* fds 3..3+n-1 survive exec */
	long personality;      /* -1: leave */
	int set_sched; unsigned int sched_policy; int sched_nice; unsigned int sched_priority;
	unsigned long long sched_flags, sched_runtime, sched_deadline, sched_period;
	int ioprio;            /* -1: leave; else class<<13 | level */
	int time_ns;           /* unshare(CLONE_NEWTIME); entered at exec */
	const char *time_offsets; /* "monotonic S N\nboottime S N\n" or NULL */
	int seccomp_fd;        /* memfd with the filter for fre-dmz, or -1 */
	int seccomp_len;       /* instructions in it */
	unsigned int seccomp_flags;
	int dmz_fd;            /* sealed memfd holding fre-dmz */
	char **dmz_argv;       /* fre-dmz's argv; slot 6 (the program's path) is filled in by the child */

	/* set by fre_spawn_start */
	int ppid;
	/* Child set-up timestamps (CLOCK_MONOTONIC ns), written by the child
	 * into our shared memory when trace is set; see FRE_TS_*. */
	int trace;
	long long ts[8];
	void *stack; unsigned long stack_size;
};

/* fre_spawn_start clones the container's init. On success it returns the
 * child's pid and stores a pidfd in *pidfd; on failure -errno. */
enum { FRE_TS_START, FRE_TS_GO, FRE_TS_ROOTBIND, FRE_TS_MOUNTS, FRE_TS_PIVOT, FRE_TS_POST, FRE_TS_EXEC, FRE_TS_WAIT, FRE_TS_N };

int fre_spawn_start(struct fre_spawn *s, int *pidfd);

/* fre_spawn_free releases the child's stack once it has exec'd or exited. */
void fre_spawn_free(struct fre_spawn *s);

#endif

/* fre_pin_start pins the calling thread, and every thread it starts later,
 * to the CPU it runs on, remembering the CPUs it had (fre-runc calls it from
 * a constructor, before the Go runtime starts its threads). Children that
 * fre_spawn_start clones get those CPUs back. */
void fre_pin_start(void);

/* fre_thp_off disables transparent huge pages for this process (its mm),
 * unless something already had; fre-runc calls it from its constructor,
 * before the Go runtime maps its heap. The setting is inherited across
 * fork and execve, so fre_thp_restore (called before every exec of
 * another program: spawn's children, hooks, ps) undoes it, once; the
 * processes fre-runc starts get the host's THP policy, as under runc. */
void fre_thp_off(void);
void fre_thp_restore(void);

/* fre_unpin_thread gives the calling thread the CPUs it had before
 * fre_pin_start; a no-op when nothing was pinned. 0 or -errno. */
int fre_unpin_thread(void);

/* fre_start_affinity copies those CPUs to out and returns 1, or returns 0
 * when nothing was pinned. */
int fre_start_affinity(cpu_set_t *out);
