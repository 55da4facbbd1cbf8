package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/shim/task"
)

// The load run: FRE_LOAD_CONTAINERS containers running at once through
// one grouped shim (the Go client), then as many through CRI pods of
// FRE_LOAD_PER_POD containers each (kubelet's calls); containerd is
// restarted while they run, and one in ten is SIGKILLed from outside while
// containerd is down. Every exit must be reported: those while containerd
// was down as the task's stopped state (exit 137) after the restart, the
// rest through Wait and an exit event. `make load` runs 1,000 of each and
// writes the figures to FRE_LOAD_RESULTS; plain `make test` a short form.

// loadWorkers is how many requests are in flight at once.
const loadWorkers = 4

type loadFigures struct {
	part                        string
	containers, shims           int
	start, restart, stop, clean time.Duration
	shimRSSKB                   int
	downExits, exits, events    int
}

func (f loadFigures) String() string {
	rss := ""
	if f.shimRSSKB > 0 {
		rss = fmt.Sprintf(", shim RSS %.1f MiB", float64(f.shimRSSKB)/1024)
	}
	events := fmt.Sprintf("%d exits and %d exit events", f.exits, f.events)
	if f.events < 0 {
		events = fmt.Sprintf("%d exits in CRI's status (from its exit events)", f.exits)
	}
	return fmt.Sprintf("%s: %d containers in %d shim(s)%s: all running in %s; containerd restarted in %s; "+
		"%d exits while it was down reported after; %d killed after, %s in %s; removed in %s",
		f.part, f.containers, f.shims, rss, f.start.Round(time.Millisecond), f.restart.Round(time.Millisecond),
		f.downExits, f.containers-f.downExits, events, f.stop.Round(time.Millisecond), f.clean.Round(time.Millisecond))
}

func writeLoadFigures(t *testing.T, f loadFigures) {
	t.Log(f)
	if p := os.Getenv("FRE_LOAD_RESULTS"); p != "" {
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		fmt.Fprintln(fh, f)
		fh.Close()
	}
}

