package task

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ExitRecord is the init's exit, kept in the bundle so that the shim's
// delete command can report it after the shim is gone.
type ExitRecord struct {
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exited_at"`
}

const exitFile = "fre-exit.json"

func writeExit(bundle string, e ExitRecord) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, exitFile), b, 0o600)
}

// ReadExit reads the init's recorded exit.
func ReadExit(bundle string) (ExitRecord, error) {
	var e ExitRecord
	b, err := os.ReadFile(filepath.Join(bundle, exitFile))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}

// DeletedFile, in the bundle, says that the shim deleted the container and
// everything it held (processes, state, cgroup, rootfs mount, store hold):
// "pid status seconds nanoseconds" of the init's exit. containerd runs the
// shim's delete command after every shim connection closes, also after a
// clean delete; with this file there, that command only reports the exit
// (cmd/containerd-shim-fre-v1's fast path, no Go start). Create removes a
// stale one, so it never speaks for a later container in the same bundle.
const DeletedFile = "fre-deleted"

func writeDeleted(bundle string, pid, status int, at time.Time) error {
	line := fmt.Sprintf("%d %d %d %d\n", pid, status, at.Unix(), at.Nanosecond())
	return os.WriteFile(filepath.Join(bundle, DeletedFile), []byte(line), 0o600)
}

func removeDeleted(bundle string) error {
	if err := os.Remove(filepath.Join(bundle, DeletedFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
