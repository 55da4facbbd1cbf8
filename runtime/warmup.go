package runtime

import (
	"encoding/json"
	"os"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// WarmUp builds, off the start path, what a long-lived process (the
// shim) would otherwise build on its first create: quickjson's field
// tables for every section of the OCI spec, and encoding/json's per-type
// codecs for what still goes through it (an exec's process spec that
// quickjson leaves to it, hooks' state, the options). It decodes and
// encodes a spec with every section the start path reads, and makes what
// every create shares (the fre-dmz memfd, the cgroup layout, the
// capability count).
func WarmUp() {
	warmSpec()
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
	// encoding/json's field cache (encoders included) serves its decode of
	// whatever quickjson leaves to it; quickjson's tables, the rest.
	data, err := json.Marshal(sp)
	if err != nil {
		return
	}
	var back specs.Spec
	quickjson.Unmarshal(data, &back)
}

// typicalSpec is config.json as containerd's defaults make it (ctr run),
// cut short, with what CRI adds (hostname, annotations, memory and CPU).
const typicalSpec = `{"ociVersion":"1.3.0","hostname":"h","annotations":{"a":"b"},` +
	`"process":{"user":{"uid":0,"gid":0,"additionalGids":[0]},"cwd":"/","capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]},` +
	`"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"oomScoreAdj":0,"args":["/bin/true"],"env":["PATH=/bin"]},` +
	`"root":{"path":"rootfs","readonly":false},` +
	`"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}],` +
	`"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}],` +
	`"memory":{"limit":67108864,"swap":67108864},"cpu":{"shares":2,"quota":100000,"period":100000}},"cgroupsPath":"/default/x",` +
	`"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network","path":"/run/netns/x"}],` +
	`"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}`

// warmSpec builds quickjson's field tables for a typical spec (config.json
// and the state file go through quickjson): the part of WarmUp a first
// create nearly always needs, about 0.1 ms of a cold process.
var warmSpec = sync.OnceFunc(func() {
	var sp specs.Spec
	if quickjson.Unmarshal([]byte(typicalSpec), &sp) != nil || sp.Linux == nil {
		return
	}
	quickjson.Marshal(&savedState{Process: sp.Process, Annotations: sp.Annotations, CgroupPaths: map[string]string{"a": "b"}})
})

// WarmUpSpec is the part of WarmUp that a new process's first create of
// a typical spec needs (see warmSpec); for a process whose own start it
// must not delay much.
func WarmUpSpec() { warmSpec() }
