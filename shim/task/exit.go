package task

import (
	"encoding/json"
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
