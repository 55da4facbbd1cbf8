package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/shim/task"
)

// faultsNS is the containerd namespace of the fault tests' containerd:
// its runtime state (/run/containerd/fre/fre-faults) and cgroups
// (/fre-faults) are its own.
const faultsNS = "fre-faults"

// faultStep is one fault: the shim's failpoint point/action/n (see
// task.Failpoint). A block-* action is containerd's kill -9 while the shim
// waits there.
type faultStep struct {
	point, action string
	n             int
	// group: two containers in one shim (run.fre.group); the fault is in
	// the second one's life, the first is running.
	group bool
}

func (s faultStep) String() string {
	name := fmt.Sprintf("%s-%d-%s", s.point, s.n, s.action)
	if s.group {
		name = "group-" + name
	}
	return name
}

// containerdKill: containerd is the one killed (the shim waits in its
// failpoint meanwhile).
func (s faultStep) containerdKill() bool { return strings.HasPrefix(s.action, "block-") }

// faultSteps: every RPC of a container's life (the second Start is the
// exec's, the first Delete the exec's), kill -9 of the shim before its
// handler and after it (before containerd has the reply); then kill -9 of
// containerd while the shim is in its start command, creating, starting
// and deleting.
func faultSteps() []faultStep {
	var steps []faultStep
	rpcs := []struct {
		point string
		n     int
	}{{"Create", 1}, {"Wait", 1}, {"Start", 1}, {"State", 1}, {"Pids", 1}, {"Update", 1},
		{"Pause", 1}, {"Resume", 1}, {"Exec", 1}, {"Start", 2}, {"Delete", 1}, {"Kill", 1},
		{"Delete", 2}, {"Shutdown", 1}}
	for _, r := range rpcs {
		for _, a := range []string{"kill-before", "kill-after"} {
			steps = append(steps, faultStep{point: r.point, action: a, n: r.n})
		}
	}
	steps = append(steps,
		faultStep{point: "Create", action: "kill-after", n: 2, group: true},
		faultStep{point: "Kill", action: "kill-before", n: 1, group: true},
		faultStep{point: "bootstrap", action: "block-before", n: 1},
		faultStep{point: "bootstrap", action: "block-after", n: 1},
		faultStep{point: "Create", action: "block-before", n: 1},
		faultStep{point: "Create", action: "block-after", n: 1},
		faultStep{point: "Start", action: "block-after", n: 1},
		faultStep{point: "Delete", action: "block-before", n: 2},
	)
	return steps
}

// TestShimFaults kills the shim (kill -9) at each RPC of a container's
// life, and containerd while the shim starts, creates, starts and
// deletes; then containerd restarts and the client deletes what it still
// knows. Nothing may be left: no shim, container process, runtime state,
// cgroup, mount, bundle or socket. The log's "fault:" lines are the
// README's table.
func TestShimFaults(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if os.Getenv("FRE_PREBUILT_DIR") != "" {
		t.Skip("the shim with failpoints is built on the host only")
	}
	bd := binDir()
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := os.Stat(filepath.Join(bd, b)); err != nil {
			skipOrFail(t, "%s not found in %s (make containerd)", b, bd)
		}
	}
	fpDir, err := os.MkdirTemp("/tmp", "fre-failpoint-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(fpDir)
	fp := filepath.Join(fpDir, "point")
	socketsBefore := dirEntries(shimSocketDir)
	c, err := newContainerdWith(t, bd, ctdOptions{shimFlags: []string{"-tags", "failpoints"}, env: []string{task.FailpointEnv + "=" + fp}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		leaks := c.teardown()
		leaks = append(leaks, testutil.RemoveCgroupTree(faultsNS)...)
		os.RemoveAll(filepath.Join(filepath.Dir(freRoot), faultsNS))
		os.RemoveAll(c.dir)
		for p := range dirEntries(shimSocketDir) {
			if !socketsBefore[p] {
				leaks = append(leaks, "left "+p)
				os.RemoveAll(p)
			}
		}
		if len(leaks) > 0 {
			t.Errorf("left behind: %s", strings.Join(leaks, "; "))
		}
	})
	tar := testutil.OCIImageLayout(t, c.dir, imageRef)
	if out, err := c.ctrNS(faultsNS, "images", "import", "--all-platforms", tar); err != nil {
		t.Fatalf("import image: %v: %s", err, out)
	}
	for i, st := range faultSteps() {
		t.Run(st.String(), func(t *testing.T) {
			f := &faultRun{c: c, fp: fp, sockets: socketsBefore}
			outcome := f.run(t, st, fmt.Sprintf("fault-%d", i))
			t.Logf("fault: %-28s %s", st, outcome)
		})
		if c.cmd == nil {
			t.Fatal("containerd is not running")
		}
	}
}

// faultRun is one fault step's containers: their IDs and init pids.
type faultRun struct {
	c       *containerd
	fp      string
	sockets map[string]bool

	mu   sync.Mutex
	ids  []string
	pids []int
}

