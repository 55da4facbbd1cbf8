package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/fre-runtime/fre/runtime/spawn"
)

func init() {
	register(&command{name: "ps", noReorder: true, usage: "<container-id> [ps options]", short: "ps displays the processes running inside a container", minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var format string
			stringFlag(fs, &format, "format,f", "table", "select one of: table or json")
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				cg := c.Cgroup()
				if cg == nil {
					return fmt.Errorf("ps %s: the container has no cgroup", args[0])
				}
				pids, err := cg.Pids()
				if err != nil {
					return err
				}
				if format == "json" {
					if pids == nil {
						pids = []int{}
					}
					return json.NewEncoder(os.Stdout).Encode(pids)
				}
				if format != "table" {
					return fmt.Errorf("invalid format option %q", format)
				}
				psArgs := args[1:]
				if len(psArgs) == 0 {
					psArgs = []string{"-ef"}
				}
				spawn.RestoreTHP() // ps gets the host's THP policy, not fre-runc's start's
				out, err := exec.Command("ps", psArgs...).Output()
				if err != nil {
					return fmt.Errorf("ps: %w", err)
				}
				lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
				pidCol := -1
				for i, h := range strings.Fields(lines[0]) {
					if h == "PID" {
						pidCol = i
					}
				}
				if pidCol < 0 {
					return fmt.Errorf("ps: no PID column in the output of ps %s", strings.Join(psArgs, " "))
				}
				in := map[int]bool{}
				for _, p := range pids {
					in[p] = true
				}
				fmt.Println(lines[0])
				for _, l := range lines[1:] {
					f := strings.Fields(l)
					if len(f) > pidCol {
						if p, err := strconv.Atoi(f[pidCol]); err == nil && in[p] {
							fmt.Println(l)
						}
					}
				}
				return nil
			}
		}})
}
