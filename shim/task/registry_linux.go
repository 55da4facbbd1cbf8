package task

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/shim"
)

// The shim registry: one record per running shim daemon (its pid and the
// sockets it serves), so that the sockets of a shim that was killed, when
// containerd no longer has its bundle to run the delete command in (a
// kill -9 after the last Delete, or during Shutdown), are removed by the
// next shim: a sweep removes only sockets FRE's shims made, and only when
// their daemon is gone and nothing answers on them.
const (
	// ShimRegistryEnv moves the registry (tests).
	ShimRegistryEnv = "FRE_SHIM_REGISTRY"
	// DefaultShimRegistry is the host's registry.
	DefaultShimRegistry = "/run/fre/shims"
)

type shimRecord struct {
	Pid     int      `json:"pid"`
	Start   uint64   `json:"start"` // the pid's start time (clock ticks after boot)
	Sockets []string `json:"sockets"`
}

func shimRegistry() string {
	if d := os.Getenv(ShimRegistryEnv); d != "" {
		return d
	}
	return DefaultShimRegistry
}

// recordName is the record of the shim serving address.
func recordName(address string) string {
	return filepath.Join(shimRegistry(), filepath.Base(strings.TrimPrefix(address, "unix://"))+".json")
}

// RegisterShim records the daemon pid serving sockets (the first is its
// address).
func RegisterShim(pid int, sockets []string) error {
	if len(sockets) == 0 {
		return nil
	}
	start, err := startTime(pid)
	if err != nil {
		return err
	}
	b, err := json.Marshal(shimRecord{Pid: pid, Start: start, Sockets: sockets})
	if err != nil {
		return err
	}
	name := recordName(sockets[0])
	tmp := name + ".tmp" + strconv.Itoa(os.Getpid())
	// The last shim to go removes the directory (UnregisterShim): one
	// more try if it went between the two steps.
	for try := 0; ; try++ {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			return err
		}
		err := os.WriteFile(tmp, b, 0o600)
		if err == nil {
			if err = os.Rename(tmp, name); err == nil {
				return nil
			}
			os.Remove(tmp)
		}
		if !os.IsNotExist(err) || try > 0 {
			return err
		}
	}
}

// UnregisterShim removes the record of the daemon serving address, if it
// is this process's.
func UnregisterShim(address string) {
	name := recordName(address)
	b, err := os.ReadFile(name)
	if err != nil {
		return
	}
	var r shimRecord
	if json.Unmarshal(b, &r) == nil && r.Pid == os.Getpid() {
		os.Remove(name)
		os.Remove(filepath.Dir(name)) // when it was the last
	}
}

// SweepDeadShims removes the sockets, and records, of registered shims
// whose daemon is gone (its pid ended, or is another process now) and on
// whose sockets nothing answers.
func SweepDeadShims() (removed []string) {
	dir := shimRegistry()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		var r shimRecord
		if err := json.Unmarshal(b, &r); err != nil {
			os.Remove(name) // not a record of ours: a torn write cannot be (rename)
			continue
		}
		if st, err := startTime(r.Pid); err == nil && st == r.Start {
			continue // alive (a zombie is not: startTime)
		}
		live := false
		for _, s := range r.Sockets {
			if shim.CanConnect(s) {
				live = true // a new shim of the same address
				continue
			}
			if err := shim.RemoveSocket(s); err == nil {
				removed = append(removed, s)
			}
		}
		// Unless a new shim registered itself under the name meanwhile.
		if now, err := os.ReadFile(name); err == nil && bytes.Equal(now, b) && !live {
			os.Remove(name)
		}
	}
	os.Remove(dir) // when it was the last record
	return removed
}

// startTime is field 22 of /proc/<pid>/stat, of a process that has not
// ended (a zombie has, its parent not yet told: an error).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has ended", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
