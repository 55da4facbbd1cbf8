package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/fre-runtime/fre/internal/testutil"
	freruntime "github.com/fre-runtime/fre/runtime"
)

// recorder is a Publisher that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []any
}

func (r *recorder) Publish(ctx context.Context, topic string, event events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) has(match func(any) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if match(e) {
			return true
		}
	}
	return false
}

// TestBadRequests sends Create requests the shim must refuse (a missing
// bundle, a rootfs mount that cannot be mounted): each gets a gRPC error
// with a clear code and message, nothing is left behind, and the same
// service then runs a container.
func TestBadRequests(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "state")
	cgParent := fmt.Sprintf("/fre-shim-unit-%d", os.Getpid())
	ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "fre-unit"))
	pub := &recorder{}
	svc, err := NewTaskService(ctx, pub, sd)
	if err != nil {
		t.Fatal(err)
	}
	s := svc.(*service)
	t.Cleanup(func() {
		sd.Shutdown()
		<-sd.Done()
		for _, rt := range s.runtimes {
			// The pool kept warm in the background: drain what it made.
			if p, err := freruntime.New(rt.Root, rt.Options); err == nil {
				if cp, err := p.CgroupPool(); err == nil {
					cp.Drain("")
					cp.Close()
				}
			}
		}
		removeCgroupTree(cgParent)
		// The namespace's parent, which the background refill pre-warms
		// once a create took from the pool.
		removeCgroupTree("/fre-unit")
	})
	opts, err := typeurl.MarshalAnyToProto(&runcoptions.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}

	// A bundle that does not exist.
	missing := filepath.Join(dir, "no-such-bundle")
	_, err = s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "fre-missing", Bundle: missing, Options: opts})
	wantGRPC(t, err, codes.InvalidArgument, missing)

	// A bundle whose rootfs mount cannot be mounted (overlay over a lower
	// directory that is not there).
	bundle := testutil.BusyboxBundle(t, filepath.Join(dir, "bad"), "true")
	os.RemoveAll(filepath.Join(bundle, "rootfs"))
	lower := filepath.Join(dir, "no-such-lower")
	_, err = s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "fre-badmount", Bundle: bundle, Options: opts,
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + lower}}}})
	wantGRPC(t, err, codes.InvalidArgument, "mount rootfs of fre-badmount")
	if m := mountsBelow(bundle); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", bundle, m)
	}
	for _, id := range []string{"fre-missing", "fre-badmount"} {
		if _, err := os.Stat(filepath.Join(root, "fre-unit", id)); !os.IsNotExist(err) {
			t.Errorf("runtime state of %s left: %v", id, err)
		}
		if _, err := s.State(ctx, &taskAPI.StateRequest{ID: id}); status.Code(errgrpc.ToGRPC(err)) != codes.NotFound {
			t.Errorf("State(%s) after a failed Create: %v, want NotFound", id, err)
		}
	}

	// A spec mount the init cannot make (a file system type the kernel
	// does not know). Create fails, as runc's create does, with an async
	// create (the default) too: the error names the mount, and nothing is
	// left.
	badfs := testutil.BusyboxBundle(t, filepath.Join(dir, "badfs"), "true")
	testutil.MutateSpec(t, badfs, func(sp *specs.Spec) {
		sp.Linux.CgroupsPath = cgParent + "/fre-badfs"
		sp.Mounts = append(sp.Mounts, specs.Mount{Destination: "/badfs", Type: "no-such-fs", Source: "none"})
		if sp.Annotations == nil {
			sp.Annotations = map[string]string{}
		}
		sp.Annotations[freruntime.AnnotationRootfs] = freruntime.RootfsPlain
	})
	syncOpts, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(`{"root":"` + root + `","sync_create":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		opts *anypb.Any
	}{{"fre-badfs-async", opts}, {"fre-badfs-sync", syncOpts}} {
		_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: c.id, Bundle: badfs, Options: c.opts})
		wantGRPC(t, err, codes.Unknown, "/badfs")
		if _, err := os.Stat(filepath.Join(root, "fre-unit", c.id)); !os.IsNotExist(err) {
			t.Errorf("runtime state of %s left: %v", c.id, err)
		}
		// The cgroup (claimed after clone when async) went back to the pool.
		if _, err := os.Stat("/sys/fs/cgroup/memory" + cgParent + "/fre-badfs"); !os.IsNotExist(err) {
			t.Errorf("cgroup of %s left: %v", c.id, err)
		}
		if _, err := s.State(ctx, &taskAPI.StateRequest{ID: c.id}); status.Code(errgrpc.ToGRPC(err)) != codes.NotFound {
			t.Errorf("State(%s) after Delete: %v, want NotFound", c.id, err)
		}
	}
	if m := mountsBelow(badfs); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", badfs, m)
	}

	// An overlay whose directories are there but whose options overlayfs
	// refuses: the init mounts it (async create), and Create reports it.
	ovl := testutil.BusyboxBundle(t, filepath.Join(dir, "badopt"), "true")
	os.RemoveAll(filepath.Join(ovl, "rootfs"))
	var dirs []string
	for _, d := range []string{"lower", "upper", "work"} {
		p := filepath.Join(dir, "badopt-"+d)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, p)
	}
	const optID = "fre-badopt"
	_, err = s.Create(ctx, &taskAPI.CreateTaskRequest{ID: optID, Bundle: ovl, Options: opts,
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + dirs[0], "upperdir=" + dirs[1], "workdir=" + dirs[2], "no-such-option=1"}}}})
	wantGRPC(t, err, codes.Unknown, "mount rootfs")
	if _, err := s.State(ctx, &taskAPI.StateRequest{ID: optID}); status.Code(errgrpc.ToGRPC(err)) != codes.NotFound {
		t.Errorf("State(%s) after a failed Create: %v, want NotFound", optID, err)
	}
	if _, err := os.Stat(filepath.Join(root, "fre-unit", optID)); !os.IsNotExist(err) {
		t.Errorf("runtime state of %s left: %v", optID, err)
	}
	if m := mountsBelow(ovl); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", ovl, m)
	}

	// The service still serves: a container runs to its exit.
	good := testutil.BusyboxBundle(t, filepath.Join(dir, "good"), "sh", "-c", "exit 7")
	testutil.MutateSpec(t, good, func(sp *specs.Spec) {
		sp.Linux.CgroupsPath = cgParent + "/fre-good"
		if sp.Annotations == nil {
			sp.Annotations = map[string]string{}
		}
		sp.Annotations[freruntime.AnnotationRootfs] = freruntime.RootfsPlain
	})
	const id = "fre-good"
	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: good, Options: opts}); err != nil {
		t.Fatalf("Create after the bad requests: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			s.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: 9})
			s.Delete(ctx, &taskAPI.DeleteRequest{ID: id})
		}
	})
	if _, err := s.Start(ctx, &taskAPI.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	w, err := s.Wait(wctx, &taskAPI.WaitRequest{ID: id})
	if err != nil || w.ExitStatus != 7 {
		t.Fatalf("Wait: %v %v, want exit 7", err, w)
	}
	if _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true
	// The forwarder publishes asynchronously: poll for the exit event.
	exited := func(e any) bool {
		x, ok := e.(*eventstypes.TaskExit)
		return ok && x.ContainerID == id && x.ExitStatus == 7
	}
	for deadline := time.Now().Add(5 * time.Second); !pub.has(exited); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no TaskExit with status 7 for %s within 5 s", id)
		}
	}
}

// wantGRPC checks err is a gRPC status with code and a message naming what.
func wantGRPC(t *testing.T, err error, code codes.Code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s naming %q", code, what)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%v (%T) is not a gRPC status", err, err)
	}
	if st.Code() != code || !strings.Contains(st.Message(), what) {
		t.Fatalf("error %s %q, want %s naming %q", st.Code(), st.Message(), code, what)
	}
	t.Logf("%s: %s", st.Code(), st.Message())
}

func mountsBelow(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// removeCgroupTree removes the test's cgroup parent in every hierarchy.
func removeCgroupTree(parent string) {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	roots := []string{"/sys/fs/cgroup"}
	for _, e := range ents {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
	}
	for _, r := range roots {
		d := filepath.Join(r, parent)
		subs, _ := os.ReadDir(d)
		for _, s := range subs {
			if s.IsDir() {
				os.Remove(filepath.Join(d, s.Name()))
			}
		}
		os.Remove(d)
	}
}