func (f *faultRun) addPid(pid int) {
	f.mu.Lock()
	f.pids = append(f.pids, pid)
	f.mu.Unlock()
}

func (f *faultRun) client(t *testing.T) (*client.Client, context.Context, context.CancelFunc) {
	t.Helper()
	cl, err := client.New(f.c.sock, client.WithDefaultNamespace(faultsNS), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("containerd client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	return cl, ctx, cancel
}

// run arms st, drives the containers' lives into it, restarts containerd,
// deletes what the client still has, and returns the outcome: "cleaned",
// or fails the test with what was left.
func (f *faultRun) run(t *testing.T, st faultStep, id string) string {
	for _, p := range []string{f.fp, f.fp + ".fired", f.fp + ".blocked"} {
		os.Remove(p)
	}
	if err := os.WriteFile(f.fp, fmt.Appendf(nil, "%s %s %d", st.point, st.action, st.n), 0o644); err != nil {
		t.Fatal(err)
	}
	f.ids = []string{id}
	if st.group {
		f.ids = []string{id + "-a", id}
	}
	cl, ctx, cancel := f.client(t)
	done := make(chan error, 1)
	go func() { done <- f.lifecycle(ctx, cl, st.group) }()
	var lifeErr error
	if st.containerdKill() {
		blocked := f.fp + ".blocked"
		select {
		case lifeErr = <-done:
			t.Fatalf("the life ended (%v) without reaching %s", lifeErr, st)
		case <-waitFile(blocked, time.Minute):
		}
		f.c.kill()
		os.Remove(f.fp)
		os.Remove(blocked) // the shim goes on, its reply to a dead containerd
		lifeErr = <-done
	} else {
		select {
		case lifeErr = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the life did not end in 2m; %s", f.c.stacks())
		}
		os.Remove(f.fp)
		if _, err := os.Stat(f.fp + ".fired"); err != nil {
			t.Fatalf("%s never fired (the life ended with %v)", st, lifeErr)
		}
		f.c.stop()
	}
	cancel()
	cl.Close()
	if err := f.c.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("life: %v", lifeErr)
	// What the client still knows, it deletes, as a user would.
	cl, ctx, cancel = f.client(t)
	defer cancel()
	defer cl.Close()
	for _, id := range f.ids {
		ctr, err := cl.LoadContainer(ctx, id)
		if err != nil {
			continue
		}
		if tk, err := ctr.Task(ctx, nil); err == nil {
			if _, err := tk.Delete(ctx, client.WithProcessKill); err != nil {
				t.Errorf("delete task %s: %v", id, err)
			}
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container %s: %v", id, err)
		}
	}
	// The next container on the host, whose shim sweeps the sockets of
	// shims killed where containerd had nothing left to clean up with.
	next := f.ids[len(f.ids)-1] + "-next"
	f.ids = append(f.ids, next)
	if err := f.nextContainer(ctx, cl, next); err != nil {
		t.Errorf("the next container: %v", err)
	}
	if left := f.leftovers(30 * time.Second); len(left) > 0 {
		var reg []string
		ents, _ := os.ReadDir(filepath.Join(f.c.dir, "shims"))
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(f.c.dir, "shims", e.Name()))
			reg = append(reg, e.Name()+": "+string(b))
		}
		os.Setenv(task.ShimRegistryEnv, filepath.Join(f.c.dir, "shims"))
		t.Logf("a sweep now removes %v", task.SweepDeadShims())
		os.Unsetenv(task.ShimRegistryEnv)
		t.Fatalf("left: %s\nshim registry: %s\ncontainerd log:\n%s", strings.Join(left, "; "), strings.Join(reg, "\n"), f.c.tail())
	}
	return "cleaned"
}

