package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/sysmon"
	"github.com/fre-runtime/fre/runtime"
)

type createFlags struct {
	bundle, consoleSocket, pidFile string
	noPivot, noNewKeyring, detach  bool
	preserveFDs                    int
	keep                           bool
}

func (f *createFlags) add(fs *flag.FlagSet) {
	stringFlag(fs, &f.bundle, "bundle,b", "", "path to the root of the bundle directory, defaults to the current directory")
	fs.StringVar(&f.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive the pty master")
	fs.StringVar(&f.pidFile, "pid-file", "", "specify the file to write the process id to")
	fs.BoolVar(&f.noPivot, "no-pivot", false, "do not use pivot root to jail process inside rootfs")
	fs.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "do not create a new session keyring for the container")
	fs.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
}

func (f *createFlags) opts(id string) runtime.CreateOpts {
	bundle := f.bundle
	if bundle == "" {
		bundle, _ = os.Getwd()
	}
	n := f.preserveFDs
	// runc passes $LISTEN_FDS on too (socket activation).
	if v, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && v > 0 {
		n += v
	}
	return runtime.CreateOpts{ID: id, Bundle: bundle, ConsoleSocket: f.consoleSocket, PidFile: f.pidFile, NoPivot: f.noPivot, PreserveFDs: n}
}

func init() {
	register(&command{name: "create", usage: "<container-id>", short: "create a container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var f createFlags
			f.add(fs)
			return func(args []string) error {
				rt, err := openRuntime(g)
				if err != nil {
					return err
				}
				_, err = rt.Create(context.Background(), f.opts(args[0]))
				return err
			}
		}})
	register(&command{name: "start", usage: "<container-id>", short: "executes the user defined process in a created container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				return c.Start()
			}
		}})
	register(&command{name: "run", usage: "<container-id>", short: "create and run a container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var f createFlags
			f.add(fs)
			boolFlag(fs, &f.detach, "detach,d", "detach from the container's process")
			fs.BoolVar(&f.keep, "keep", false, "do not delete the container after it exits")
			return func(args []string) error { return runContainer(g, &f, args[0]) }
		}})
	register(&command{name: "kill", usage: "<container-id> [signal]", short: "kill sends the specified signal (default: SIGTERM) to the container's init process", minArgs: 1, maxArgs: 2,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var all bool
			boolFlag(fs, &all, "all,a", "send the specified signal to all processes inside the container")
			return func(args []string) error {
				sig := unix.SIGTERM
				if len(args) == 2 {
					s, err := parseSignal(args[1])
					if err != nil {
						return err
					}
					sig = s
				}
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				// As runc: --all (now obsolete there) on a stopped container
				// is no error; without it, "container not running".
				if all && c.Status() == runtime.Stopped {
					return nil
				}
				return c.Signal(sig, all)
			}
		}})
	register(&command{name: "delete", usage: "<container-id>", short: "delete any resources held by the container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var force bool
			boolFlag(fs, &force, "force,f", "forcibly delete the container if it is still running (uses SIGKILL)")
			return func(args []string) error {
				rt, err := openRuntime(g)
				if err != nil {
					return err
				}
				c, err := rt.Load(args[0])
				if err != nil {
					if isNotExist(err) {
						// As runc: a state dir without its state (a create
						// that died) is removed; FRE also frees what the
						// create's journal says it took.
						if _, rerr := rt.RemoveAbandoned(args[0]); rerr != nil {
							return rerr
						}
						if force {
							return nil
						}
					}
					return err
				}
				return c.Delete(force)
			}
		}})
	register(&command{name: "pause", usage: "<container-id>", short: "pause suspends all processes inside the container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				return c.Pause()
			}
		}})
	register(&command{name: "resume", usage: "<container-id>", short: "resumes all processes that have been previously paused", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				return c.Resume()
			}
		}})
}

func load(g *globalOptions, id string) (*runtime.Container, error) {
	rt, err := openRuntime(g)
	if err != nil {
		return nil, err
	}
	return rt.Load(id)
}

// runContainer is create + start + wait, exiting with the container's code.
func runContainer(g *globalOptions, f *createFlags, id string) error {
	rt, err := openRuntime(g)
	if err != nil {
		return err
	}
	opts := f.opts(id)
	opts.Started = true
	// A terminal with nobody to hand it to: fre-runc holds it (runc's way).
	var tty *foregroundTTY
	if !f.detach && f.consoleSocket == "" {
		spec, err := runtime.LoadSpec(opts.Bundle)
		if err != nil {
			return err
		}
		opts.Spec = spec
		if spec.Process != nil && spec.Process.Terminal {
			if tty, err = newForegroundTTY(); err != nil {
				return err
			}
			opts.Console = tty.theirs
		}
	}
	// Signals for the container arrive from now on: forward them.
	sigs := make(chan os.Signal, 64)
	notified := make(chan struct{})
	if !f.detach {
		// The signals a user or supervisor sends to a foreground run.
		// Notify costs a thread handshake per signal (about 1 ms for
		// these), so it is installed while the container is created.
		go func() {
			signal.Notify(sigs, forwarded...)
			close(notified)
		}()
		defer func() { <-notified; signal.Stop(sigs) }()
	}
	c, err := rt.Create(context.Background(), opts)
	if err != nil {
		return err
	}
	if f.detach {
		return nil
	}
	<-notified
	// From here fre-runc waits, in waitid, with the signal goroutine
	// behind it.
	sysmon.Normal()
	waitTTY := func() {}
	if tty != nil {
		if waitTTY, err = tty.attach(); err != nil {
			c.Delete(true)
			return err
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				sig := s.(unix.Signal)
				if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE || sig == unix.SIGWINCH {
					continue
				}
				unix.PidfdSendSignal(c.PidFD(), sig, nil, 0)
			case <-done:
				return
			}
		}
	}()
	t0 := time.Now()
	code, err := c.Wait()
	waitTTY()
	if rt.Trace != nil {
		rt.Trace("wait", time.Since(t0))
	}
	close(done)
	if err != nil {
		return err
	}
	if !f.keep {
		if err := c.Delete(true); err != nil {
			return err
		}
	}
	if code != 0 {
		return &exitError{code}
	}
	return nil
}

var forwarded = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPWR}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		// 0 checks that the process is there, as kill(1) does.
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}
