package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/fre-runtime/fre/cgroup"
)

// runcShim is containerd's own runc shim; with its BinaryName option set
// to fre-runc it drives fre-runc as it drives runc (issue 3's drop-in).
const runcShim = "io.containerd.runc.v2"

// freRuncBin is the fre-runc that make build put in bin/.
func freRuncBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FRE_BIN_DIR")
	if dir == "" {
		dir = "../bin"
	}
	p, err := filepath.Abs(filepath.Join(dir, "fre-runc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		skipOrFail(t, "fre-runc not built: %v (make build)", err)
	}
	return p
}

// dropinBinary returns an absolute path for the runc shim's BinaryName: a
// script that logs each command line go-runc runs (for the failure
// messages) and execs bin/fre-runc, so pid files and exit codes are
// fre-runc's own.
func dropinBinary(t *testing.T, c *containerd) (bin, cmdlog string) {
	t.Helper()
	fre := freRuncBin(t)
	dir := t.TempDir()
	cmdlog = filepath.Join(dir, "fre-runc.cmdlog")
	bin = filepath.Join(dir, "fre-runc-logged")
	script := fmt.Sprintf("#!/bin/sh\necho \"$(date +%%s.%%N) $*\" >> %q\nexec %q \"$@\"\n", cmdlog, fre)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, cmdlog
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestDropinRuncShim runs containerd's runc shim (io.containerd.runc.v2)
// with fre-runc as its runtime binary: ctr run --rm, a detached run, exec,
// ps, pause/resume, kill and rm.
func TestDropinRuncShim(t *testing.T) {
	c := setup(t)
	bin, cmdlog := dropinBinary(t, c)
	run := func(flags []string, id string, args ...string) (string, error) {
		a := append([]string{"run", "--runtime", runcShim, "--runc-binary", bin}, flags...)
		a = append(a, imageRef, id)
		return c.ctr(append(a, args...)...)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\ngo-runc's fre-runc command lines:\n%s\ncontainerd log:\n%s",
			append(args, readLog(cmdlog), c.tail())...)
	}

	out, err := run([]string{"--rm"}, "fre-dropin-echo", "echo", "hello")
	if err != nil || strings.TrimSpace(out) != "hello" {
		c.removeTask("fre-dropin-echo")
		fail("ctr run --rm: %v: %q", err, out)
	}
	if !strings.Contains(readLog(cmdlog), "create") {
		fail("the runc shim did not run fre-runc")
	}
	out, err = run([]string{"--rm"}, "fre-dropin-exit", "sh", "-c", "exit 3")
	if exitCode(err) != 3 {
		c.removeTask("fre-dropin-exit")
		fail("ctr run --rm exit 3: exit code %d (%v): %s", exitCode(err), err, out)
	}

	const id = "fre-dropin"
	t.Cleanup(func() { c.removeTask(id) })
	if out, err := run([]string{"-d"}, id, "sleep", "1000"); err != nil {
		fail("ctr run -d: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")

	out, err = c.ctr("tasks", "exec", "--exec-id", "e1", id, "echo", "from-exec")
	if err != nil || strings.TrimSpace(out) != "from-exec" {
		fail("exec: %v: %q", err, out)
	}
	out, err = c.ctr("tasks", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5")
	if exitCode(err) != 5 {
		fail("exec exit code %d (%v), want 5: %s", exitCode(err), err, out)
	}
	out, err = c.ctr("tasks", "ps", id)
	if err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) < 2 {
		fail("ps: %v: %q", err, out)
	}
	if out, err := c.ctr("tasks", "pause", id); err != nil {
		fail("pause: %v: %s", err, out)
	}
	c.waitStatus(t, id, "PAUSED")
	if out, err := c.ctr("tasks", "resume", id); err != nil {
		fail("resume: %v: %s", err, out)
	}
	c.waitStatus(t, id, "RUNNING")
	out, err = c.ctr("tasks", "exec", "--exec-id", "e3", id, "echo", "after-resume")
	if err != nil || strings.TrimSpace(out) != "after-resume" {
		fail("exec after resume: %v: %q", err, out)
	}
	out, err = c.ctr("tasks", "metrics", id)
	if err != nil || !strings.Contains(out, "memory") {
		fail("metrics: %v: %s", err, out)
	}
	// Update goes through `fre-runc update -r -` (ctr has no update).
	const limit = 96 << 20
	if err := c.updateMemory(id, limit); err != nil {
		fail("update: %v", err)
	}
	limitFile := filepath.Join("/sys/fs/cgroup/memory", namespace, id, "memory.limit_in_bytes")
	if cgroup.Mode() == cgroup.Unified {
		limitFile = filepath.Join("/sys/fs/cgroup", namespace, id, "memory.max")
	}
	b, err := os.ReadFile(limitFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(limit) {
		fail("memory limit after update: %v: %q, want %d", err, b, limit)
	}
	if out, err := c.ctr("tasks", "kill", "-s", "SIGKILL", id); err != nil {
		fail("kill: %v: %s", err, out)
	}
	c.waitStatus(t, id, "STOPPED")
	if out, err := c.ctr("tasks", "rm", id); err != nil {
		fail("task rm: %v: %s", err, out)
	}
	if out, err := c.ctr("containers", "rm", id); err != nil {
		fail("container rm: %v: %s", err, out)
	}
	// The runc shim keeps fre-runc's state under its own root.
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", namespace, id)); !os.IsNotExist(err) {
		fail("fre-runc state of %s left behind: %v", id, err)
	}
	t.Logf("go-runc ran:\n%s", readLog(cmdlog))
}

// updateMemory sets a task's memory limit through containerd's Tasks
// Update (what the Go client's task.Update sends).
func (c *containerd) updateMemory(id string, limit int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", namespace)
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := json.Marshal(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
	if err != nil {
		return err
	}
	// containerd's typeurl name for specs.LinuxResources (JSON-encoded).
	a := &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: res}
	_, err = tasks.NewTasksClient(conn).Update(ctx, &tasks.UpdateTaskRequest{ContainerID: id, Resources: a})
	return err
}