// lifecycle is a container's whole life through the client, every task
// RPC once (the first error ends it); with group, a first container of the
// group runs meanwhile and goes after.
func (f *faultRun) lifecycle(ctx context.Context, cl *client.Client, group bool) error {
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		return err
	}
	newCtr := func(id string) (client.Container, error) {
		opts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")}
		if group {
			opts = append(opts, oci.WithAnnotations(map[string]string{task.AnnotationGroup: f.ids[len(f.ids)-1]}))
		}
		return cl.NewContainer(ctx, id, client.WithNewSnapshot(id, img), client.WithNewSpec(opts...),
			client.WithRuntime(runtimeName, nil))
	}
	if group {
		ctr, err := newCtr(f.ids[0])
		if err != nil {
			return err
		}
		tk, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			return err
		}
		f.addPid(int(tk.Pid()))
		if err := tk.Start(ctx); err != nil {
			return err
		}
		defer func() {
			tk.Kill(ctx, unix.SIGKILL)
			tk.Delete(ctx, client.WithProcessKill)
			ctr.Delete(ctx, client.WithSnapshotCleanup)
		}()
	}
	id := f.ids[len(f.ids)-1]
	ctr, err := newCtr(id)
	if err != nil {
		return err
	}
	tk, err := ctr.NewTask(ctx, cio.NullIO) // Create
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f.addPid(int(tk.Pid()))
	statusC, err := tk.Wait(ctx) // Wait
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if err := tk.Start(ctx); err != nil { // Start 1
		return fmt.Errorf("start: %w", err)
	}
	if _, err := tk.Status(ctx); err != nil { // State
		return fmt.Errorf("state: %w", err)
	}
	if _, err := tk.Pids(ctx); err != nil { // Pids
		return fmt.Errorf("pids: %w", err)
	}
	limit := int64(64 << 20)
	if err := tk.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := tk.Pause(ctx); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	if err := tk.Resume(ctx); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return err
	}
	pspec := *spec.Process
	pspec.Args = []string{"true"}
	p, err := tk.Exec(ctx, "e1", &pspec, cio.NullIO) // Exec
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	pc, err := p.Wait(ctx)
	if err != nil {
		return fmt.Errorf("exec wait: %w", err)
	}
	if err := p.Start(ctx); err != nil { // Start 2
		return fmt.Errorf("exec start: %w", err)
	}
	select {
	case <-pc:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := p.Delete(ctx); err != nil { // Delete 1
		return fmt.Errorf("exec delete: %w", err)
	}
	if err := tk.Kill(ctx, unix.SIGKILL); err != nil { // Kill
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-statusC:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := tk.Delete(ctx); err != nil { // Delete 2, then Shutdown
		return fmt.Errorf("delete: %w", err)
	}
	return ctr.Delete(ctx, client.WithSnapshotCleanup)
}

// nextContainer runs id's life: create, start, kill, delete.
func (f *faultRun) nextContainer(ctx context.Context, cl *client.Client, id string) error {
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		return err
	}
	ctr, err := cl.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")), client.WithRuntime(runtimeName, nil))
	if err != nil {
		return err
	}
	defer ctr.Delete(ctx, client.WithSnapshotCleanup)
	tk, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	f.addPid(int(tk.Pid()))
	defer tk.Delete(ctx, client.WithProcessKill)
	statusC, err := tk.Wait(ctx)
	if err != nil {
		return err
	}
	if err := tk.Start(ctx); err != nil {
		return err
	}
	if err := tk.Kill(ctx, unix.SIGKILL); err != nil {
		return err
	}
	select {
	case <-statusC:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leftovers polls (until timeout) for the step's traces to be gone and
// returns those that stay: shims, init processes, runtime state, cgroups,
// containerd's bundles, mounts below containerd's directory, sockets.
func (f *faultRun) leftovers(timeout time.Duration) []string {
	var left []string
	check := func() []string {
		var l []string
		if p := f.c.shimPids(); len(p) > 0 {
			l = append(l, fmt.Sprintf("shims %v", p))
		}
		f.mu.Lock()
		pids := f.pids
		f.mu.Unlock()
		for _, pid := range pids {
			if pid > 0 && alive(pid) {
				l = append(l, fmt.Sprintf("process %d", pid))
			}
		}
		for _, id := range f.ids {
			for _, p := range []string{
				filepath.Join(filepath.Dir(freRoot), faultsNS, id),
				filepath.Join(f.c.dir, "state", "io.containerd.runtime.v2.task", faultsNS, id),
			} {
				if _, err := os.Stat(p); err == nil {
					l = append(l, p)
				}
			}
			for _, h := range cgroupRoots() {
				if p := filepath.Join(h, faultsNS, id); exists(p) {
					l = append(l, p)
				}
			}
		}
		l = append(l, mountsUnder(f.c.dir)...)
		for p := range dirEntries(shimSocketDir) {
			if !f.sockets[p] {
				l = append(l, p)
			}
		}
		return l
	}
	pollFor(timeout, func() bool { left = check(); return len(left) == 0 })
	return left
}

// kill is containerd's kill -9.
func (c *containerd) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.cmd = nil
	c.log.Close()
}

// waitFile is closed when path exists (or after timeout).
func waitFile(path string, timeout time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		pollFor(timeout, func() bool { return exists(path) })
		close(ch)
	}()
	return ch
}

// alive: pid is a process that is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// cgroupRoots are the cgroup hierarchies' mount points (v2's too).
func cgroupRoots() []string {
	roots := []string{"/sys/fs/cgroup"}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		if e.IsDir() {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return roots
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) []string {
	fh, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer fh.Close()
	var mps []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mps = append(mps, "mount "+fields[4])
		}
	}
	return mps
}

// dirEntries are the paths in dir.
func dirEntries(dir string) map[string]bool {
	m := map[string]bool{}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return m
	}
	for _, e := range ents {
		m[filepath.Join(dir, e.Name())] = true
	}
	return m
}
