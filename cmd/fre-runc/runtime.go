package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fre-runtime/fre/internal/quickjson"
	"github.com/fre-runtime/fre/netns"
	"github.com/fre-runtime/fre/runtime"
)

// fileConfig is FRE's configuration file (default /etc/fre/config.json).
type fileConfig struct {
	runtime.Options
}

const defaultConfigFile = "/etc/fre/config.json"

// opened runtimes are closed when the command ends (background netns
// destruction is waited for).
var opened []*runtime.Runtime

func closeRuntimes() {
	for _, rt := range opened {
		rt.Close()
	}
	opened = nil
}

// openRuntime builds the runtime from the config file and global flags.
func openRuntime(g *globalOptions) (*runtime.Runtime, error) {
	var fc fileConfig
	path := g.ConfigFile
	if path == "" {
		path = defaultConfigFile
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := quickjson.Unmarshal(b, &fc); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist) && g.ConfigFile == "":
	default:
		return nil, fmt.Errorf("config file: %w", err)
	}
	if g.NetnsPolicy != "" {
		p, err := netns.ParsePolicy(g.NetnsPolicy)
		if err != nil {
			return nil, fmt.Errorf("--netns-policy: %w", err)
		}
		fc.NetnsPolicy = p
	}
	if g.SystemdCgroup {
		fc.SystemdCgroup = true
	}
	rt, err := runtime.New(g.Root, fc.Options)
	if err != nil {
		return nil, err
	}
	opened = append(opened, rt)
	rt.Warn = func(msg string) {
		logf("warning", "%s", msg)
		if !logIsStderr {
			fmt.Fprintln(errOut, "warning:", msg)
		}
	}
	if g.Debug {
		rt.Trace = func(phase string, d time.Duration) {
			debugf("%s: %s", phase, d)
			// runc's own lines for these steps, which tools and runc's
			// tests look for in a --debug log.
			for _, l := range runcDebugLines[phase] {
				debugf("%s", l)
			}
		}
	}
	// FRE_TRACE=1: phase timings on stderr, for the start-path work.
	if os.Getenv("FRE_TRACE") != "" {
		rt.Trace = func(phase string, d time.Duration) {
			fmt.Fprintf(os.Stderr, "fre-trace %s %d\n", phase, d.Microseconds())
		}
	}
	if failpoint != "" {
		armFailpoint(rt)
	}
	return rt, nil
}

// runcDebugLines are what runc logs with --debug where FRE's phases end.
var runcDebugLines = map[string][]string{
	"clone":         {"nsexec container setup"},
	"child set-up":  {"child process in init()", "init: closing the pipe to signal completion"},
	"exec: spawned": {"nsexec container setup"},
	"exec: set up":  {"child process in init()", "setns_init: about to exec"},
}
