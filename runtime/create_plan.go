package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/runtime/spawn"
	"github.com/fre-runtime/fre/seccomp"
)

// plan is create's plan phase: what the child does, in order, from its
// clone to fre-dmz: the root and its mounts (plan.go), the process and
// its credentials, seccomp and LSM, stdio or console, the exec fifo, the
// cgroup join (cgroupPlan), and where it waits for us.
func (j *createJob) plan() error {
	cfg, opts, sc := j.cfg, j.opts, j.sc
	sc.MountNS = cfg.hasNS(specs.MountNamespace)
	sc.Rootfs = cfg.Rootfs
	sc.RootPropagation = cfg.RootPropagation
	sc.ReadonlyRoot = cfg.ReadonlyRoot
	sc.NoPivot = opts.NoPivot
	// Judged here, in our mount namespace: only a new one is a copy of it
	// (a namespace joined by path may lack the mount). A new user
	// namespace's copy of it is locked (pivot_root refuses it: EINVAL), so
	// there it is bound onto itself in the child's namespace, as runc
	// always does; a RootMount is made there already.
	sc.RootIsMount = cfg.hasNew(specs.MountNamespace) &&
		(j.rootMount != nil || (!cfg.hasNew(specs.UserNamespace) && isMountPoint(cfg.Rootfs)))
	sc.RootMount = j.rootMount
	var cgAt, devAt int
	sc.Mounts, sc.PostMounts, cgAt, devAt = mountPlanAt(cfg, j.cgm)
	if j.lateClaim != nil && sc.MountNS {
		// The child makes the mounts that need no cgroup while we claim
		// it, waits for Release at its cgroup mount (the claim), and again
		// at its first device node (the limits).
		sc.ReleaseAtMount, sc.ReleaseAgainAtMount = cgAt, devAt
	}
	sc.Hostname, sc.Domainname = cfg.Hostname, cfg.Domainname
	sc.Personality = cfg.Personality
	if cfg.hasNew(specs.TimeNamespace) {
		sc.TimeNS, sc.TimeOffsets = true, cfg.TimeOffsets
	}
	for k, v := range cfg.Sysctl {
		sc.Sysctl = append(sc.Sysctl, [2]string{sysctlPath(k), v})
	}
	proc := cfg.Process
	setProcess(sc, proc)
	sc.PreserveFDs = opts.PreserveFDs
	if err := setSeccomp(sc, cfg.Seccomp); err != nil {
		return err
	}
	if err := setLSM(sc, proc); err != nil {
		return err
	}
	closeConsole, err := setStdio(sc, opts.ConsoleSocket, opts.Console, opts.Stdio)
	if err != nil {
		return err
	}
	j.after = append(j.after, closeConsole)

	// startContainer and poststart hooks belong to start: run then is
	// create + Start.
	j.startAfter = opts.Started && (hasHooks(cfg.Hooks, startContainerHooks) || hasHooks(cfg.Hooks, poststartHooks))
	if j.startAfter {
		j.opts.Started = false
	}
	j.pauseForHooks = j.createHooks
	sc.HookPause = j.pauseForHooks && sc.MountNS
	// The exec fifo: the init blocks reading it until start writes.
	if !j.opts.Started {
		fifo := filepath.Join(j.dir, execFifo)
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return fmt.Errorf("create exec fifo: %w", err)
		}
		fd, err := unix.Open(fifo, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open exec fifo: %w", err)
		}
		j.after = append(j.after, func() { unix.Close(fd) })
		sc.FifoFD = fd
	}
	if err := j.cgroupPlan(); err != nil {
		return err
	}
	// Without id maps to write and a cgroup to join for it, the child
	// sets itself up while we work, and waits for us after its mounts.
	sc.LateRelease = !j.newUser && !j.pauseForHooks && (j.cg == nil || j.selfJoin) && j.lateClaim == nil
	// A new user namespace's root may not reach a bind's source (a
	// directory only the host's root may enter): we open them for it.
	sc.SourcesFromParent = j.newUser
	// A speculated rootfs: the init waits at the end of its set-up (the
	// late release's wait, or one of its own) until the walk is done.
	sc.FinalRelease = j.verifyRootfs != nil && !sc.LateRelease
	sc.Trace = j.r.Trace != nil
	return nil
}

// setProcess puts the program and its credentials into the plan.
func setProcess(sc *spawn.Config, proc *ProcessConfig) {
	sc.Args, sc.Env, sc.Cwd = proc.Args, proc.Env, proc.Cwd
	sc.PathEnv = envValue(proc.Env, "PATH")
	sc.SetUser = true
	sc.UID, sc.GID, sc.Groups = proc.UID, proc.GID, proc.AdditionalGids
	if proc.Umask != nil {
		sc.Umask = int(*proc.Umask)
	}
	for _, rl := range proc.Rlimits {
		sc.Rlimits = append(sc.Rlimits, spawn.Rlimit{Resource: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	sc.NoNewPrivs = proc.NoNewPrivs
	if proc.Caps != nil {
		c := spawn.Caps(*proc.Caps)
		sc.Caps = &c
		sc.CapLast = capLastOnce()
	}
	sc.ConsoleRows, sc.ConsoleCols = proc.ConsoleRows, proc.ConsoleCols
	sc.Sched = proc.Sched
	sc.IOPrio = proc.IOPrio
}

// setStdio connects the console socket (the child sends the pty master
// through it) and sets the program's stdio. The returned func closes what
// was opened, once the child has its copies.
func setStdio(sc *spawn.Config, socket string, console *os.File, stdio [3]*os.File) (func(), error) {
	closeFn := func() {}
	if socket != "" {
		// A plain socket: package net's set-up would cost every process.
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("connect console socket %s: %w", socket, err)
		}
		for {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: socket})
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("connect console socket %s: %w", socket, err)
		}
		sc.ConsoleFD = fd
		closeFn = func() { unix.Close(fd) }
	} else if console != nil {
		sc.ConsoleFD = int(console.Fd())
	}
	for i, f := range stdio {
		sc.Stdio[i] = -1
		if f != nil {
			sc.Stdio[i] = int(f.Fd())
		}
	}
	return closeFn, nil
}

// setSeccomp compiles the profile; fre-dmz installs it right before the
// program's execve (or the child, before dropping credentials, when
// no_new_privs is off).
func setSeccomp(sc *spawn.Config, profile *specs.LinuxSeccomp) error {
	if profile == nil {
		return nil
	}
	prog, flags, err := seccomp.Compile(profile)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	sc.Seccomp, sc.SeccompFlag = prog, flags
	return nil
}

// newSpawnConfig is a plan that changes nothing yet.
func newSpawnConfig() *spawn.Config {
	return &spawn.Config{FifoFD: -1, ConsoleFD: -1, Umask: -1, Personality: -1, IOPrio: -1, Stdio: [3]int{-1, -1, -1}, ReleaseAtMount: -1, ReleaseAgainAtMount: -1}
}
