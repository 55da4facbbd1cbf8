package task

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fre-runtime/fre/internal/testutil"
)

// TestSweepDeadShims: the sockets of a registered shim whose daemon is
// gone are removed with its record; a live daemon's, and a socket that
// answers, stay.
func TestSweepDeadShims(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(ShimRegistryEnv, filepath.Join(dir, "reg"))
	sock := func(name string, listen bool) string {
		p := filepath.Join(dir, name)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		if !listen {
			l.Close()
		} else {
			t.Cleanup(func() { l.Close() })
		}
		return "unix://" + p
	}
	// A daemon that has ended, its parent (this test) not yet told: a
	// zombie is as dead.
	dead := exec.Command("sleep", "100")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	if err := RegisterShim(deadPid, []string{sock("dead", false), sock("dead-debug", false)}); err != nil {
		t.Fatal(err)
	}
	// A dead one whose address a new shim serves.
	reused := sock("reused", true)
	if err := RegisterShim(deadPid, []string{reused}); err != nil {
		t.Fatal(err)
	}
	dead.Process.Kill()
	defer dead.Wait()
	if !testutil.Poll(10*time.Second, func() bool { _, err := startTime(deadPid); return err != nil }) {
		t.Fatal("the killed daemon is not a zombie")
	}
	// This process, alive.
	live := sock("live", false)
	if err := RegisterShim(os.Getpid(), []string{live}); err != nil {
		t.Fatal(err)
	}
	removed := SweepDeadShims()
	if len(removed) != 2 {
		t.Errorf("removed %v, want the dead shim's two sockets", removed)
	}
	for name, want := range map[string]bool{"dead": false, "dead-debug": false, "live": true, "reused": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
	if _, err := os.Stat(recordName("unix://" + filepath.Join(dir, "dead"))); !os.IsNotExist(err) {
		t.Errorf("the dead shim's record stays: %v", err)
	}
	for _, a := range []string{live, reused} {
		if _, err := os.Stat(recordName(a)); err != nil {
			t.Errorf("record of %s: %v", a, err)
		}
	}
}
