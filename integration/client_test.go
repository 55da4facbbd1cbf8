package integration

import (
	"context"
	"fmt"
	"os"

	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/fre-runtime/fre/cgroup"
	freruntime "github.com/fre-runtime/fre/runtime"
)

// These tests drive the fre shim through containerd's Go client, as a
// program using containerd does (and as containerd's own client tests do):
// each checks a behaviour the runc shim has.

// clientTimeout bounds every wait of these tests: a hang fails the test
// instead of the whole run.
const clientTimeout = 20 * time.Second

// goClient connects to the shared containerd.
func (c *containerd) goClient(t *testing.T) (*client.Client, context.Context) {
	t.Helper()
	cl, err := client.New(c.sock, client.WithDefaultNamespace(namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("containerd client: %v", err)
	}
	t.Cleanup(func() {
		cl.Close()
		// Run after the containers' clean-ups (registered later): no
		// shim outlives its containers, after a failed create too.
		if !pollFor(clientTimeout, func() bool { return len(c.shimPids()) == 0 }) {
			t.Errorf("fre shims %v still running %v after the test's clean-up", c.shimPids(), clientTimeout)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return cl, ctx
}

// newClientContainer makes a container of the test image with the fre
// runtime; the cleanup removes its task (killed), itself and its snapshot.
func newClientContainer(t *testing.T, cl *client.Client, ctx context.Context, id string, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	return newClientContainerWith(t, cl, ctx, id, nil, opts...)
}

// newClientContainerWith is newClientContainer with the runtime's options
// (runc's options type, as containerd's client tests pass them).
func newClientContainerWith(t *testing.T, cl *client.Client, ctx context.Context, id string, runtimeOpts any, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	ctr, err := cl.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, opts...)...),
		client.WithRuntime(runtimeName, runtimeOpts))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	removeAtCleanup(t, ctr)
	return ctr
}

// removeAtCleanup has the test's clean-up remove ctr: its task (killed),
// itself and its snapshot.
func removeAtCleanup(t *testing.T, ctr client.Container) {
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if tk, err := ctr.Task(cctx, nil); err == nil {
			tk.Delete(cctx, client.WithProcessKill)
		}
		ctr.Delete(cctx, client.WithSnapshotCleanup)
	})
}

// newTask creates the container's task with creator, subscribes to its
// exit and, with start, starts it.
func newTask(t *testing.T, ctx context.Context, ctr client.Container, creator cio.Creator, start bool) (client.Task, <-chan client.ExitStatus) {
	t.Helper()
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		t.Fatal(err)
	}
	// Its fifos (under /run/containerd/fifo) go with the test: deleting
	// the task does not remove them, closing its IO does.
	t.Cleanup(func() {
		if io := task.IO(); io != nil {
			io.Cancel()
			io.Close()
		}
	})
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return task, statusC
}

// waitIO waits (bounded) for a process's IO to be complete.
func waitIO(t *testing.T, what string, io cio.IO) {
	t.Helper()
	done := make(chan struct{})
	go func() { io.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(clientTimeout):
		io.Cancel()
		t.Fatalf("%s: the output was not closed %v after the process exited", what, clientTimeout)
	}
}

// waitStatus waits (bounded) for an exit status.
func waitExit(t *testing.T, what string, ch <-chan client.ExitStatus) uint32 {
	t.Helper()
	select {
	case st := <-ch:
		code, _, err := st.Result()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return code
	case <-time.After(clientTimeout):
		t.Fatalf("%s: no exit in %v", what, clientTimeout)
	}
	return 0
}

