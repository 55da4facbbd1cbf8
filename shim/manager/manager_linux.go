// Package manager is the shim binary's own life: the start command (spawn
// or reuse the shim daemon that serves a group of containers and hand its
// socket to containerd), the delete command (clean up after a shim that is
// gone) and info.
package manager

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/mount"
	_ "github.com/containerd/containerd/v2/core/runtime" // registers features.Features with typeurl
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/runtime"
	"github.com/fre-runtime/fre/shim/task"
)

// groupLabels are the annotations that put a container in an existing
// shim, in order: FRE's own group, then the Kubernetes pod.
var groupLabels = []string{
	task.AnnotationGroup,
	"io.kubernetes.cri.sandbox-id",
}

// NewShimManager returns the manager for runtime name (io.containerd.fre.v1).
func NewShimManager(name string) shim.Shim { return &manager{name: name} }

type manager struct{ name string }

func (m *manager) Name() string { return m.name }

func newCommand(ctx context.Context, id, grpcAddress string, debug bool) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", grpcAddress}
	if debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// groupOf reads the bundle's annotations (the start command runs in the
// bundle) for a group key; the container's own ID otherwise.
func groupOf(id string) (string, error) {
	f, err := os.Open("config.json")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.NewDecoder(f).Decode(&spec); err != nil {
		return "", fmt.Errorf("read config.json: %w", err)
	}
	for _, l := range groupLabels {
		if g, ok := spec.Annotations[l]; ok && g != "" {
			return g, nil
		}
	}
	return id, nil
}

type shimSocket struct {
	addr string
	l    *net.UnixListener
	f    *os.File
}

func (s *shimSocket) Close() {
	if s.l != nil {
		s.l.Close()
	}
	if s.f != nil {
		s.f.Close()
	}
	shim.RemoveSocket(s.addr)
}

func newShimSocket(ctx context.Context, dir, grpcAddress, group string, debug bool) (*shimSocket, error) {
	addr, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, group, debug)
	if err != nil {
		return nil, err
	}
	l, err := shim.NewSocket(addr)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
		// A shim of the group serves it already.
		if !debug && shim.CanConnect(addr) {
			return &shimSocket{addr: addr}, errdefs.ErrAlreadyExists
		}
		if err := shim.RemoveSocket(addr); err != nil {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = shim.NewSocket(addr); err != nil {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
	}
	s := &shimSocket{addr: addr, l: l}
	if s.f, err = l.File(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start is the start command: reuse the group's shim or start one.
func (m *manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	defer task.Failpoint("bootstrap")()
	res, sockets, err := startSockets(ctx, params)
	if err != nil || sockets == nil {
		return res, err
	}
	defer func() {
		if retErr != nil {
			for _, s := range sockets {
				s.Close()
			}
		}
	}()
	debug := params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG
	cmd, err := newCommand(ctx, params.GetInstanceID(), params.GetContainerdGrpcAddress(), debug)
	if err != nil {
		return nil, err
	}
	for _, s := range sockets {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.f)
	}
	// The daemon removes its socket when it ends; containerd writes the
	// bundle's address file only after start returns, too late for it.
	cmd.Env = append(cmd.Env, task.SocketEnv+"="+res.Address)
	goruntime.LockOSThread()
	err = cmd.Start()
	goruntime.UnlockOSThread()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			cmd.Process.Kill()
		}
	}()
	go cmd.Wait()
	if err := joinShimCgroup(params, cmd.Process.Pid); err != nil {
		return nil, err
	}
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("adjust shim OOM score: %w", err)
	}
	return res, nil
}

// startSockets is the start command's first half: the group's address, and
// the daemon's listening sockets (the debug one second) unless a shim of
// the group serves already (nil sockets).
func startSockets(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, _ []*shimSocket, retErr error) {
	res := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	debug := params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG
	grpcAddress := params.GetContainerdGrpcAddress()
	group, err := groupOf(id)
	if err != nil {
		return nil, nil, err
	}
	dir := params.GetSocketDir()
	if dir == "" {
		dir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	if debug {
		// For the delete command, should the shim die (removeDeadSockets).
		da, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, group, true)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(debugSocketFile, []byte(da), 0o600); err != nil {
			return nil, nil, err
		}
	}
	var sockets []*shimSocket
	defer func() {
		if retErr != nil {
			for _, s := range sockets {
				s.Close()
			}
		}
	}()
	s, err := newShimSocket(ctx, dir, grpcAddress, group, false)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			res.Address = s.addr
			return res, nil, nil
		}
		return nil, nil, err
	}
	sockets = append(sockets, s)
	if debug {
		ds, err := newShimSocket(ctx, dir, grpcAddress, group, true)
		if err != nil {
			return nil, nil, err
		}
		sockets = append(sockets, ds)
	}
	res.Address = s.addr
	return res, sockets, nil
}

