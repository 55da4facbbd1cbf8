package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/fre-runtime/fre/seccomp"
)

// Features is what the runtime supports, in the OCI features document
// (`fre-runc features`, and the shim's RuntimeInfo): the same answer
// everywhere, true to this build.
func Features() *features.Features {
	yes, no := true, false
	actions, archs, flags := seccomp.Supported()
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions: []string{"async", "atime", "bind", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
			"nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount",
			"ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable",
			// The recursive ones (mount_setattr, Linux 5.12), as runc lists them.
			"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnodiratime", "rdiratime",
			"rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow"},
		Linux: &features.Linux{
			Namespaces: []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
				"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
				"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
				"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
				"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
				"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
				"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"},
			// cgroupfs and systemd (a transient scope over D-Bus) on v1
			// and v2; no systemd user instance (rootless).
			Cgroup: &features.Cgroup{V1: &yes, V2: &yes, Systemd: &yes, SystemdUser: &no},
			Seccomp: &features.Seccomp{Enabled: &yes, Actions: actions, Archs: archs, KnownFlags: flags, SupportedFlags: flags,
				Operators: []string{"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}},
			Apparmor:        &features.Apparmor{Enabled: &yes},
			Selinux:         &features.Selinux{Enabled: &yes},
			IntelRdt:        &features.IntelRdt{Enabled: &no},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &no}},
		},
		Annotations: map[string]string{
			"run.fre.netns":      "host|new|pool: what a network namespace without a path gets",
			AnnotationRootfs:     "plain|shared: the bundle's rootfs (default) or the shared-layer store",
			AnnotationTenant:     "a tenant name: its persistent workDir, bound read-write",
			AnnotationWorkDir:    "the workDir's path in the container (default /work)",
			AnnotationTenantSize: "the tenant's size limit (a project quota), e.g. 100Mi",
			AnnotationChannel:    "true|NAME: a channel directory bound at /run/fre, removed at delete",
			"org.opencontainers.runc.checkpoint.enabled": "false",
		},
	}
}