// TestClientTTYOutputCloses: with a terminal, once the init exits the
// shim closes the output it holds, so that the client's IO().Wait()
// returns (containerd's TestContainerPTY), and large output arrives whole.
func TestClientTTYOutputCloses(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	ctr := newClientContainer(t, cl, ctx, "fre-client-tty", oci.WithTTY,
		oci.WithProcessArgs("sh", "-c", `echo hello; seq -s " " 200000`))
	var out syncBuffer
	task, statusC := newTask(t, ctx, ctr, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal), true)
	if code := waitExit(t, "init", statusC); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	waitIO(t, "init with a terminal", task.IO())
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "hello") || !strings.HasSuffix(strings.TrimSpace(s), "199999 200000") {
		t.Fatalf("output incomplete (%d bytes), ends %q", len(s), tail(s, 40))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestClientKillCreatedTask: a signal that ends a process (SIGKILL, and
// SIGTERM, ctr's default) sent to a task created and never started kills
// its init (waiting in fre-dmz for start) and reports the exit.
func TestClientKillCreatedTask(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		ctr := newClientContainer(t, cl, ctx, "fre-client-kill-created-"+strings.ToLower(sig.String()[:4]), oci.WithProcessArgs("sleep", "1000"))
		task, statusC := newTask(t, ctx, ctr, cio.NullIO, false)
		if err := task.Kill(ctx, sig); err != nil {
			t.Fatalf("kill a created task with %v: %v", sig, err)
		}
		if code := waitExit(t, "created init after "+sig.String(), statusC); code != 128+uint32(sig) {
			t.Fatalf("%v: exit status %d, want %d", sig, code, 128+sig)
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Stopped {
			t.Fatalf("status %v (%v), want stopped", st.Status, err)
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientInitKilledFromOutside: an init SIGKILLed by someone else (not
// through containerd), or a container deleted under the shim with
// `fre-runc delete --force` (containerd's TestKillContainerDeletedByRunc),
// shows as stopped, promptly; a kill after that is NotFound.
func TestClientInitKilledFromOutside(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	for _, how := range []string{"kill", "fre-runc-delete"} {
		id := "fre-client-outside-" + how
		ctr := newClientContainer(t, cl, ctx, id, oci.WithProcessArgs("sleep", "1000"))
		task, statusC := newTask(t, ctx, ctr, cio.NullIO, true)
		if how == "kill" {
			if err := syscall.Kill(int(task.Pid()), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		} else if out, err := exec.Command(freRuncBin(t), "--root", freRoot, "delete", "--force", id).CombinedOutput(); err != nil {
			t.Fatalf("fre-runc delete --force: %v: %s", err, out)
		}
		if code := waitExit(t, "init stopped from outside ("+how+")", statusC); code != 137 {
			t.Fatalf("%s: exit status %d, want 137", how, code)
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Stopped {
			t.Fatalf("%s: status %v (%v), want stopped", how, st.Status, err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); !errdefs.IsNotFound(err) {
			t.Fatalf("%s: kill after the exit: %v, want NotFound", how, err)
		}
	}
}

// TestClientExecTTYStdin: an exec with a terminal and a stdin the client
// keeps open (kubectl exec -it) ends its output as soon as it exits;
// large output arrives whole (containerd's
// TestContainerExecLargeOutputWithTTY).
func TestClientExecTTYStdin(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	ctr := newClientContainer(t, cl, ctx, "fre-client-exec-tty", oci.WithProcessArgs("sleep", "1000"))
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, args := range [][]string{
		{"sh", "-c", "read line; echo got $line"},
		{"sh", "-c", `seq -s " " 1000000`},
	} {
		pspec := *spec.Process
		pspec.Args, pspec.Terminal = args, true
		stdinR, stdinW := io.Pipe()
		defer stdinW.Close() // open until the test ends, as a terminal's
		var out syncBuffer
		start := time.Now()
		proc, err := task.Exec(ctx, "e"+string(rune('0'+i)), &pspec, cio.NewCreator(cio.WithStreams(stdinR, &out, nil), cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		statusC, err := proc.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			stdinW.Write([]byte("ping\n"))
		}
		if code := waitExit(t, "exec", statusC); code != 0 {
			t.Fatalf("exec %v: exit status %d", args, code)
		}
		waitIO(t, "exec with a terminal and stdin", proc.IO())
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("exec %v: output closed after %v", args, d)
		}
		if _, err := proc.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		s := strings.TrimSpace(out.String())
		want := "got ping"
		if i == 1 {
			want = "999999 1000000"
		}
		if !strings.HasSuffix(s, want) {
			t.Fatalf("exec %v: output (%d bytes) ends %q, want %q", args, len(s), tail(s, 40), want)
		}
	}
}

// TestClientNoBinary: NewTask fails for a program that does not exist in
// the container's root (containerd's TestContainerNoBinaryExists).
func TestClientNoBinary(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	for _, prog := range []string{"notfound404", "/bin/notfound404"} {
		ctr := newClientContainer(t, cl, ctx, "fre-client-nobin"+strings.ReplaceAll(prog, "/", "-"), oci.WithProcessArgs(prog))
		task, err := ctr.NewTask(ctx, cio.NullIO)
		if err == nil {
			task.Delete(ctx, client.WithProcessKill)
			t.Fatalf("NewTask of %q succeeded, want an error", prog)
		}
		if !strings.Contains(err.Error(), "notfound404") {
			t.Errorf("NewTask of %q: %v: the error does not name the program", prog, err)
		}
	}
}

// TestClientRuntimeInfo: containerd's RuntimeInfo for the fre runtime
// carries the features document `fre-runc features` prints.
func TestClientRuntimeInfo(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	info, err := cl.RuntimeInfo(ctx, runtimeName, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := info.Features.(*features.Features)
	if !ok || f == nil {
		t.Fatalf("features %T %v, want *features.Features", info.Features, info.Features)
	}
	want := freruntime.Features()
	if f.OCIVersionMax != want.OCIVersionMax || len(f.Hooks) != len(want.Hooks) || f.Linux == nil ||
		f.Linux.Seccomp == nil || len(f.Linux.Seccomp.Actions) != len(want.Linux.Seccomp.Actions) {
		t.Fatalf("features %+v, want %+v", f, want)
	}
}

// TestClientDeviceRules: through the shim, containerd's default device
// rules hold (v1 devices controller, v2 BPF program): with CAP_MKNOD a
// node outside them cannot be opened, /dev/null's can.
func TestClientDeviceRules(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	probe := `mknod /tmp/kmsgX c 1 11; mknod /tmp/nullX c 1 3; ` +
		`( exec 3<>/tmp/kmsgX ) 2>/dev/null && echo kmsg-opened || echo kmsg-denied; ` +
		`( exec 3<>/tmp/nullX ) 2>/dev/null && echo null-opened || echo null-denied`
	ctr := newClientContainer(t, cl, ctx, "fre-client-devices", oci.WithAddedCapabilities([]string{"CAP_MKNOD"}),
		oci.WithMounts([]specs.Mount{{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"dev"}}}),
		oci.WithProcessArgs("sh", "-c", probe))
	var out syncBuffer
	task, statusC := newTask(t, ctx, ctr, cio.NewCreator(cio.WithStreams(nil, &out, &out)), true)
	waitExit(t, "device probe", statusC)
	waitIO(t, "device probe", task.IO())
	if s := out.String(); !strings.Contains(s, "kmsg-denied") || !strings.Contains(s, "null-opened") {
		t.Fatalf("want c 1:11 denied and c 1:3 allowed; got %q", s)
	}
}

// TestClientShimCgroup: runc's option ShimCgroup puts the fre shim into
// that cgroup, as the runc shim does.
func TestClientShimCgroup(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	// An earlier test's shim may still be on its way out: the count below
	// is of this test's shim alone.
	if !pollFor(clientTimeout, func() bool { return len(c.shimPids()) == 0 }) {
		t.Fatalf("shims %v of earlier tests still running", c.shimPids())
	}
	cgPath := "/" + namespace + "-shimcg"
	cg, err := cgroup.New(cgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !pollFor(clientTimeout, func() bool { return len(c.shimPids()) == 0 }) {
			t.Errorf("shim still running")
		}
		if err := cg.Destroy(); err != nil {
			t.Errorf("remove %s: %v", cgPath, err)
		}
	})
	ctr := newClientContainerWith(t, cl, ctx, "fre-client-shimcg", &runcoptions.Options{ShimCgroup: cgPath},
		oci.WithProcessArgs("sleep", "1000"))
	newTask(t, ctx, ctr, cio.NullIO, true)
	pids := c.shimPids()
	if len(pids) != 1 {
		t.Fatalf("fre shims %v, want one", pids)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pids[0]))
	if err != nil || !strings.Contains(string(b), ":"+cgPath+"\n") {
		t.Fatalf("shim %d's cgroups %q (%v), want %s", pids[0], b, err, cgPath)
	}
}

// TestClientUserNamespaces: containerd's TestUserNamespaces through the fre
// shim: a task in a user namespace (one range, or several with the host's
// root mapped to the container's low ids), on a remapped snapshot,
// writable or a read-only view, as uid 34, exits with its own status;
// a setuid bit of the image is still set in the container.
func TestClientUserNamespaces(t *testing.T) {
	c := setup(t)
	cl, ctx := c.goClient(t)
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		t.Fatal(err)
	}
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 65535}}
	oneG := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 65535}}
	multi := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 20}, {ContainerID: 20, HostID: 2000, Size: 65535}}
	exit7 := oci.WithProcessArgs("sh", "-c", "exit 7")
	setuid := oci.WithProcessArgs("sh", "-c", "[ -u /usr/bin/passwd ] && exit 7")
	for _, tc := range []struct {
		name           string
		cmd            oci.SpecOpts
		ro             bool
		uidmap, gidmap []specs.LinuxIDMapping
	}{
		{"WritableRootFS", exit7, false, one, oneG},
		{"ReadonlyRootFS", exit7, true, one, oneG},
		{"CheckSetUidBit", setuid, false, one, oneG},
		{"WritableRootFSMultipleMap", exit7, false, multi, multi},
		{"ReadonlyRootFSMultipleMap", exit7, true, multi, multi},
		{"CheckSetUidBitMultipleMap", setuid, false, multi, multi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "fre-userns-" + strings.ToLower(tc.name)
			var snap client.NewContainerOpts
			switch {
			case len(tc.uidmap) > 1 && tc.ro:
				snap = client.WithUserNSRemappedSnapshotView(id, img, tc.uidmap, tc.gidmap)
			case len(tc.uidmap) > 1:
				snap = client.WithUserNSRemappedSnapshot(id, img, tc.uidmap, tc.gidmap)
			case tc.ro:
				snap = client.WithRemappedSnapshotView(id, img, 1000, 2000)
			default:
				snap = client.WithRemappedSnapshot(id, img, 1000, 2000)
			}
			ctr, err := cl.NewContainer(ctx, id, snap,
				client.WithNewSpec(oci.WithImageConfig(img), tc.cmd, oci.WithUserID(34), oci.WithUserNamespace(tc.uidmap, tc.gidmap)),
				client.WithRuntime(runtimeName, nil))
			if err != nil {
				t.Fatal(err)
			}
			removeAtCleanup(t, ctr)
			task, statusC := newTask(t, ctx, ctr, cio.NullIO, true)
			if code := waitExit(t, tc.name, statusC); code != 7 {
				t.Errorf("exit status %d, want 7", code)
			}
			st, err := task.Delete(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.ExitCode() != 7 {
				t.Errorf("exit status from delete %d, want 7", st.ExitCode())
			}
		})
	}
}