// joinShimCgroup moves the daemon pid into the cgroup of runc's option
// ShimCgroup (an existing one), as the runc shim moves itself.
func joinShimCgroup(params *bootapi.BootstrapParams, pid int) error {
	var o runcoptions.Options
	found, err := params.FindExtension(&o)
	if err != nil {
		return fmt.Errorf("runtime options: %w", err)
	}
	if !found || o.GetShimCgroup() == "" {
		return nil
	}
	cg, err := cgroup.New(o.GetShimCgroup())
	if err == nil {
		err = cg.Add(pid)
	}
	if err != nil {
		return fmt.Errorf("join shim cgroup %s: %w", o.GetShimCgroup(), err)
	}
	return nil
}

// AdoptedStart is the daemon that fastpath.c forked after it did the
// start command's work and answered containerd itself (a container of no
// group): its sockets are at fds 3 and 4 already; stdin is the bootstrap
// parameters it read. It returns with os.Args made the daemon's.
func AdoptedStart(addr string, stdin []byte) {
	task.Failpoint("bootstrap")() // containerd has its answer already
	params := &bootapi.BootstrapParams{}
	if proto.Unmarshal(stdin, params) == nil {
		if err := joinShimCgroup(params, os.Getpid()); err != nil {
			log.L.WithError(err).Error("shim cgroup")
		}
	}
	os.Setenv(task.SocketEnv, addr)
	if n := len(os.Args); n > 1 && os.Args[n-1] == "start" {
		os.Args = os.Args[:n-1]
	}
}

// ForkedStart is the start command in the child that fastpath.c forked
// before Go started (cmd/containerd-shim-fre-v1): the work of the shim
// library's start command and of Start, but this process becomes the
// daemon instead of executing one. It answers through pipe ("O" and the
// bootstrap result, or "E" and an error; the parent prints it and exits as
// the start command) and returns with os.Args made the daemon's, its
// listening sockets at fds 3 and 4 and its stdio on /dev/null. When a shim
// of the group serves already, or on error, it exits.
func ForkedStart(pipe int, stdin []byte, stdinRead bool) {
	after := task.Failpoint("bootstrap")
	w := os.NewFile(uintptr(pipe), "start pipe")
	fail := func(err error) {
		w.Write([]byte("E" + filepath.Base(os.Args[0]) + ": " + err.Error()))
		task.FlushTimings()
		os.Exit(1)
	}
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var debug, version, info bool
	var ns, id, socket, debugSocket, bundle, address, publish string
	fs.BoolVar(&debug, "debug", false, "")
	fs.BoolVar(&version, "v", false, "")
	fs.BoolVar(&version, "version", false, "")
	fs.BoolVar(&info, "info", false, "")
	fs.StringVar(&ns, "namespace", "", "")
	fs.StringVar(&id, "id", "", "")
	fs.StringVar(&socket, "socket", "", "")
	fs.StringVar(&debugSocket, "debug-socket", "", "")
	fs.StringVar(&bundle, "bundle", "", "")
	fs.StringVar(&address, "address", "", "")
	fs.StringVar(&publish, "publish-binary", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() != 1 || fs.Arg(0) != "start" || version || info || ns == "" {
		fail(fmt.Errorf("forked start: unexpected arguments %q", os.Args[1:]))
	}
	// As the shim library's start command does (unless fastpath.c read
	// stdin already).
	input := stdin
	if !stdinRead {
		var err error
		if input, err = io.ReadAll(io.LimitReader(os.Stdin, 10<<20)); err != nil {
			fail(fmt.Errorf("failed to read stdin: %w", err))
		}
	}
	params := &bootapi.BootstrapParams{}
	var err error
	if len(input) == 0 {
		fail(errors.New("no bootstrap parameters on stdin"))
	}
	if err := proto.Unmarshal(input, params); err != nil {
		fail(fmt.Errorf("failed to unmarshal bootstrap parameters: %w", err))
	}
	if params.InstanceID != id || params.Namespace != ns {
		fail(errors.New("bootstrap parameters do not match command-line arguments"))
	}
	if dir := params.GetSocketDir(); dir != "" {
		// The socket-dir link the library's daemon reads for clean-up.
		if _, err := os.Lstat("s"); err == nil {
			os.Remove("s")
		}
		if err := os.Symlink(dir, "s"); err != nil {
			fail(fmt.Errorf("failed to write socket-dir: %w", err))
		}
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	res, sockets, err := startSockets(ctx, params)
	if err != nil {
		fail(err)
	}
	data, err := proto.Marshal(res)
	if err != nil {
		fail(err)
	}
	if sockets == nil {
		// A shim of the group serves it: this process is not needed.
		w.Write(append([]byte("O"), data...))
		task.FlushTimings()
		os.Exit(0)
	}
	for i, s := range sockets {
		if err := unix.Dup3(int(s.f.Fd()), 3+i, unix.O_CLOEXEC); err != nil {
			fail(fmt.Errorf("socket to fd %d: %w", 3+i, err))
		}
		s.f.Close()
		s.l.SetUnlinkOnClose(false) // the daemon serves that path now
		s.l.Close()
	}
	os.Setenv(task.SocketEnv, res.Address)
	if err := joinShimCgroup(params, os.Getpid()); err != nil {
		fail(err)
	}
	if err := shim.AdjustOOMScore(os.Getpid()); err != nil {
		fail(fmt.Errorf("adjust shim OOM score: %w", err))
	}
	// The daemon's own process group, and no hold on the start command's
	// stdio: containerd reads its stdout to the end.
	unix.Setpgid(0, 0)
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(null, fd, 0); err != nil {
			fail(err)
		}
	}
	unix.Close(null)
	after()
	if _, err := w.Write(append([]byte("O"), data...)); err != nil {
		os.Exit(1)
	}
	w.Close()
	os.Args = os.Args[:len(os.Args)-1] // drop "start": the daemon's command line
}

// Stop is the delete command: containerd runs it when the shim is gone
// (crashed, or containerd lost it). It removes what the container left:
// processes, cgroup, state, rootfs mounts, and reports the init's exit.
func (m *manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	opts, err := task.ReadBundleOptions(bundle)
	if err != nil {
		log.G(ctx).WithError(err).Warn("read shim options")
	}
	pid := 0
	if rt, err := runtime.New(opts.RuntimeRoot(ns), runtime.Options{}); err == nil {
		pid = removeContainer(ctx, rt, id)
	}
	now := time.Now()
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if err := task.ReleaseStoreRef(bundle); err != nil {
		log.G(ctx).WithError(err).Warn("release store tree")
	}
	removeDeadSockets(ctx, bundle)
	for _, a := range task.SweepDeadShims() {
		log.G(ctx).WithField("socket", a).Info("removed a dead shim's socket")
	}
	if e, err := task.ReadExit(bundle); err == nil {
		return shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.ExitedAt}, nil
	}
	return shim.StopStatus{Pid: pid, ExitStatus: 128 + int(unix.SIGKILL), ExitedAt: now}, nil
}

