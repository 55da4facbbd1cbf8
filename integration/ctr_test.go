package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCtrRunEcho(t *testing.T) {
	c := setup(t)
	out, err := c.run([]string{"--rm"}, "fre-echo", "echo", "hello")
	if err != nil {
		t.Fatalf("ctr run: %v: %s\ncontainerd log:\n%s", err, out, c.tail())
	}
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("output %q, want hello", out)
	}
}

// stdin reaches the container and its end of file too (cat exits); its
// output reaches ctr through the fifos the container writes itself.
func TestCtrRunStdin(t *testing.T) {
	c := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--address", c.sock, "--namespace", namespace, "run", "--rm", "--runtime", runtimeName, imageRef, "fre-stdin", "sh", "-c", "cat; echo done"}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "ctr"), args...)
	cmd.Env = c.env()
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ctr run with stdin: %v: %s\ncontainerd log:\n%s", err, out.String(), c.tail())
	}
	if got := dropWarnings(out.String()); got != "line one\nline two\ndone\n" {
		t.Fatalf("output %q", got)
	}
}

func TestCtrRunExitCode(t *testing.T) {
	c := setup(t)
	out, err := c.run([]string{"--rm"}, "fre-exit", "sh", "-c", "echo out; echo err >&2; exit 3")
	if got := exitCode(err); got != 3 {
		t.Fatalf("exit code %d (%v), want 3: %s", got, err, out)
	}
	if !strings.Contains(out, "out") || !strings.Contains(out, "err") {
		t.Fatalf("output %q lacks stdout or stderr", out)
	}
}

// taskStatus is the STATUS column of `ctr task ls` for id.
func (c *containerd) taskStatus(id string) (string, error) {
	out, err := c.ctr("tasks", "ls")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id {
			return f[2], nil
		}
	}
	return "", nil
}

func (c *containerd) waitStatus(t *testing.T, id, want string) {
	t.Helper()
	waitFor(t, id+" "+want, 20*time.Second, func() (bool, error) {
		st, err := c.taskStatus(id)
		return st == want, err
	})
}

// removeTask kills and removes a task and its container, for cleanups.
func (c *containerd) removeTask(id string) {
	c.ctr("tasks", "kill", "-s", "SIGKILL", id)
	c.ctr("tasks", "delete", "-f", id)
	c.ctr("containers", "delete", id)
}

