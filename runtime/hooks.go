package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/sysmon"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// Hooks, where the spec says:
//   prestart, createRuntime  runtime namespace, in create, once the
//                            container's namespaces exist
//   createContainer          container namespaces, after the mounts,
//                            before pivot_root (the child pauses)
//   startContainer           container namespaces, in start, before the
//                            program runs
//   poststart                runtime namespace, after start
//   poststop                 runtime namespace, after delete
// Each gets the container's state on stdin; a failure of any but
// poststart and poststop fails the operation.

func hookState(id, bundle string, pid int, status string, annotations map[string]string) []byte {
	b, _ := json.Marshal(&specs.State{Version: specs.Version, ID: id, Status: specs.ContainerState(status), Pid: pid, Bundle: bundle, Annotations: annotations})
	return b
}

// runHooks runs hooks in the runtime namespace, in order, stopping at the
// first failure.
func runHooks(kind string, hooks []specs.Hook, state []byte) error {
	for i, h := range hooks {
		if err := runHook(h, state); err != nil {
			return fmt.Errorf("error running hook #%d (%s hook %s): %w", i, kind, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("%w: hook timeout must be positive", ErrInvalidConfig)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = h.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The hook runs on every CPU fre-runc was given, not the one it pinned
	// itself to: it is forked from this thread, unpinned first.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := spawn.UnpinThread(); err != nil {
		return err
	}
	// The timeout's timer fires while this goroutine sits in waitid.
	sysmon.Normal()
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// runHooksIn runs hooks inside the namespaces of process pid (whose mount
// namespace may not have pivoted yet), each as a process started by spawn.
// With a seccomp profile (startContainer's: runc runs those from its init,
// under the container's filter) each hook runs under its filter.
// cwd is where each starts, in the container's mount namespace: the
// rootfs for createContainer (not yet the root: runc's init is there
// then), "/" for startContainer.
func runHooksIn(kind string, hooks []specs.Hook, pid int, cwd string, state []byte, profile *specs.LinuxSeccomp) error {
	for i, h := range hooks {
		if err := runHookIn(h, pid, cwd, state, profile); err != nil {
			return fmt.Errorf("error running hook #%d (%s hook %s): %w", i, kind, h.Path, err)
		}
	}
	return nil
}

func runHookIn(h specs.Hook, pid int, cwd string, state []byte, profile *specs.LinuxSeccomp) error {
	sc := newSpawnConfig()
	joinNamespacesOf(sc, pid)
	if err := setSeccomp(sc, profile); err != nil {
		return err
	}
	// A notify action's listener belongs to the init's agent: a hook's
	// filter gets none (such calls fail with ENOSYS).
	sc.SeccompFlag &^= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	sc.Args = h.Args
	if len(sc.Args) == 0 {
		sc.Args = []string{h.Path}
	}
	// The hook's path, not args[0], is what runs.
	sc.Args = append([]string(nil), sc.Args...)
	sc.ExecPath = h.Path
	sc.Env = h.Env
	sc.Cwd = cwd
	stdin, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer stdin.Close()
	go func() { w.Write(state); w.Close() }()
	sc.Stdio[0] = int(stdin.Fd())
	child, err := spawn.Start(sc)
	if err != nil {
		return err
	}
	if err := child.Release(); err != nil {
		child.Kill()
		return err
	}
	if err := child.Wait(); err != nil {
		child.Kill()
		return err
	}
	if h.Timeout != nil {
		t := time.AfterFunc(time.Duration(*h.Timeout)*time.Second, func() {
			unix.PidfdSendSignal(child.PidFD, unix.SIGKILL, nil, 0)
		})
		defer t.Stop()
	}
	info, err := waitPidfdInfo(child.PidFD)
	unix.Close(child.PidFD)
	if err != nil {
		return err
	}
	return exitError(&info)
}

// exitError is nil for a clean exit, else what os/exec would say ("exit
// status 2", "signal: bad system call").
func exitError(info *unix.Siginfo) error {
	switch exited, status := siginfoStatus(info); {
	case exited && status == 0:
		return nil
	case exited:
		return fmt.Errorf("exit status %d", status)
	default:
		return fmt.Errorf("signal: %v", syscall.Signal(status))
	}
}

func hasHooks(h *specs.Hooks, which func(*specs.Hooks) []specs.Hook) bool {
	return h != nil && len(which(h)) > 0
}

func anyHooks(h *specs.Hooks) bool {
	return hasHooks(h, prestartHooks) || hasHooks(h, createContainerHooks) || hasHooks(h, startContainerHooks) ||
		hasHooks(h, poststartHooks) || hasHooks(h, func(h *specs.Hooks) []specs.Hook { return h.Poststop })
}

func prestartHooks(h *specs.Hooks) []specs.Hook {
	//nolint:staticcheck // prestart is deprecated but still honoured
	return append(append([]specs.Hook(nil), h.Prestart...), h.CreateRuntime...)
}
func createContainerHooks(h *specs.Hooks) []specs.Hook { return h.CreateContainer }
func startContainerHooks(h *specs.Hooks) []specs.Hook  { return h.StartContainer }
func poststartHooks(h *specs.Hooks) []specs.Hook       { return h.Poststart }
func poststopHooks(h *specs.Hooks) []specs.Hook        { return h.Poststop }

// warnf reports what the spec wants logged but not failed.
func (r *Runtime) warnf(format string, args ...any) {
	if r.Warn != nil {
		r.Warn(fmt.Sprintf(format, args...))
		return
	}
	fmt.Fprintf(os.Stderr, "fre: warning: "+format+"\n", args...)
}
