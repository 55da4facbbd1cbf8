// Package manager is the shim binary's own life: the start command (spawn
// or reuse the shim daemon that serves a group of containers and hand its
// socket to containerd), the delete command (clean up after a shim that is
// gone) and info.
package manager

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

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
	res := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	debug := params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG
	grpcAddress := params.GetContainerdGrpcAddress()
	cmd, err := newCommand(ctx, id, grpcAddress, debug)
	if err != nil {
		return nil, err
	}
	group, err := groupOf(id)
	if err != nil {
		return nil, err
	}
	dir := params.GetSocketDir()
	if dir == "" {
		dir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	var sockets []*shimSocket
	defer func() {
		if retErr != nil {
			for _, s := range sockets {
				s.Close()
			}
		}
	}()
	if debug {
		// For the delete command, should the shim die (removeDeadSockets).
		da, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, group, true)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(debugSocketFile, []byte(da), 0o600); err != nil {
			return nil, err
		}
	}
	s, err := newShimSocket(ctx, dir, grpcAddress, group, false)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			res.Address = s.addr
			return res, nil
		}
		return nil, err
	}
	sockets = append(sockets, s)
	cmd.ExtraFiles = append(cmd.ExtraFiles, s.f)
	// The daemon removes its socket when it ends; containerd writes the
	// bundle's address file only after start returns, too late for it.
	cmd.Env = append(cmd.Env, task.SocketEnv+"="+s.addr)
	if debug {
		ds, err := newShimSocket(ctx, dir, grpcAddress, group, true)
		if err != nil {
			return nil, err
		}
		sockets = append(sockets, ds)
		cmd.ExtraFiles = append(cmd.ExtraFiles, ds.f)
	}
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
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("adjust shim OOM score: %w", err)
	}
	res.Address = s.addr
	return res, nil
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
		if c, err := rt.Load(id); err == nil {
			pid = c.Pid()
			if err := c.Delete(true); err != nil {
				log.G(ctx).WithError(err).Warn("delete container")
			}
		} else if !errors.Is(err, runtime.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("load container")
		}
	}
	now := time.Now()
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if err := task.ReleaseStoreRef(bundle); err != nil {
		log.G(ctx).WithError(err).Warn("release store tree")
	}
	removeDeadSockets(ctx, bundle)
	if e, err := task.ReadExit(bundle); err == nil {
		return shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.ExitedAt}, nil
	}
	return shim.StopStatus{Pid: pid, ExitStatus: 128 + int(unix.SIGKILL), ExitedAt: now}, nil
}

// debugSocketFile, in the bundle, holds the address of the shim's debug
// socket (containerd at log level debug asks for one).
const debugSocketFile = "fre-debug-socket"

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
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	return &types.RuntimeInfo{
		Name:    m.name,
		Version: &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
	}, nil
}
