package main

import (
	"errors"
	"flag"
)

// checkpoint and restore are runc commands FRE does not implement (no
// CRIU): they take runc's main flags and have help, and say so when run.
var errNoCheckpoint = errors.New("checkpoint/restore is not supported by fre-runc (no CRIU)")

func init() {
	for _, c := range []struct{ name, usage, short string }{
		{"checkpoint", "<container-id>", "checkpoint a running container (not supported)"},
		{"restore", "<container-id>", "restore a container from a previous checkpoint (not supported)"},
	} {
		register(&command{name: c.name, usage: c.usage, short: c.short, minArgs: 1, maxArgs: 1,
			flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
				var s string
				var b bool
				fs.StringVar(&s, "image-path", "", "path for saving criu image files")
				fs.StringVar(&s, "work-path", "", "path for saving work files and logs")
				fs.StringVar(&s, "parent-path", "", "path for previous criu image files in pre-dump")
				fs.BoolVar(&b, "leave-running", false, "leave the process running after checkpointing")
				fs.BoolVar(&b, "tcp-established", false, "allow open tcp connections")
				fs.BoolVar(&b, "ext-unix-sk", false, "allow external unix sockets")
				fs.BoolVar(&b, "shell-job", false, "allow shell jobs")
				fs.BoolVar(&b, "file-locks", false, "handle file locks, for safety")
				fs.StringVar(&s, "manage-cgroups-mode", "", "cgroups mode: soft|full|strict|ignore")
				fs.StringVar(&s, "bundle", "", "path to the root of the bundle directory (restore)")
				fs.StringVar(&s, "b", "", "path to the root of the bundle directory (restore)")
				fs.BoolVar(&b, "detach", false, "detach from the container's process (restore)")
				fs.BoolVar(&b, "d", false, "detach from the container's process (restore)")
				return func([]string) error { return errNoCheckpoint }
			}})
	}
}
