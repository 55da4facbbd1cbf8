// Command fre-runc is FRE's runc-compatible command line: the same commands,
// flags, bundle input, output formats and exit codes as runc, over the
// runtime library in package runtime.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"github.com/fre-runtime/fre/internal/sysmon"
)

// command is one subcommand. Each lives in its own file and registers
// itself in init, so the CLI stays a thin layer over the library.
type command struct {
	name  string
	usage string // "<container-id>" etc.
	short string
	// flags adds the command's flags to fs; it returns the run function
	// bound to the parsed values.
	flags func(fs *flag.FlagSet, g *globalOptions) func(args []string) error
	// minArgs/maxArgs bound the positional arguments (maxArgs < 0: any).
	minArgs, maxArgs int
	// noReorder: flags end at the first positional argument (runc's
	// SkipArgReorder: exec's and ps's arguments are another program's);
	// other commands take flags after their arguments too, as runc's
	// parser does ("update ID --memory M").
	noReorder bool
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// globalOptions are runc's global flags, plus FRE's own.
type globalOptions struct {
	Root          string
	Log           string
	LogFormat     string
	Debug         bool
	SystemdCgroup bool
	Rootless      string
	Criu          string
	NetnsPolicy   string
	ConfigFile    string
}

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// fatalError is an error reported like any other, with its own exit code.
type fatalError struct {
	code int
	err  error
}

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func main() {
	// A short-lived process: one P keeps the runtime from starting threads
	// it has no use for (hundreds of fre-runc start at once on a busy host).
	goruntime.GOMAXPROCS(1)
	// And its system monitor out of the way of the start path (see
	// internal/sysmon); whatever then waits for long calls sysmon.Normal.
	sysmon.Quiet()
	t0 := time.Now()
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	if os.Getenv("FRE_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "fre-trace main %d\n", time.Since(t0).Microseconds())
	}
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globalOptions{}
	gfs := flag.NewFlagSet("fre-runc", flag.ContinueOnError)
	gfs.SetOutput(stderr)
	gfs.StringVar(&g.Root, "root", defaultRoot(), "root directory for storage of container state")
	gfs.StringVar(&g.Log, "log", "", "set the log file to write logs to (default is '/dev/stderr')")
	gfs.StringVar(&g.LogFormat, "log-format", "text", "set the log format ('text' (default), or 'json')")
	gfs.BoolVar(&g.Debug, "debug", false, "enable debug logging")
	gfs.BoolVar(&g.SystemdCgroup, "systemd-cgroup", false, "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\"")
	gfs.StringVar(&g.Rootless, "rootless", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')")
	gfs.StringVar(&g.Criu, "criu", "criu", "path to the criu binary (checkpoint/restore is not supported)")
	gfs.StringVar(&g.NetnsPolicy, "netns-policy", "", "what a network namespace request without a path gets: host, new or pool (default from the config file, else host)")
	gfs.StringVar(&g.ConfigFile, "config", "", "FRE configuration file (default /etc/fre/config.json if present)")
	version := gfs.Bool("version", false, "print the version")
	gfs.BoolVar(version, "v", false, "print the version")
	help := gfs.Bool("help", false, "show help")
	gfs.BoolVar(help, "h", false, "show help")
	gfs.Usage = func() { usage(stderr) }
	if err := gfs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "fre-runc version %s\ncommit: %s\nspec: %s\ngo: %s\n", Version, Commit, specVersion(), goruntime.Version())
		return 0
	}
	rest := gfs.Args()
	if *help || len(rest) == 0 {
		usage(stdout)
		return 0
	}
	if err := setupLogging(g, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c, ok := commands[rest[1]]; ok {
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				c.flags(fs, g)
				commandHelp(stdout, c, fs)
				return 0
			}
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fatalf(g, "No help topic for '%s'", name)
		return 1
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	runFn := c.flags(fs, g)
	helped := false
	fs.Usage = func() {
		// -h/--help: the command's help on stdout, as runc's (urfave/cli)
		// layout; a bad flag: the same on stderr after the error.
		w := stderr
		for _, a := range rest[1:] {
			if a == "-h" || a == "--help" || a == "-help" {
				w, helped = stdout, true
			}
		}
		commandHelp(w, c, fs)
	}
	cargs, err := parseInterspersed(fs, rest[1:], !c.noReorder)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) || helped {
			return 0
		}
		return 1
	}
	if len(cargs) < c.minArgs || (c.maxArgs >= 0 && len(cargs) > c.maxArgs) {
		fatalf(g, "%s: %q requires %s", "fre-runc", name, argCountText(c))
		return 1
	}
	err = runFn(cargs)
	closeRuntimes()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fatalf(g, "%v", err)
		var fe *fatalError
		if errors.As(err, &fe) {
			return fe.code
		}
		return 1
	}
	return 0
}

