package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// ExecOpts describe a process to start in a running container.
type ExecOpts struct {
	Process       *specs.Process
	ConsoleSocket string
	Console       *os.File
	Stdio         [3]*os.File
	PidFile       string
	PreserveFDs   int
	// IgnorePaused allows an exec into a paused container: the process
	// starts frozen with the rest, and runs once it is resumed.
	IgnorePaused bool
	// SubCgroups puts the process in sub-cgroups of the container's
	// (runc's exec --cgroup), by controller; "" is every controller (and
	// cgroup v2's one hierarchy, which takes only that). Each must exist.
	SubCgroups map[string]string
}

// subCgroup is the cgroup of the container's sub-cgroups subs (ExecOpts):
// a manager when one path below the container's holds for every
// controller, else (v1, controllers in different sub-cgroups) the files
// the process joins itself through, one per hierarchy.
func (c *Container) subCgroup(subs map[string]string) (cgroup.Manager, []string, error) {
	if len(c.state.CgroupPaths) == 0 {
		return nil, nil, fmt.Errorf("exec --cgroup: %s has no cgroup: %w", c.id, ErrInvalidConfig)
	}
	_, v2 := c.state.CgroupPaths[""]
	for k := range subs {
		if _, ok := c.state.CgroupPaths[k]; k != "" && !ok {
			if v2 {
				return nil, nil, fmt.Errorf("exec --cgroup %s: for cgroup v2 unified hierarchy, controller names are not allowed: %w", k, ErrInvalidConfig)
			}
			return nil, nil, fmt.Errorf("exec --cgroup: unknown controller %q (not in the container's cgroups): %w", k, ErrInvalidConfig)
		}
	}
	paths := make(map[string]string, len(c.state.CgroupPaths))
	byDir := map[string]string{} // the container's hierarchy dir -> the sub-cgroup's
	uniform := true
	for k, dir := range c.state.CgroupPaths {
		sub, ok := subs[k]
		if !ok {
			sub = subs[""]
		}
		p := dir
		if sub != "" {
			var err error
			if p, err = subCgroupDir(dir, sub); err != nil {
				return nil, nil, err
			}
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
				// runc's words: the join is what fails there.
				if pe, ok := err.(*os.PathError); ok {
					err = pe.Err
				}
				return nil, nil, fmt.Errorf("exec --cgroup %s: adding pid to %s: %w", sub, filepath.Join(p, "cgroup.procs"), errOr(err, ErrInvalidConfig))
			}
		}
		if prev, ok := byDir[dir]; ok && prev != p {
			return nil, nil, fmt.Errorf("exec --cgroup: controllers of one hierarchy (%s) in different sub-cgroups: %w", dir, ErrInvalidConfig)
		}
		byDir[dir] = p
		paths[k] = p
		if sub != subs[""] {
			uniform = false
		}
	}
	if uniform || v2 {
		m, err := cgroup.Load(paths)
		return m, nil, err
	}
	join := make([]string, 0, len(byDir))
	for _, p := range byDir {
		join = append(join, p+"/tasks")
	}
	sort.Strings(join)
	return nil, join, nil
}

// subCgroupDir is sub below the container's cgroup dir; a path that
// leads above it is refused, as runc refuses it.
func subCgroupDir(dir, sub string) (string, error) {
	rel := filepath.Clean(sub)
	if filepath.IsAbs(rel) {
		rel = filepath.Clean(rel[1:])
	}
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("exec --cgroup: %s is not a sub cgroup path: %w", sub, ErrInvalidConfig)
	}
	return filepath.Join(dir, rel), nil
}

func errOr(err, or error) error {
	if err != nil {
		return err
	}
	return or
}

// Process is a process started by Exec.
type Process struct {
	Pid   int
	PidFD int
}

// Wait waits for the process and returns its exit code (128+signal).
func (p *Process) Wait() (int, error) { return waitPidfd(p.PidFD) }

// Close releases the process's pidfd.
func (p *Process) Close() error {
	if p.PidFD < 0 {
		return nil
	}
	err := unix.Close(p.PidFD)
	p.PidFD = -1
	return err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig unix.Signal) error { return unix.PidfdSendSignal(p.PidFD, sig, nil, 0) }

// nsOrder is the order namespaces are joined in: the user namespace first,
// so the others are entered with its privileges.
var nsOrder = []struct {
	name string
	flag int
}{
	{"user", unix.CLONE_NEWUSER}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"cgroup", unix.CLONE_NEWCGROUP}, {"mnt", unix.CLONE_NEWNS},
}