// parallel runs fn(i) for i in [0, n) on loadWorkers goroutines; the
// first error stops the rest.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// TestLoadGroupedShim: the containers of one group, one shim.
func TestLoadGroupedShim(t *testing.T) {
	c := setup(t)
	n := soakCount("FRE_LOAD_CONTAINERS", 60)
	fig := loadFigures{part: "one grouped shim (Go client)", containers: n}
	cl, ctx := c.goClient(t)
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ids := make([]string, n)
	pids := make([]int, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("load-%04d", i)
	}
	// Whatever the test leaves, killed and removed (a fresh client: the
	// first one's connection spans a restart).
	t.Cleanup(func() {
		cl, err := client.New(c.sock, client.WithDefaultNamespace(namespace))
		if err != nil {
			return
		}
		defer cl.Close()
		parallel(n, func(i int) error {
			ctx := context.Background()
			if ctr, err := cl.LoadContainer(ctx, ids[i]); err == nil {
				if tk, err := ctr.Task(ctx, nil); err == nil {
					tk.Delete(ctx, client.WithProcessKill)
				}
				ctr.Delete(ctx, client.WithSnapshotCleanup)
			}
			return nil
		})
	})
	t0 := time.Now()
	err = parallel(n, func(i int) error {
		ctr, err := cl.NewContainer(ctx, ids[i], client.WithNewSnapshot(ids[i], img),
			client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "100000"),
				oci.WithAnnotations(map[string]string{task.AnnotationGroup: "fre-load"})),
			client.WithRuntime(runtimeName, nil))
		if err != nil {
			return err
		}
		tk, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			return err
		}
		pids[i] = int(tk.Pid())
		return tk.Start(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	fig.start = time.Since(t0)
	shims := c.shimPids()
	fig.shims = len(shims)
	if len(shims) != 1 {
		t.Fatalf("%d shims for one group: %v", len(shims), shims)
	}
	fig.shimRSSKB = rssKB(shims[0])

	t0 = time.Now()
	down := restartKillingSome(t, c, pids)
	fig.downExits = len(down)
	cl2, err := client.New(c.sock, client.WithDefaultNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	tasks := make([]client.Task, n)
	if err := parallel(n, func(i int) error {
		ctr, err := cl2.LoadContainer(ctx, ids[i])
		if err != nil {
			return err
		}
		tasks[i], err = ctr.Task(ctx, nil)
		return err
	}); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	fig.restart = time.Since(t0)
	if got := c.shimPids(); len(got) != 1 || got[0] != shims[0] {
		t.Fatalf("shims after the restart %v, before %v", got, shims)
	}

	// The exits while containerd was down: the tasks say so.
	for i := range down {
		i := i
		var st client.Status
		ok := pollFor(30*time.Second, func() bool {
			st, err = tasks[i].Status(ctx)
			return err == nil && st.Status == client.Stopped
		})
		if !ok || st.ExitStatus != 137 {
			t.Errorf("%s, killed while containerd was down: %v %+v, want stopped with 137", ids[i], err, st)
		}
	}

	// The rest: killed now, each exit through Wait and as an event.
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	evs, evErrs := cl2.Subscribe(evCtx, `topic=="/tasks/exit"`)
	exited := map[string]bool{}
	var evMu sync.Mutex
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for {
			select {
			case e := <-evs:
				v, err := typeurl.UnmarshalAny(e.Event)
				if err != nil {
					continue
				}
				if x, ok := v.(*eventstypes.TaskExit); ok && x.ID == x.ContainerID {
					evMu.Lock()
					exited[x.ContainerID] = true
					evMu.Unlock()
				}
			case <-evErrs:
				return
			case <-evCtx.Done():
				return
			}
		}
	}()
	t0 = time.Now()
	var exits atomic.Int64
	if err := parallel(n, func(i int) error {
		if down[i] {
			return nil
		}
		ch, err := tasks[i].Wait(ctx)
		if err != nil {
			return fmt.Errorf("%s: wait: %w", ids[i], err)
		}
		if err := tasks[i].Kill(ctx, unix.SIGKILL); err != nil {
			return fmt.Errorf("%s: kill: %w", ids[i], err)
		}
		select {
		case s := <-ch:
			if s.ExitCode() != 137 {
				return fmt.Errorf("%s: exit %d, want 137", ids[i], s.ExitCode())
			}
			exits.Add(1)
		case <-ctx.Done():
			return fmt.Errorf("%s: no exit", ids[i])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fig.exits = int(exits.Load())
	pollFor(30*time.Second, func() bool {
		evMu.Lock()
		defer evMu.Unlock()
		return len(exited) >= n-len(down)
	})
	fig.stop = time.Since(t0)
	evCancel()
	<-evDone
	for i, id := range ids {
		if !down[i] && !exited[id] {
			t.Errorf("no exit event for %s", id)
		}
	}
	fig.events = len(exited)

	t0 = time.Now()
	if err := parallel(n, func(i int) error {
		if _, err := tasks[i].Delete(ctx); err != nil {
			return fmt.Errorf("%s: delete task: %w", ids[i], err)
		}
		ctr, err := cl2.LoadContainer(ctx, ids[i])
		if err != nil {
			return err
		}
		return ctr.Delete(ctx, client.WithSnapshotCleanup)
	}); err != nil {
		t.Fatal(err)
	}
	if !pollFor(30*time.Second, func() bool { return len(c.shimPids()) == 0 }) {
		t.Errorf("the shim %v is still running", c.shimPids())
	}
	fig.clean = time.Since(t0)
	writeLoadFigures(t, fig)
}

// TestLoadCRIPods: the same through CRI, kubelet's way: pods of
// FRE_LOAD_PER_POD containers, one shim per pod.
func TestLoadCRIPods(t *testing.T) {
	c := setup(t)
	c.criImages(t)
	n := soakCount("FRE_LOAD_CONTAINERS", 60)
	perPod := soakCount("FRE_LOAD_PER_POD", 20)
	pods := (n + perPod - 1) / perPod
	fig := loadFigures{part: fmt.Sprintf("CRI, %d pods of %d", pods, perPod), containers: n}
	t.Cleanup(func() {
		if leaks := testutil.RemoveCgroupTree("fre-load"); len(leaks) > 0 {
			t.Errorf("left behind: %s", strings.Join(leaks, "; "))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dial := func() (*grpc.ClientConn, cri.RuntimeServiceClient) {
		conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return conn, cri.NewRuntimeServiceClient(conn)
	}
	conn, rs := dial()
	defer func() { conn.Close() }()
	logDir := filepath.Join(c.dir, "load-logs")
	podIDs := make([]string, pods)
	podCfgs := make([]*cri.PodSandboxConfig, pods)
	t.Cleanup(func() {
		conn, rs := dial()
		defer conn.Close()
		for _, id := range podIDs {
			if id != "" {
				rs.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: id})
				rs.RemovePodSandbox(context.Background(), &cri.RemovePodSandboxRequest{PodSandboxId: id})
			}
		}
	})
	t0 := time.Now()
	if err := parallel(pods, func(p int) error {
		name := fmt.Sprintf("load-%03d", p)
		podCfgs[p] = &cri.PodSandboxConfig{
			Metadata:     &cri.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "default"},
			Hostname:     name,
			LogDirectory: filepath.Join(logDir, name),
			Linux:        &cri.LinuxPodSandboxConfig{CgroupParent: "/fre-load/" + name},
		}
		if err := os.MkdirAll(podCfgs[p].LogDirectory, 0o755); err != nil {
			return err
		}
		r, err := rs.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfgs[p], RuntimeHandler: "fre"})
		if err != nil {
			return fmt.Errorf("RunPodSandbox %s: %w", name, err)
		}
		podIDs[p] = r.PodSandboxId
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	pids := make([]int, n)
	if err := parallel(n, func(i int) error {
		p := i / perPod
		r, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
			PodSandboxId: podIDs[p],
			Config: &cri.ContainerConfig{
				Metadata: &cri.ContainerMetadata{Name: fmt.Sprintf("c%04d", i)},
				Image:    &cri.ImageSpec{Image: imageRef},
				Command:  []string{"sleep", "100000"},
				LogPath:  fmt.Sprintf("c%04d.log", i),
				Linux:    &cri.LinuxContainerConfig{},
			},
			SandboxConfig: podCfgs[p],
		})
		if err != nil {
			return fmt.Errorf("CreateContainer %d: %w", i, err)
		}
		ids[i] = r.ContainerId
		if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: ids[i]}); err != nil {
			return fmt.Errorf("StartContainer %d: %w", i, err)
		}
		st, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: ids[i], Verbose: true})
		if err != nil {
			return err
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
			return fmt.Errorf("ContainerStatus %d: no pid (%v)", i, err)
		}
		pids[i] = info.Pid
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fig.start = time.Since(t0)
	fig.shims = len(c.shimPids())
	if fig.shims != pods {
		t.Errorf("%d shims for %d pods", fig.shims, pods)
	}

	t0 = time.Now()
	down := restartKillingSome(t, c, pids)
	fig.downExits = len(down)
	conn.Close()
	conn, rs = dial()
	var list *cri.ListContainersResponse
	if !pollFor(time.Minute, func() bool {
		var err error
		list, err = rs.ListContainers(ctx, &cri.ListContainersRequest{})
		return err == nil && len(list.Containers) >= n
	}) {
		t.Fatalf("after the restart CRI lists %d containers, want %d", len(list.GetContainers()), n)
	}
	fig.restart = time.Since(t0)

	status := func(i int) (*cri.ContainerStatus, error) {
		r, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: ids[i]})
		if err != nil {
			return nil, err
		}
		return r.Status, nil
	}
	for i := range down {
		var st *cri.ContainerStatus
		var err error
		ok := pollFor(30*time.Second, func() bool {
			st, err = status(i)
			return err == nil && st.State == cri.ContainerState_CONTAINER_EXITED
		})
		if !ok || st.ExitCode != 137 {
			t.Errorf("container %d, killed while containerd was down: %v %v, want exited with 137", i, err, st)
		}
	}
	t0 = time.Now()
	var exits atomic.Int64
	if err := parallel(n, func(i int) error {
		if down[i] {
			return nil
		}
		if st, err := status(i); err != nil || st.State != cri.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("container %d after the restart: %v %v, want running", i, err, st)
		}
		if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: ids[i], Timeout: 0}); err != nil {
			return fmt.Errorf("StopContainer %d: %w", i, err)
		}
		st, err := status(i)
		if err != nil || st.State != cri.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
			return fmt.Errorf("container %d after StopContainer: %v %v, want exited with 137", i, err, st)
		}
		exits.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fig.exits = int(exits.Load())
	fig.events = -1 // CRI's status comes from its exit events
	fig.stop = time.Since(t0)

	t0 = time.Now()
	if err := parallel(n, func(i int) error {
		_, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: ids[i]})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := parallel(pods, func(p int) error {
		if _, err := rs.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: podIDs[p]}); err != nil {
			return err
		}
		_, err := rs.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: podIDs[p]})
		if err == nil {
			podIDs[p] = ""
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !pollFor(time.Minute, func() bool { return len(c.shimPids()) == 0 }) {
		t.Errorf("shims %v still running", c.shimPids())
	}
	fig.clean = time.Since(t0)
	writeLoadFigures(t, fig)
}

// restartKillingSome stops containerd, SIGKILLs one init in ten (by
// index in pids) while it is down, and starts it again; it returns the
// indexes killed.
func restartKillingSome(t *testing.T, c *containerd, pids []int) map[int]bool {
	t.Helper()
	c.stop()
	down := map[int]bool{}
	for i := 0; i < len(pids); i += 10 {
		down[i] = true
		if err := unix.Kill(pids[i], unix.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pids[i], err)
		}
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return down
}

// rssKB is a process's VmRSS.
func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb int
			fmt.Sscan(f[1], &kb)
			return kb
		}
	}
	return 0
}
