package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fre-runtime/fre/contract"
)

// Function is a deployed function's settings.
type Function struct {
	// Name is the function's name in the API (a plain name, as a tenant).
	Name string `json:"name"`
	// Image is the image in containerd.
	Image string `json:"image"`
	// Template is the template it was built from, if any.
	Template string `json:"template,omitempty"`
	// Tenant owns the instances' workDir, at WorkDir (default /work).
	Tenant  string `json:"tenant"`
	WorkDir string `json:"workDir,omitempty"`
	// Args replace the image's entrypoint and command; Env is added.
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Memory (bytes) and CPU (milli-CPUs) limit each instance (0: the
	// image's labels, else none).
	Memory int64 `json:"memory,omitempty"`
	CPU    int64 `json:"cpu,omitempty"`
	// Prepared is how many instances are kept made and not started
	// (their container, snapshot and channel), so that a cold start is
	// the start alone (default 1; -1: none).
	Prepared int `json:"prepared,omitempty"`
	// MaxInstances bounds the function's instances; Queue bounds the
	// requests waiting for one.
	MaxInstances int `json:"maxInstances,omitempty"`
	Queue        int `json:"queue,omitempty"`
	// KeepAlive: an idle instance is stopped after it. ReadyTimeout: a
	// new instance must listen within it. RequestTimeout bounds a
	// request's answer, QueueTimeout its wait for an instance.
	KeepAlive      Duration `json:"keepAlive,omitempty"`
	ReadyTimeout   Duration `json:"readyTimeout,omitempty"`
	RequestTimeout Duration `json:"requestTimeout,omitempty"`
	QueueTimeout   Duration `json:"queueTimeout,omitempty"`
}

// Defaults of a Function's zero settings.
const (
	DefaultMaxInstances   = 256
	DefaultQueue          = 1024
	DefaultKeepAlive      = 60 * time.Second
	DefaultReadyTimeout   = 10 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultQueueTimeout   = 30 * time.Second
	DefaultMaxBody        = 6 << 20
)

func (f *Function) setDefaults() {
	if f.WorkDir == "" {
		f.WorkDir = contract.DefaultWorkDir
	}
	if f.MaxInstances <= 0 {
		f.MaxInstances = DefaultMaxInstances
	}
	if f.Queue <= 0 {
		f.Queue = DefaultQueue
	}
	switch {
	case f.Prepared == 0:
		f.Prepared = 1
	case f.Prepared < 0:
		f.Prepared = -1
	}
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&f.KeepAlive, DefaultKeepAlive}, {&f.ReadyTimeout, DefaultReadyTimeout},
		{&f.RequestTimeout, DefaultRequestTimeout}, {&f.QueueTimeout, DefaultQueueTimeout}} {
		if d.v.D() <= 0 {
			*d.v = Duration(d.def)
		}
	}
}

// Validate checks what a deploy request may get wrong.
func (f *Function) Validate() error {
	if err := contract.ValidName(f.Name); err != nil {
		return fmt.Errorf("%w: function name %q: a plain name (lower-case letters, digits, '.', '_', '-')", ErrBadRequest, f.Name)
	}
	if err := contract.ValidName(f.Tenant); err != nil {
		return fmt.Errorf("%w: tenant %q: a plain name (lower-case letters, digits, '.', '_', '-'), never a path", ErrBadRequest, f.Tenant)
	}
	if f.Image == "" {
		return fmt.Errorf("%w: no image (or template)", ErrBadRequest)
	}
	if w := f.WorkDir; !filepath.IsAbs(w) || filepath.Clean(w) != w || w == "/" || w == contract.ChannelMount {
		return fmt.Errorf("%w: workDir %q: a clean absolute path other than / and %s", ErrBadRequest, w, contract.ChannelMount)
	}
	if f.Memory < 0 || f.CPU < 0 {
		return fmt.Errorf("%w: negative limits", ErrBadRequest)
	}
	return nil
}

// Errors the API maps to statuses.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("no such function")
	ErrExists     = errors.New("function exists")
	ErrBusy       = errors.New("all instances busy and the queue full")
	ErrQueueWait  = errors.New("no instance free in time")
	ErrNotReady   = errors.New("instance not ready in time")
	ErrCrashed    = errors.New("function exited")
	ErrProtocol   = errors.New("bad response from the function")
	ErrStopping   = errors.New("engine stopping")
)

// Config is an engine's settings.
type Config struct {
	// Name labels everything the engine makes (default "fre").
	Name string
	// StateDir holds the channels (default /run/fre/engine/<Name>).
	StateDir string
	// TenantRoot holds tenants' workDirs (default FRE's).
	TenantRoot string
	// MaxBody bounds a request's body (default 6 MiB).
	MaxBody int64
	// Log receives structured logs (default: JSON on stderr).
	Log *slog.Logger
	// Trace, when set, gets how long each new instance took to listen
	// after its start ("ready"); called from many goroutines at once.
	Trace func(step string, d time.Duration)
}

// Backend starts and stops instances: containerd (NewContainerd).
type Backend interface {
	// Prepare makes the function's image ready to run (pulled into
	// the snapshotter) and fills in its defaults from the image.
	Prepare(ctx context.Context, f *Function) error
	// Create makes an instance of f as id, with the two binds, ready to
	// start: its container (snapshot, spec), no process.
	Create(ctx context.Context, f *Function, id string, binds []Bind) (Created, error)
	// Cleanup removes every instance an earlier engine of this name left.
	Cleanup(ctx context.Context) (int, error)
	// Runtime names the backend's runtime (for logs and metrics).
	Runtime() string
	Close() error
}

// Bind is a read-write bind of a host directory into an instance.
type Bind struct{ Source, Destination string }