func TestCtrDetachedLifecycle(t *testing.T) {
	c := setup(t)
	const id = "fre-detached"
	t.Cleanup(func() { c.removeTask(id) })
	if out, err := c.run([]string{"-d"}, id, "sleep", "1000"); err != nil {
		t.Fatalf("ctr run -d: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")

	out, err := c.ctr("tasks", "exec", "--exec-id", "e1", id, "echo", "from-exec")
	if err != nil || strings.TrimSpace(out) != "from-exec" {
		t.Fatalf("exec: %v: %q", err, out)
	}
	out, err = c.ctr("tasks", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5")
	if exitCode(err) != 5 {
		t.Fatalf("exec exit code %d (%v), want 5: %s", exitCode(err), err, out)
	}

	out, err = c.ctr("tasks", "ps", id)
	if err != nil {
		t.Fatalf("ps: %v: %s", err, out)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n < 2 {
		t.Fatalf("ps lists no process: %q", out)
	}

	if out, err := c.ctr("tasks", "pause", id); err != nil {
		t.Fatalf("pause: %v: %s", err, out)
	}
	c.waitStatus(t, id, "PAUSED")
	if out, err := c.ctr("tasks", "resume", id); err != nil {
		t.Fatalf("resume: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")

	out, err = c.ctr("tasks", "metrics", id)
	if err != nil {
		t.Fatalf("metrics: %v: %s", err, out)
	}
	if !strings.Contains(out, "memory") || !strings.Contains(out, "pids") {
		t.Fatalf("metrics lack memory or pids: %s", out)
	}

	if out, err := c.ctr("tasks", "kill", "-s", "SIGKILL", id); err != nil {
		t.Fatalf("kill: %v: %s", err, out)
	}
	c.waitStatus(t, id, "STOPPED")
	if out, err := c.ctr("tasks", "rm", id); err != nil {
		t.Fatalf("task rm: %v: %s", err, out)
	}
	if out, err := c.ctr("containers", "rm", id); err != nil {
		t.Fatalf("container rm: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(freRoot, id)); !os.IsNotExist(err) {
		t.Fatalf("runtime state of %s left behind: %v", id, err)
	}
}

// TestCtrOOM runs a container over its memory limit: the kernel kills it
// (exit 137) and the shim publishes TaskOOM.
func TestCtrOOM(t *testing.T) {
	c := setup(t)
	const id = "fre-oom"
	t.Cleanup(func() { c.removeTask(id) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := exec.CommandContext(ctx, filepath.Join(c.binDir, "ctr"), "--address", c.sock, "events")
	var evOut syncBuffer
	events.Stdout = &evOut
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer events.Wait()
	defer cancel()
	// ctr events subscribes asynchronously: wait until it sees an event
	// of ours.
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("ctr events saw none of our probe events")
		}
		probe := fmt.Sprintf("fre-oom-probe-%d", i)
		if out, err := c.ctr("containers", "create", imageRef, probe); err != nil {
			t.Fatalf("create probe: %v: %s", err, out)
		}
		c.ctr("containers", "delete", probe)
		if pollFor(time.Second, func() bool { return strings.Contains(evOut.String(), probe) }) {
			break
		}
	}
	out, err := c.run([]string{"--rm", "--memory-limit", "33554432"}, id, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
	if got := exitCode(err); got != 137 {
		t.Fatalf("exit code %d (%v), want 137: %s", got, err, out)
	}
	// Both events, as ctr events prints them: the exit may reach the
	// stream after ctr run has returned.
	waitFor(t, "TaskOOM and TaskExit events", 10*time.Second, func() (bool, error) {
		s := evOut.String()
		return strings.Contains(s, "/tasks/oom") && strings.Contains(s, "/tasks/exit") && strings.Contains(s, id), nil
	})
	s := evOut.String()
	if strings.Index(s, "/tasks/oom") > strings.LastIndex(s, "/tasks/exit") {
		t.Errorf("TaskOOM after TaskExit:\n%s", s)
	}
}

// TestCtrRestartContainerd restarts containerd under a running container:
// the container keeps running and containerd reconnects to its shim.
func TestCtrRestartContainerd(t *testing.T) {
	c := setup(t)
	const id = "fre-restart"
	t.Cleanup(func() { c.removeTask(id) })
	if out, err := c.run([]string{"-d"}, id, "sleep", "1000"); err != nil {
		t.Fatalf("ctr run -d: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")
	shims := c.shimPids()
	c.stop()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(t, id, "RUNNING")
	// The container's shim is one of those before (shims of earlier
	// tests may still be ending): containerd reconnected, started none.
	got := c.shimPids()
	if len(got) == 0 {
		t.Fatalf("no shim after the restart (before: %v)", shims)
	}
	for _, p := range got {
		if !slices.Contains(shims, p) {
			t.Fatalf("shims before %v, after %v: a new shim %d", shims, got, p)
		}
	}
	out, err := c.ctr("tasks", "exec", "--exec-id", "after", id, "echo", "still-here")
	if err != nil || strings.TrimSpace(out) != "still-here" {
		t.Fatalf("exec after restart: %v: %q (shims now %v)\ncontainerd log:\n%s", err, out, c.shimPids(), c.tail())
	}
	if out, err := c.ctr("tasks", "kill", "-s", "SIGKILL", id); err != nil {
		t.Fatalf("kill: %v: %s", err, out)
	}
	c.waitStatus(t, id, "STOPPED")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCtrShimKilled: the shim dies under a running container. containerd
// runs the shim's delete command, which (with no record of a clean delete
// in the bundle) kills the container's processes and removes its state,
// cgroup and rootfs mount and the dead shim's socket; the task goes. The
// clean-up check after the test catches anything left.
func TestCtrShimKilled(t *testing.T) {
	c := setup(t)
	const id = "fre-shim-killed"
	t.Cleanup(func() {
		c.removeTask(id)
		// ctr run -d leaves its stdio fifos for the task delete of a
		// client; containerd removed this task itself.
		fifos, _ := filepath.Glob(filepath.Join("/run/containerd/fifo", "*", id+"-std*"))
		for _, f := range fifos {
			os.RemoveAll(filepath.Dir(f))
		}
	})
	if out, err := c.run([]string{"-d"}, id, "sleep", "1000"); err != nil {
		t.Fatalf("ctr run -d: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")
	out, err := c.ctr("tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	initPid := 0
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == id {
			initPid, _ = strconv.Atoi(f[1])
		}
	}
	shims := c.shimPids()
	if initPid <= 0 || len(shims) != 1 {
		t.Fatalf("init pid %d, shims %v", initPid, shims)
	}
	if err := unix.Kill(shims[0], unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container's init to go", 20*time.Second, func() (bool, error) {
		return unix.Kill(initPid, 0) == unix.ESRCH, nil
	})
	waitFor(t, "the runtime state to go", 20*time.Second, func() (bool, error) {
		_, err := os.Stat(filepath.Join(freRoot, id))
		return os.IsNotExist(err), nil
	})
	// containerd drops the task once the delete command has returned.
	waitFor(t, "containerd to drop the task", 20*time.Second, func() (bool, error) {
		st, err := c.taskStatus(id)
		return st == "", err
	})
	if !strings.Contains(c.tail(), "cleaning up dead shim") {
		t.Fatalf("containerd did not run the shim's delete command:\n%s", c.tail())
	}
}
