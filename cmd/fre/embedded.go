package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// embedded is a containerd that fre serve runs itself (the default, as
// make demo's): its root, state, socket and log below the engine's state
// dir, the fre shim found beside the fre binary. An earlier one that a
// killed engine left is stopped first (by the pid it recorded).
type embedded struct {
	dir, sock string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// containerdBin finds containerd: $FRE_CONTAINERD_BIN_DIR, the Makefile's
// bin/containerd-v2.4.2 beside fre, or $PATH.
func containerdBin() (string, error) {
	var dirs []string
	if d := os.Getenv("FRE_CONTAINERD_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(self), "containerd-v2.4.2"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "containerd")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("containerd")
	if err != nil {
		return "", errors.New("no containerd for the embedded one ($FRE_CONTAINERD_BIN_DIR, bin/containerd-v2.4.2 beside fre, $PATH); or give --containerd SOCKET")
	}
	return p, nil
}

func startEmbedded(state string) (*embedded, error) {
	bin, err := containerdBin()
	if err != nil {
		return nil, err
	}
	e := &embedded{dir: filepath.Join(state, "containerd")}
	e.sock = filepath.Join(e.dir, "containerd.sock")
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return nil, err
	}
	config := filepath.Join(e.dir, "config.toml")
	e.stopLeft(config)
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(e.dir, "root"), filepath.Join(e.dir, "state"), e.sock, e.sock+".ttrpc")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(e.dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", config)
	// The shim (containerd-shim-fre-v1) is found beside fre, then in PATH.
	path := os.Getenv("PATH")
	if self, err := os.Executable(); err == nil {
		path = filepath.Dir(self) + ":" + filepath.Dir(bin) + ":" + path
	}
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	e.cmd, e.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(e.exited) }()
	os.WriteFile(filepath.Join(e.dir, "containerd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", e.sock); err == nil {
			c.Close()
			return e, nil
		}
		select {
		case <-e.exited:
			return nil, fmt.Errorf("containerd exited at start (log: %s)", logf.Name())
		default:
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("containerd did not listen in 30 s (log: %s)", logf.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopLeft stops the containerd an earlier engine of this state dir left
// running: the recorded pid, if it still runs with this config.
func (e *embedded) stopLeft(config string) {
	b, err := os.ReadFile(filepath.Join(e.dir, "containerd.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(config)) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 150; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// stop stops the embedded containerd (SIGTERM, then SIGKILL).
func (e *embedded) stop() {
	if e == nil || e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
	os.Remove(filepath.Join(e.dir, "containerd.pid"))
}
