package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/fre-runtime/fre/runtime"
)

func isNotExist(err error) bool { return errors.Is(err, runtime.ErrNotExist) }

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func init() {
	register(&command{name: "state", usage: "<container-id>", short: "output the state of a container", minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func(args []string) error {
				c, err := load(g, args[0])
				if err != nil {
					return err
				}
				return printJSON(c.State())
			}
		}})
	register(&command{name: "list", usage: "", short: "lists containers started by fre-runc with the given root", minArgs: 0, maxArgs: 0,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var format string
			var quiet bool
			stringFlag(fs, &format, "format,f", "table", "select one of: table or json")
			boolFlag(fs, &quiet, "quiet,q", "display only container IDs")
			return func([]string) error {
				rt, err := openRuntime(g)
				if err != nil {
					return err
				}
				cs, err := rt.List()
				if err != nil {
					return err
				}
				if quiet {
					for _, c := range cs {
						fmt.Println(c.ID())
					}
					return nil
				}
				states := make([]*runtime.State, 0, len(cs))
				for _, c := range cs {
					states = append(states, c.State())
				}
				switch format {
				case "json":
					b, err := json.Marshal(states)
					if err != nil {
						return err
					}
					if len(states) == 0 {
						b = []byte("null")
					}
					fmt.Println(string(b))
					return nil
				case "table":
					w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
					fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
					for _, s := range states {
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
					}
					return w.Flush()
				}
				return fmt.Errorf("invalid format option %q", format)
			}
		}})
}
