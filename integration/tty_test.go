package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestCtrTTY runs a container with a terminal: the size ctr's terminal has
// at start reaches the container, and so does a resize (SIGWINCH → ctr →
// ResizePty).
func TestCtrTTY(t *testing.T) {
	c := setup(t)
	const id = "fre-tty"
	t.Cleanup(func() { c.removeTask(id) })
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.binDir, "ctr"), "--address", c.sock, "--namespace", namespace,
		"run", "--runtime", runtimeName, "--rm", "-t", imageRef, id,
		"sh", "-c", "while read x; do stty size; done")
	cmd.Env = c.env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	var out syncBuffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	// ctr resizes the task right after starting it: ask until the size
	// has arrived.
	if !pollFor(20*time.Second, func() bool {
		master.Write([]byte("\n"))
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(out.String(), "40 100")
	}) {
		t.Fatalf("initial size 40x100 not seen; output %q", out.String())
	}
	if err := master.Resize(console.WinSize{Height: 50, Width: 120}); err != nil {
		t.Fatal(err)
	}
	// Again on every poll: ctr installs its SIGWINCH handler only after
	// its first resize, and a signal before that is lost (slow guests).
	if !pollFor(20*time.Second, func() bool {
		cmd.Process.Signal(syscall.SIGWINCH)
		master.Write([]byte("\n"))
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(out.String(), "50 120")
	}) {
		t.Fatalf("resized 50x120 not seen; output %q", out.String())
	}
	master.Write([]byte{4}) // EOF: the loop ends, the container exits 0
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ctr run -t: %v; output %q", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("container did not exit on EOF; output %q", out.String())
	}
}
