package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/sysmon"
	"github.com/fre-runtime/fre/runtime"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func init() {
	register(&command{name: "exec", noReorder: true, usage: "<container-id> <command> [command options]", short: "execute new process inside the container", minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var (
				processPath, consoleSocket, cwd, user, pidFile, apparmor, label string
				env, caps, gids, cgroups                                        stringList
				tty, detach, noNewPrivs, ignorePaused                           bool
				preserveFDs                                                     int
			)
			fs.StringVar(&processPath, "process", "", "path to the process.json")
			stringFlag(fs, &processPath, "p", "", "path to the process.json")
			fs.StringVar(&consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive the pty master")
			fs.StringVar(&cwd, "cwd", "", "current working directory in the container")
			stringFlag(fs, &user, "user,u", "", "UID (format: <uid>[:<gid>])")
			fs.StringVar(&pidFile, "pid-file", "", "specify the file to write the process id to")
			fs.StringVar(&apparmor, "apparmor", "", "set the apparmor profile for the process")
			fs.StringVar(&label, "process-label", "", "set the asm process label for the process")
			fs.Var(&env, "env", "set environment variables")
			fs.Var(&env, "e", "set environment variables")
			fs.Var(&caps, "cap", "add a capability to the bounding set for the process")
			fs.Var(&caps, "c", "add a capability to the bounding set for the process")
			fs.Var(&gids, "additional-gids", "additional gids")
			fs.Var(&gids, "g", "additional gids")
			boolFlag(fs, &tty, "tty,t", "allocate a pseudo-TTY")
			boolFlag(fs, &detach, "detach,d", "detach from the container's process")
			fs.BoolVar(&noNewPrivs, "no-new-privs", false, "set the no new privileges value for the process")
			fs.IntVar(&preserveFDs, "preserve-fds", 0, "pass N additional file descriptors to the container")
			fs.BoolVar(&ignorePaused, "ignore-paused", false, "allow exec in a paused container")
			fs.Var(&cgroups, "cgroup", "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.")
			run := func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				var p *specs.Process
				if processPath != "" {
					b, err := os.ReadFile(processPath)
					if err != nil {
						return fmt.Errorf("process: %w", err)
					}
					p = &specs.Process{}
					if err := json.Unmarshal(b, p); err != nil {
						return fmt.Errorf("process %s is malformed: %w", processPath, err)
					}
				} else {
					if len(args) < 2 {
						return errors.New("exec: no command given (args or --process)")
					}
					p = defaultExecProcess(c, args[1:])
				}
				if tty {
					p.Terminal = true
				}
				p.Env = append(p.Env, env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if user != "" {
					uid, gid, _ := strings.Cut(user, ":")
					u, err := strconv.ParseUint(uid, 10, 32)
					if err != nil {
						return fmt.Errorf("--user %q: %w", user, err)
					}
					p.User.UID = uint32(u)
					if gid != "" {
						g, err := strconv.ParseUint(gid, 10, 32)
						if err != nil {
							return fmt.Errorf("--user %q: %w", user, err)
						}
						p.User.GID = uint32(g)
					}
				}
				for _, s := range gids {
					g, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids %q: %w", s, err)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
				}
				if len(caps) > 0 {
					if p.Capabilities == nil {
						p.Capabilities = &specs.LinuxCapabilities{}
					}
					for _, cp := range caps {
						pc := p.Capabilities
						pc.Bounding, pc.Effective, pc.Permitted = append(pc.Bounding, cp), append(pc.Effective, cp), append(pc.Permitted, cp)
					}
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if apparmor != "" {
					p.ApparmorProfile = apparmor
				}
				if label != "" {
					p.SelinuxLabel = label
				}
				if p.Terminal && consoleSocket == "" && detach {
					return errors.New("cannot allocate tty if runc will detach without setting console socket")
				}
				subs, err := parseSubCgroups(cgroups)
				if err != nil {
					return err
				}
				opts := runtime.ExecOpts{Process: p, ConsoleSocket: consoleSocket, PidFile: pidFile,
					PreserveFDs: preserveFDs, IgnorePaused: ignorePaused, SubCgroups: subs}
				// A terminal with nobody to hand it to: fre-runc holds it
				// and relays it to its own stdio, as runc does.
				var tty *foregroundTTY
				if p.Terminal && consoleSocket == "" {
					if tty, err = newForegroundTTY(); err != nil {
						return err
					}
					opts.Console = tty.theirs
				}
				proc, err := c.Exec(context.Background(), opts)
				if err != nil {
					return err
				}
				if detach {
					return nil
				}
				waitTTY := func() {}
				if tty != nil {
					if waitTTY, err = tty.attachSized(p.ConsoleSize); err != nil {
						return err
					}
				}
				sysmon.Normal() // a long wait in waitid (see main)
				code, err := proc.Wait()
				waitTTY()
				if err != nil {
					return err
				}
				if code != 0 {
					return &exitError{code}
				}
				return nil
			}
			// As runc: exec's own failures exit 255, so that they are told
			// from the program's exit codes.
			return func(args []string) error {
				err := run(args)
				var ee *exitError
				if err == nil || errors.As(err, &ee) {
					return err
				}
				return &fatalError{code: 255, err: fmt.Errorf("exec failed: %w", err)}
			}
		}})
}

// parseSubCgroups reads exec's --cgroup values, runc's
// [<controller>[,<controller>...]:]<cgroup>, into ExecOpts.SubCgroups.
func parseSubCgroups(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	subs := map[string]string{}
	for _, v := range vals {
		ctrls, sub, found := strings.Cut(v, ":")
		if !found {
			ctrls, sub = "", v
		}
		if sub == "" {
			return nil, fmt.Errorf("--cgroup %q: no sub-cgroup", v)
		}
		for _, c := range strings.Split(ctrls, ",") {
			if _, dup := subs[c]; dup {
				return nil, fmt.Errorf("--cgroup %q: controller %q given twice", v, c)
			}
			subs[c] = sub
		}
	}
	return subs, nil
}

// defaultExecProcess is what `runc exec ID cmd...` runs: the container's
// own process settings with another program.
func defaultExecProcess(c *runtime.Container, args []string) *specs.Process {
	if p := c.ProcessSpec(); p != nil {
		cp := *p
		cp.Args = args
		cp.Terminal = false
		return &cp
	}
	return &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
}

var _ = unix.SIGKILL
