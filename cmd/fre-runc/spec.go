package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fre-runtime/fre/runtime"
)

func init() {
	register(&command{name: "spec", short: "create a new specification file", minArgs: 0, maxArgs: 0,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			var bundle string
			var rootless bool
			stringFlag(fs, &bundle, "bundle,b", "", "path to the root of the bundle directory")
			fs.BoolVar(&rootless, "rootless", false, "generate a configuration for a rootless container")
			return func([]string) error {
				if rootless {
					return fmt.Errorf("spec --rootless: %w", runtime.ErrNotSupported)
				}
				path := filepath.Join(bundle, "config.json")
				if _, err := os.Stat(path); err == nil {
					return errors.New("File config.json exists. Remove it first")
				}
				b, err := json.MarshalIndent(runtime.DefaultSpec(), "", "\t")
				if err != nil {
					return err
				}
				return os.WriteFile(path, append(b, '\n'), 0o666)
			}
		}})
	register(&command{name: "features", short: "show the enabled features", minArgs: 0, maxArgs: 0,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			return func([]string) error { return printJSON(runtime.Features()) }
		}})
}
