package runtime

import (
	"encoding/json"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// WarmUp builds, off the start path, what a long-lived process (the
// shim) would otherwise build on its first create: encoding/json's
// per-type decoders and encoders for the OCI spec and the state file,
// about 0.8 ms on the first config.json a process reads. It decodes and
// encodes a spec with every section the start path reads, and makes what
// every create shares (the fre-dmz memfd, the cgroup layout, the
// capability count).
func WarmUp() {
	spawn.Prepare()
	cgroup.Mode()
	capLastOnce()
	i, u, b := int64(1), uint64(1), true
	w := uint16(1)
	sp := &specs.Spec{
		Version:     specs.Version,
		Process:     &specs.Process{Args: []string{"a"}, Env: []string{"A=1"}, Cwd: "/", User: specs.User{AdditionalGids: []uint32{1}}, Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1, Soft: 1}}, ConsoleSize: &specs.Box{}, OOMScoreAdj: new(int)},
		Root:        &specs.Root{Path: "rootfs"},
		Hostname:    "h",
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid"}}},
		Hooks:       &specs.Hooks{Prestart: []specs.Hook{{Path: "/x", Args: []string{"x"}, Timeout: new(int)}}, CreateRuntime: []specs.Hook{{Path: "/x"}}, Poststop: []specs.Hook{{Path: "/x"}}},
		Annotations: map[string]string{"a": "b"},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{}}, GIDMappings: []specs.LinuxIDMapping{{}},
			Sysctl: map[string]string{"a": "b"},
			Resources: &specs.LinuxResources{
				Devices:        []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm", Major: &i, Minor: &i}},
				Memory:         &specs.LinuxMemory{Limit: &i, Swap: &i, Reservation: &i, Swappiness: &u, DisableOOMKiller: &b},
				CPU:            &specs.LinuxCPU{Shares: &u, Quota: &i, Period: &u, Cpus: "0", Mems: "0"},
				Pids:           &specs.LinuxPids{Limit: &i},
				BlockIO:        &specs.LinuxBlockIO{Weight: &w, ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{Rate: 1}}},
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB"}},
				Unified:        map[string]string{"a": "b"},
			},
			CgroupsPath: "/a",
			Namespaces:  []specs.LinuxNamespace{{Type: specs.PIDNamespace}},
			Devices:     []specs.LinuxDevice{{Path: "/dev/x", Type: "c", FileMode: new(os.FileMode), UID: new(uint32), GID: new(uint32)}},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64}, Flags: []specs.LinuxSeccompFlag{"x"},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"x"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Op: specs.OpEqualTo}}}}},
			MaskedPaths: []string{"/a"}, ReadonlyPaths: []string{"/b"},
		},
	}
	data, err := json.Marshal(sp)
	if err != nil {
		return
	}
	var back specs.Spec
	if json.Unmarshal(data, &back) != nil {
		return
	}
	json.Marshal(&savedState{Process: back.Process, Hooks: back.Hooks, Seccomp: back.Linux.Seccomp, Annotations: back.Annotations})
}
