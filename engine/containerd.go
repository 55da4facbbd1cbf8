package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/fret"
)

// Labels of what the engine makes, and of the images fnimage builds.
const (
	LabelEngine   = "dev.fre.engine"
	LabelFunction = "dev.fre.function"

	imageLabelTenant  = "dev.fre.tenant"
	imageLabelWorkDir = "dev.fre.workdir"
	imageLabelMemory  = "dev.fre.resources.memory"
	imageLabelCPU     = "dev.fre.resources.cpu"
)

// FRERuntime and RuncRuntime are containerd's runtime types of FRE's shim
// and runc's.
const (
	FRERuntime  = "io.containerd.fre.v1"
	RuncRuntime = "io.containerd.runc.v2"
)

// ContainerdConfig says which containerd, namespace and runtime.
type ContainerdConfig struct {
	Address   string // containerd's socket
	Namespace string // default "fre"
	// Runtime is the runtime type (default FRERuntime); RuntimeOptions
	// its options (containerd's WithRuntime).
	Runtime        string
	RuntimeOptions any
	// Snapshotter: containerd's default when empty.
	Snapshotter string
	// Group: a function's instances share one shim (the fre shim's
	// run.fre.group and the runc shim's io.containerd.runc.v2.group,
	// alike). Off by default: a shim of its own per instance measured as
	// fast (the task's create 13.8 ms against 17.3 grouped, fre shim;
	// 55.8 against 60.1, runc's), and a group whose last instance is
	// stopped has its shim exit while the next instance may be starting
	// in it (seen once under runc's shim after a scale to zero: a start
	// that never returned).
	Group bool
	// LogDir receives each instance's output (<id>.log), removed with
	// the instance; none when empty.
	LogDir string
	// Trace, when set, gets the duration of each step of Start
	// (container, task, start); called from many goroutines at once.
	Trace func(step string, d time.Duration)
}

var _ Backend = (*Containerd)(nil)

// Containerd runs instances as containerd containers.
type Containerd struct {
	cfg    ContainerdConfig
	client *client.Client
	engine string

	mu     sync.Mutex
	images map[string]client.Image
}

// NewContainerd connects to containerd for the engine named engine.
func NewContainerd(cfg ContainerdConfig, engine string) (*Containerd, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "fre"
	}
	if cfg.Runtime == "" {
		cfg.Runtime = FRERuntime
	}
	if engine == "" {
		engine = "fre"
	}
	cl, err := client.New(cfg.Address, client.WithDefaultNamespace(cfg.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", cfg.Address, err)
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o700); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return &Containerd{cfg: cfg, client: cl, engine: engine, images: map[string]client.Image{}}, nil
}

// Client is the containerd client (cmd/fre imports templates' images).
func (c *Containerd) Client() *client.Client { return c.client }

// Runtime is the runtime type.
func (c *Containerd) Runtime() string { return c.cfg.Runtime }

func (c *Containerd) Close() error { return c.client.Close() }

// Prepare unpacks the image (once) and takes the function's defaults from
// its labels (fnimage's: tenant, workDir, memory, cpu).
func (c *Containerd) Prepare(ctx context.Context, f *Function) error {
	img, err := c.client.GetImage(ctx, f.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: image %s is not in containerd (namespace %s)", ErrBadRequest, f.Image, c.cfg.Namespace)
		}
		return err
	}
	ok, err := img.IsUnpacked(ctx, c.cfg.Snapshotter)
	if err != nil {
		return err
	}
	if !ok {
		if err := img.Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return fmt.Errorf("unpack %s: %w", f.Image, err)
		}
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return err
	}
	l := spec.Config.Labels
	if f.Tenant == "" {
		f.Tenant = l[imageLabelTenant]
	}
	if w := l[imageLabelWorkDir]; w != "" && f.WorkDir == "" {
		f.WorkDir = w
	}
	if f.Memory == 0 && l[imageLabelMemory] != "" {
		if v, err := fret.ParseBytes(l[imageLabelMemory]); err == nil {
			f.Memory = v
		}
	}
	if f.CPU == 0 && l[imageLabelCPU] != "" {
		if v, err := fret.ParseCPU(l[imageLabelCPU]); err == nil {
			f.CPU = v
		}
	}
	c.mu.Lock()
	c.images[f.Image] = img
	c.mu.Unlock()
	return nil
}

func (c *Containerd) image(ctx context.Context, ref string) (client.Image, error) {
	c.mu.Lock()
	img := c.images[ref]
	c.mu.Unlock()
	if img != nil {
		return img, nil
	}
	return c.client.GetImage(ctx, ref)
}

