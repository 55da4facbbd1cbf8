package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runner starts containers with one runtime and times them.
type runner interface {
	// run runs the bundle's container to completion as `run --bundle`, and
	// deletes it afterwards (untimed).
	run(bundle, id string) (time.Duration, error)
	// concurrent starts every bundle at once.
	concurrent(bundles, ids []string) (burst, error)
	// execs starts the bundle's container detached, times n `exec ID
	// /bin/true` into it one after another, and deletes it.
	execs(bundle, id string, n int) ([]time.Duration, error)
	close() error
}

// burst is what concurrent measures: each container's run time, the wall
// time from the first start to the last exit, and the CPU time the whole
// machine spent meanwhile (every process's, kernel threads' included: what
// a runtime costs beyond its own processes, such as a network namespace's
// teardown, counts). errs[i] is "" when container i succeeded.
type burst struct {
	Lat  []time.Duration
	Wall time.Duration
	CPU  time.Duration
	Errs []string
}

// machineCPU is the CPU time spent so far by all CPUs (user, nice,
// system, irq, softirq; not idle, iowait or the hypervisor's steal), from
// /proc/stat.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // steal; guest time is already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	const hz = 100 // USER_HZ
	return time.Duration(ticks) * time.Second / hz
}

// local runs a runtime binary directly from this process.
type local struct {
	path   string
	global []string // global flags: --root and the like
}

func (l *local) command(args ...string) *exec.Cmd {
	return exec.Command(l.path, append(append([]string(nil), l.global...), args...)...)
}

// start runs `run` and returns its wall time. Output goes to a file opened
// before timing so no pipe-copying goroutine sits on the measured path.
func (l *local) start(bundle, id string) (time.Duration, error) {
	out, err := os.CreateTemp("", "frebench-out-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := l.command("run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	err = cmd.Run()
	d := time.Since(t0)
	if err != nil {
		msg, _ := os.ReadFile(out.Name())
		return d, fmt.Errorf("%s run %s: %v: %s", l.path, id, err, strings.TrimSpace(string(msg)))
	}
	return d, nil
}

// remove deletes the container if anything is left of it; `run` normally
// deletes it itself, so "does not exist" is the expected answer.
func (l *local) remove(id string) {
	l.command("delete", "--force", id).Run()
}

func (l *local) run(bundle, id string) (time.Duration, error) {
	d, err := l.start(bundle, id)
	l.remove(id)
	return d, err
}

func (l *local) concurrent(bundles, ids []string) (burst, error) {
	if len(bundles) != len(ids) {
		return burst{}, errors.New("bundles and ids differ in length")
	}
	// Every starter is forked before the clock: a shell blocked reading
	// one pipe, which closing the pipe's write end releases all at once, and
	// each execs the runtime. Forking the runtimes from here after the clock
	// would serialize their execs inside the window (os/exec's fork holds
	// syscall.ForkLock until the child's execve is done). A shell, not this
	// binary: a waiting Go process is not idle (its sysmon thread wakes
	// every 10 ms), and 256 of them took half the guest's CPU.
	gateR, gateW, err := os.Pipe()
	if err != nil {
		return burst{}, err
	}
	defer gateR.Close()
	defer gateW.Close()
	lat := make([]time.Duration, len(ids))
	errs := make([]string, len(ids))
	cmds := make([]*exec.Cmd, len(ids))
	outs := make([]*os.File, len(ids))
	defer func() {
		for _, f := range outs {
			if f != nil {
				os.Remove(f.Name())
				f.Close()
			}
		}
	}()
	for i := range ids {
		f, err := os.CreateTemp("", "frebench-out-")
		if err != nil {
			return burst{}, err
		}
		outs[i] = f
		args := append([]string{"-c", gateScript, "gate", l.path}, l.global...)
		cmd := exec.Command("/bin/sh", append(args, "run", "--bundle", bundles[i], ids[i])...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.ExtraFiles = []*os.File{gateR}
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:i] {
				c.Process.Kill()
				c.Wait()
			}
			return burst{}, fmt.Errorf("starter %d: %w", i, err)
		}
		cmds[i] = cmd
	}
	gateR.Close()
	var wg sync.WaitGroup
	cpu0 := machineCPU()
	t0 := time.Now()
	gateW.Close()
	for i, cmd := range cmds {
		wg.Add(1)
		go func(i int, cmd *exec.Cmd) {
			defer wg.Done()
			err := cmd.Wait()
			lat[i] = time.Since(t0)
			if err != nil {
				msg, _ := os.ReadFile(outs[i].Name())
				errs[i] = fmt.Sprintf("%s run %s: %v: %s", l.path, ids[i], err, strings.TrimSpace(string(msg)))
			}
		}(i, cmd)
	}
	wg.Wait()
	wall := time.Since(t0)
	cpu := machineCPU() - cpu0
	// Deleting afterwards keeps teardown out of the measured window.
	sem := make(chan struct{}, 16)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			l.remove(id)
			<-sem
		}(id)
	}
	wg.Wait()
	return burst{Lat: lat, Wall: wall, CPU: cpu, Errs: errs}, nil
}

// gateScript is a concurrent starter: it waits for EOF on fd 3 (the gate)
// and execs its arguments with fd 3 closed.
const gateScript = `read -r _ <&3; exec 3<&- "$@"`

func (l *local) close() error { return nil }

func (l *local) execs(bundle, id string, n int) ([]time.Duration, error) {
	out, err := os.CreateTemp("", "frebench-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	defer l.remove(id)
	cmd := l.command("run", "--detach", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return nil, fmt.Errorf("%s run -d %s: %v: %s", l.path, id, err, strings.TrimSpace(string(msg)))
	}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		cmd := l.command("exec", id, "/bin/true")
		cmd.Stdout, cmd.Stderr = out, out
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			msg, _ := os.ReadFile(out.Name())
			return lat, fmt.Errorf("%s exec %s: %v: %s", l.path, id, err, strings.TrimSpace(string(msg)))
		}
		lat = append(lat, d)
	}
	return lat, nil
}
