package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/runtime"
	"github.com/fre-runtime/fre/seccomp"
)

func init() {
	register(&command{name: "spec", short: "create a new specification file", minArgs: 0, maxArgs: 0,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var bundle string
			var rootless bool
			stringFlag(fs, &bundle, "bundle,b", "", "path to the root of the bundle directory")
			fs.BoolVar(&rootless, "rootless", false, "generate a configuration for a rootless container")
			return func([]string) error {
				if rootless {
					return fmt.Errorf("spec --rootless: %w", runtime.ErrNotSupported)
				}
				path := filepath.Join(bundle, "config.json")
				if _, err := os.Stat(path); err == nil {
					return errors.New("File config.json exists. Remove it first")
				}
				b, err := json.MarshalIndent(runtime.DefaultSpec(), "", "\t")
				if err != nil {
					return err
				}
				return os.WriteFile(path, append(b, '\n'), 0o666)
			}
		}})
	register(&command{name: "features", short: "show the enabled features", minArgs: 0, maxArgs: 0,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func([]string) error { return printJSON(features()) }
		}})
}

func seccompFeatures() map[string]any {
	actions, archs, flags := seccomp.Supported()
	return map[string]any{"enabled": true, "actions": actions, "archs": archs, "knownFlags": flags, "supportedFlags": flags,
		"operators": []string{"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}}
}

func features() map[string]any {
	yes := true
	no := false
	ns := []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}
	var caps []string
	for _, c := range []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"} {
		caps = append(caps, c)
	}
	return map[string]any{
		"ociVersionMin": "1.0.0",
		"ociVersionMax": specs.Version,
		"hooks":         []string{},
		"mountOptions": []string{"async", "atime", "bind", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
			"nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount",
			"ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"},
		"linux": map[string]any{
			"namespaces":   ns,
			"capabilities": caps,
			"cgroup":       map[string]any{"v1": yes, "v2": yes, "systemd": no, "systemdUser": no},
			"seccomp":      seccompFeatures(),
			"apparmor":     map[string]any{"enabled": no},
			"selinux":      map[string]any{"enabled": no},
		},
		"annotations": map[string]string{
			"run.fre.netns": "host|new|pool: what a network namespace without a path gets",
			"org.opencontainers.runc.checkpoint.enabled": "false",
		},
	}
}