// Created is an instance made and not started.
type Created interface {
	// Start starts it; on error nothing of it is left.
	Start(ctx context.Context) (Task, error)
	// Remove removes it unstarted.
	Remove(ctx context.Context) error
}

// Task is a running instance.
type Task interface {
	// Exited is closed once the instance's process has exited; Status
	// is its exit status then.
	Exited() <-chan struct{}
	Status() int
	// Stop kills the instance and removes it (container, snapshot).
	Stop(ctx context.Context) error
}

// Engine is the function engine.
type Engine struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	http    http.Handler
	build   TemplateBuilder

	mu    sync.Mutex
	fns   map[string]*function
	seq   atomic.Uint64
	close chan struct{}
	wg    sync.WaitGroup // instances' watchers and stops
}

// New makes an engine on a backend and removes what an earlier one of its
// name left (instances, channels).
func New(ctx context.Context, cfg Config, b Backend) (*Engine, error) {
	if cfg.Name == "" {
		cfg.Name = "fre"
	}
	if err := contract.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("engine name %q: a plain name", cfg.Name)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join("/run/fre/engine", cfg.Name)
	}
	if cfg.TenantRoot == "" {
		cfg.TenantRoot = contract.TenantRoot("")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	e := &Engine{cfg: cfg, backend: b, log: cfg.Log, fns: map[string]*function{}, close: make(chan struct{})}
	n, err := b.Cleanup(ctx)
	if err != nil {
		return nil, fmt.Errorf("clean up after an earlier engine: %w", err)
	}
	// The channels are all of this engine's name: none is live now.
	chans := e.channelRoot()
	left, _ := os.ReadDir(chans)
	if err := os.RemoveAll(chans); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(chans, 0o700); err != nil {
		return nil, err
	}
	if n > 0 || len(left) > 0 {
		e.log.Info("cleaned up after an earlier engine", "instances", n, "channels", len(left))
	}
	e.http = e.routes()
	return e, nil
}

func (e *Engine) channelRoot() string { return filepath.Join(e.cfg.StateDir, "channels") }

// Deploy adds a function; its image is made ready first (and gives the
// tenant, workDir and limits the request leaves out).
func (e *Engine) Deploy(ctx context.Context, f Function) (*Function, error) {
	if err := contract.ValidName(f.Name); err != nil {
		return nil, fmt.Errorf("%w: function name %q: a plain name (lower-case letters, digits, '.', '_', '-')", ErrBadRequest, f.Name)
	}
	if f.Image == "" {
		return nil, fmt.Errorf("%w: no image (or template)", ErrBadRequest)
	}
	if f.Tenant != "" {
		if err := contract.ValidName(f.Tenant); err != nil {
			return nil, fmt.Errorf("%w: tenant %q: a plain name (lower-case letters, digits, '.', '_', '-'), never a path", ErrBadRequest, f.Tenant)
		}
	}
	e.mu.Lock()
	if _, ok := e.fns[f.Name]; ok {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, f.Name)
	}
	e.fns[f.Name] = nil // reserved while the image is prepared
	e.mu.Unlock()
	err := e.backend.Prepare(ctx, &f)
	if err == nil {
		f.setDefaults()
		err = f.Validate()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		delete(e.fns, f.Name)
		return nil, err
	}
	fn := newFunction(e, f)
	e.fns[f.Name] = fn
	fn.refill()
	e.log.Info("deployed", "function", f.Name, "image", f.Image, "tenant", f.Tenant, "runtime", e.backend.Runtime())
	return &f, nil
}

// get returns a deployed function.
func (e *Engine) get(name string) (*function, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn := e.fns[name]
	if fn == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return fn, nil
}

// Remove stops a function's instances and forgets it.
func (e *Engine) Remove(ctx context.Context, name string) error {
	e.mu.Lock()
	fn := e.fns[name]
	if fn == nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	delete(e.fns, name)
	e.mu.Unlock()
	fn.shutdown(ctx)
	e.log.Info("removed", "function", name)
	return nil
}

// Scale starts instances until the function has n (at most its
// MaxInstances); surplus idle ones are stopped.
func (e *Engine) Scale(ctx context.Context, name string, n int) (FunctionStatus, error) {
	fn, err := e.get(name)
	if err != nil {
		return FunctionStatus{}, err
	}
	if err := fn.scale(ctx, n); err != nil {
		return fn.status(), err
	}
	return fn.status(), nil
}

// FunctionStatus is a function and its instances.
type FunctionStatus struct {
	Function
	Instances int `json:"instances"`
	Idle      int `json:"idle"`
	Busy      int `json:"busy"`
	Starting  int `json:"starting"`
	Waiting   int `json:"waiting"`
}

// List lists the functions, by name.
func (e *Engine) List() []FunctionStatus {
	e.mu.Lock()
	var fns []*function
	for _, fn := range e.fns {
		if fn != nil {
			fns = append(fns, fn)
		}
	}
	e.mu.Unlock()
	out := make([]FunctionStatus, 0, len(fns))
	for _, fn := range fns {
		out = append(out, fn.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops every instance; the engine serves nothing afterwards.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	select {
	case <-e.close:
	default:
		close(e.close)
	}
	fns := e.fns
	e.fns = map[string]*function{}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, fn := range fns {
		if fn != nil {
			wg.Add(1)
			go func() { defer wg.Done(); fn.shutdown(ctx) }()
		}
	}
	wg.Wait()
	e.wg.Wait()
	return e.backend.Close()
}

// instanceID names a new instance: engine, function and a sequence.
func (e *Engine) instanceID(fn string) string {
	return e.cfg.Name + "-" + fn + "-" + strconv.FormatUint(e.seq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
}