// Exec starts a process in every namespace and the cgroup of the
// container's init, with the same security set-up as the init.
func (c *Container) Exec(ctx context.Context, opts ExecOpts) (*Process, error) {
	if err := c.Ready(); err != nil {
		return nil, err
	}
	if s := c.Status(); s == Paused && !opts.IgnorePaused {
		// runc's words.
		return nil, fmt.Errorf("exec in %s: cannot exec in a paused container (use --ignore-paused to override): %w", c.id, ErrNotRunning)
	} else if s != Running && s != Created && s != Paused {
		return nil, fmt.Errorf("exec in %s: %w (%s)", c.id, ErrNotRunning, s)
	}
	proc, err := convertProcess(opts.Process)
	if err != nil {
		return nil, err
	}
	pid := c.state.Pid
	sc := newSpawnConfig()
	joinNamespacesOf(sc, pid)
	setProcess(sc, proc)
	sc.PreserveFDs = opts.PreserveFDs
	if err := setSeccomp(sc, c.state.Seccomp); err != nil {
		return nil, err
	}
	if err := setLSM(sc, proc); err != nil {
		return nil, err
	}
	closeConsole, err := setStdio(sc, opts.ConsoleSocket, opts.Console, opts.Stdio)
	if err != nil {
		return nil, err
	}
	defer closeConsole()
	if proc.Terminal != (sc.ConsoleFD >= 0) {
		return nil, fmt.Errorf("%w: process.terminal and the console socket must be given together", ErrInvalidConfig)
	}
	for i, f := range opts.Stdio {
		sc.Stdio[i] = -1
		if f != nil {
			sc.Stdio[i] = int(f.Fd())
		}
	}
	cg := c.cgroup()
	var subJoin []string
	hybrid := c.state.CgroupUnified
	if len(opts.SubCgroups) > 0 {
		var sub cgroup.Manager
		if sub, subJoin, err = c.subCgroup(opts.SubCgroups); err != nil {
			return nil, err
		}
		if sub != nil {
			cg = sub
		}
	}
	if cg != nil {
		sc.CgroupJoin = cg.SelfJoinFiles()
		if subJoin != nil {
			sc.CgroupJoin = subJoin
		}
		if cg.Version() == 2 && !noCloneIntoCgroup.Load() {
			sc.CgroupDir = cg.Paths()[""] // born in it
		}
		if hybrid != "" {
			// A sub-cgroup named for every controller, where it exists
			// in the unified hierarchy too; else the container's own.
			if sub := opts.SubCgroups[""]; sub != "" {
				if d, err := subCgroupDir(hybrid, sub); err == nil && fileExists(d) {
					hybrid = d
				}
			}
			if !noCloneIntoCgroup.Load() {
				sc.CgroupDir = hybrid // born in it; v1 through CgroupJoin
			}
		}
		// A process that may hold CAP_SYS_ADMIN could change its limits.
		if mayAdmin(proc.Caps) {
			if err := c.CgroupChanged(); err != nil {
				return nil, err
			}
		}
	}
	sc.LateRelease = cg == nil || sc.CgroupJoin != nil || sc.CgroupDir != ""
	ph := c.rt.phases()
	child, err := spawn.Start(sc)
	if errors.Is(err, spawn.ErrNoCloneIntoCgroup) {
		noCloneIntoCgroup.Store(true)
		sc.CgroupDir, sc.LateRelease = "", false
		child, err = spawn.Start(sc)
	}
	if err != nil {
		return nil, err
	}
	ph.done("exec: spawned")
	if cg != nil && sc.CgroupJoin == nil && sc.CgroupDir == "" {
		if err := cg.Add(child.Pid); err != nil {
			child.Kill()
			return nil, fmt.Errorf("exec: join cgroup: %w", err)
		}
		ph.done("exec: joined cgroup")
	}
	if cg != nil && hybrid != "" && sc.CgroupDir == "" {
		if err := cgroup.JoinHybrid(hybrid, child.Pid); err != nil {
			child.Kill()
			return nil, fmt.Errorf("exec: join cgroup: %w", err)
		}
	}
	if proc.OOMScoreAdj != nil {
		os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", child.Pid), []byte(strconv.Itoa(*proc.OOMScoreAdj)), 0)
	}
	if err := child.Release(); err != nil {
		child.Kill()
		return nil, err
	}
	ph.done("exec: released")
	child.OnSeccompListener = func(fd int) error {
		state := specs.State{Version: specs.Version, ID: c.id, Status: specs.StateRunning, Pid: c.state.Pid, Bundle: c.state.Bundle, Annotations: c.state.Annotations}
		return sendSeccompListener(c.state.Seccomp, fd, child.Pid, state)
	}
	if err := child.Wait(); err != nil {
		child.Kill()
		return nil, fmt.Errorf("exec: %w", err)
	}
	ph.done("exec: set up")
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, child.Pid); err != nil {
			return nil, err
		}
	}
	return &Process{Pid: child.Pid, PidFD: child.PidFD}, nil
}

// joinNamespacesOf makes the plan enter every namespace in which process
// pid differs from us (exec, createContainer and startContainer hooks).
func joinNamespacesOf(sc *spawn.Config, pid int) {
	for _, ns := range nsOrder {
		p := fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name)
		if !sameNS(p, "/proc/self/ns/"+ns.name) {
			sc.Join = append(sc.Join, spawn.Join{Type: ns.flag, Path: p})
		}
	}
	if p := fmt.Sprintf("/proc/%d/ns/pid", pid); !sameNS(p, "/proc/self/ns/pid") {
		sc.PidNS = p
	}
}

func sameNS(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