// parseInterspersed parses flags that may come before or after positional
// arguments (urfave/cli, which runc uses, accepts "kill ID 9" and
// "--all" before it; containerd's go-runc puts flags first). A "--" ends
// flag parsing; everything after the first positional of commands taking
// a program (exec) is handled by the command itself.
func parseInterspersed(fs *flag.FlagSet, args []string, reorder bool) ([]string, error) {
	if !reorder {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return fs.Args(), nil
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func argCountText(c *command) string {
	switch {
	case c.minArgs == c.maxArgs && c.minArgs == 1:
		return "exactly 1 argument"
	case c.minArgs == c.maxArgs:
		return fmt.Sprintf("exactly %d arguments", c.minArgs)
	case c.maxArgs < 0:
		return fmt.Sprintf("a minimum of %d argument(s)", c.minArgs)
	default:
		return fmt.Sprintf("between %d and %d arguments", c.minArgs, c.maxArgs)
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "NAME:\n   fre-runc - Open Container Initiative runtime (FRE's, a drop-in replacement for runc)\n\nUSAGE:\n   fre-runc [global options] command [command options] [arguments...]\n\nCOMMANDS:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "   %-10s %s\n", n, commands[n].short)
	}
	fmt.Fprintf(w, "\nGLOBAL OPTIONS:\n   --root, --log, --log-format, --debug, --systemd-cgroup, --netns-policy, --config\n")
}

// commandHelp prints a command's help in runc's layout (NAME, USAGE,
// OPTIONS), each option with its aliases.
func commandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "NAME:\n   fre-runc %s - %s\n\nUSAGE:\n   fre-runc %s [command options] %s\n", c.name, c.short, c.name, c.usage)
	type opt struct {
		names []string
		usage string
	}
	var opts []*opt
	byUsage := map[string]*opt{}
	fs.VisitAll(func(f *flag.Flag) {
		n := "--" + f.Name
		if len(f.Name) == 1 {
			n = "-" + f.Name
		}
		if o := byUsage[f.Usage]; o != nil {
			o.names = append(o.names, n)
			return
		}
		o := &opt{names: []string{n}, usage: f.Usage}
		byUsage[f.Usage] = o
		opts = append(opts, o)
	})
	if len(opts) == 0 {
		return
	}
	fmt.Fprintf(w, "\nOPTIONS:\n")
	for _, o := range opts {
		sort.Slice(o.names, func(i, j int) bool { return len(o.names[i]) > len(o.names[j]) })
		fmt.Fprintf(w, "   %s\t%s\n", strings.Join(o.names, ", "), o.usage)
	}
}

func defaultRoot() string {
	if v := os.Getenv("XDG_RUNTIME_DIR"); v != "" && os.Geteuid() != 0 {
		return v + "/fre"
	}
	return "/run/fre"
}

// boolFlag registers a flag under several names ("detach", "d").
func boolFlag(fs *flag.FlagSet, p *bool, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.BoolVar(p, strings.TrimSpace(n), false, usage)
	}
}

func stringFlag(fs *flag.FlagSet, p *string, names, def, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.StringVar(p, strings.TrimSpace(n), def, usage)
	}
}