// removeContainer deletes container id (force) and returns its init's
// pid. A create the shim was still in when containerd gave up on it (a
// containerd restarted under a Create may shut the shim down mid-way)
// leaves a state directory without state.json: what its journal names is
// freed (runtime.RemoveAbandoned), once that create has let go of the
// directory's lock, or, should it finish, the container is deleted.
func removeContainer(ctx context.Context, rt *runtime.Runtime, id string) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := rt.Load(id)
		if err == nil {
			if err := c.Delete(true); err != nil {
				log.G(ctx).WithError(err).Warn("delete container")
			}
			return c.Pid()
		}
		if !errors.Is(err, runtime.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("load container")
			return 0
		}
		removed, err := rt.RemoveAbandoned(id)
		if err != nil {
			log.G(ctx).WithError(err).Warn("remove an abandoned create")
		}
		if _, serr := os.Stat(filepath.Join(rt.Root, id)); removed || err != nil || serr != nil || time.Now().After(deadline) {
			return 0
		}
		time.Sleep(20 * time.Millisecond) // its create holds the lock
	}
}

const debugSocketFile = task.DebugSocketFile

// removeDeadSockets removes the sockets of the bundle's shim (containerd
// keeps its address in bootstrap.json; the debug one is in
// debugSocketFile) when nothing serves them any more: a shim that was
// killed could not remove them itself. A live shim of the same group
// keeps them.
func removeDeadSockets(ctx context.Context, bundle string) {
	var addrs []string
	if b, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		var p struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(b, &p) == nil && p.Address != "" {
			addrs = append(addrs, p.Address)
		}
	}
	if b, err := os.ReadFile(filepath.Join(bundle, debugSocketFile)); err == nil && len(b) > 0 {
		addrs = append(addrs, string(b))
	}
	for _, a := range addrs {
		if shim.CanConnect(a) {
			continue
		}
		if err := shim.RemoveSocket(a); err != nil {
			log.G(ctx).WithError(err).WithField("socket", a).Warn("remove the dead shim's socket")
		}
	}
}

// Info describes the runtime to containerd.
// Info describes the runtime to containerd, with the features document
// `fre-runc features` prints (as the runc shim gives runc's).
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	f, err := typeurl.MarshalAnyToProto(runtime.Features())
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	return &types.RuntimeInfo{
		Name:     m.name,
		Version:  &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
		Features: f,
	}, nil
}