// Create makes the instance's container: the image's config, the host's
// network namespace (the channel is its only way in), the binds, the
// limits; its snapshot. No task yet.
func (c *Containerd) Create(ctx context.Context, f *Function, id string, binds []Bind) (Created, error) {
	img, err := c.image(ctx, f.Image)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostResolvconf, oci.WithHostHostsFile}
	if len(f.Args) > 0 {
		opts = append(opts, oci.WithProcessArgs(f.Args...))
	}
	// The contract's environment: where the workDir is.
	opts = append(opts, oci.WithEnv(append([]string{"FRE_WORKDIR=" + f.WorkDir}, f.Env...)))
	var mounts []specs.Mount
	for _, b := range binds {
		mounts = append(mounts, specs.Mount{Type: "bind", Source: b.Source, Destination: b.Destination,
			Options: []string{"rbind", "rw", "nosuid", "nodev"}})
	}
	opts = append(opts, oci.WithMounts(mounts))
	if f.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(f.Memory)))
	}
	if f.CPU > 0 {
		const period = 100000
		opts = append(opts, oci.WithCPUCFS(f.CPU*period/1000, period))
	}
	step := c.stepper()
	ann := map[string]string{}
	if c.cfg.Group {
		g := c.engine + "-" + f.Name
		ann["run.fre.group"] = g
		ann["io.containerd.runc.v2.group"] = g
	}
	opts = append(opts, oci.WithAnnotations(ann))
	ctr, err := c.client.NewContainer(ctx, id,
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(opts...),
		client.WithRuntime(c.cfg.Runtime, c.cfg.RuntimeOptions),
		client.WithContainerLabels(map[string]string{LabelEngine: c.engine, LabelFunction: f.Name}))
	if err != nil {
		return nil, err
	}
	step("container")
	return &ctrCreated{c: c, ctr: ctr, id: id}, nil
}

// stepper times the steps of one Create or Start for Trace.
func (c *Containerd) stepper() func(string) {
	tr := c.cfg.Trace
	if tr == nil {
		return func(string) {}
	}
	last := time.Now()
	return func(name string) {
		now := time.Now()
		tr(name, now.Sub(last))
		last = now
	}
}

// ctrCreated is an instance's container without a task.
type ctrCreated struct {
	c   *Containerd
	ctr client.Container
	id  string
}

func (p *ctrCreated) Remove(ctx context.Context) error {
	return (&ctrTask{c: p.c, ctr: p.ctr}).remove(ctx)
}

// Start makes the container's task and starts it.
func (p *ctrCreated) Start(ctx context.Context) (Task, error) {
	c, ctr, id := p.c, p.ctr, p.id
	step := c.stepper()
	t := &ctrTask{c: c, ctr: ctr, exited: make(chan struct{})}
	creator := cio.NullIO
	if c.cfg.LogDir != "" {
		t.log = filepath.Join(c.cfg.LogDir, id+".log")
		creator = cio.LogFile(t.log)
	}
	task, err := ctr.NewTask(ctx, creator)
	if err != nil {
		t.remove(context.WithoutCancel(ctx))
		return nil, err
	}
	t.task = task
	step("task")
	wait, err := task.Wait(context.WithoutCancel(ctx))
	if err != nil {
		t.remove(context.WithoutCancel(ctx))
		return nil, err
	}
	go func() {
		st := <-wait
		code, _, _ := st.Result()
		t.status.Store(int64(code))
		close(t.exited)
	}()
	if err := task.Start(ctx); err != nil {
		t.remove(context.WithoutCancel(ctx))
		return nil, err
	}
	step("start")
	return t, nil
}

// Cleanup removes every container labelled with this engine's name.
func (c *Containerd) Cleanup(ctx context.Context) (int, error) {
	ctrs, err := c.client.Containers(ctx, `labels."`+LabelEngine+`"==`+strconv.Quote(c.engine))
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, ctr := range ctrs {
		t := &ctrTask{c: c, ctr: ctr}
		if err := t.remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if c.cfg.LogDir != "" {
		ents, _ := os.ReadDir(c.cfg.LogDir)
		for _, e := range ents {
			os.Remove(filepath.Join(c.cfg.LogDir, e.Name()))
		}
	}
	return len(ctrs), errors.Join(errs...)
}

// ctrTask is an instance's container and task.
type ctrTask struct {
	c      *Containerd
	ctr    client.Container
	task   client.Task
	log    string
	exited chan struct{}
	status atomic.Int64
}

func (t *ctrTask) Exited() <-chan struct{} { return t.exited }
func (t *ctrTask) Status() int             { return int(t.status.Load()) }

// Log is the path of the instance's output ("" without a log dir).
func (t *ctrTask) Log() string { return t.log }

func (t *ctrTask) Stop(ctx context.Context) error { return t.remove(ctx) }

// remove kills the task, deletes it, the container and its snapshot.
func (t *ctrTask) remove(ctx context.Context) error {
	task := t.task
	if task == nil {
		var err error
		if task, err = t.ctr.Task(ctx, nil); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	if task != nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			// Killed but not reaped yet: once more, after a SIGKILL.
			task.Kill(ctx, syscall.SIGKILL)
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete task %s: %w", t.ctr.ID(), err)
			}
		}
	}
	if err := t.ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", t.ctr.ID(), err)
	}
	if t.log != "" {
		os.Remove(t.log)
	}
	return nil
}
