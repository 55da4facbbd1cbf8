// Command fre is FRE's function engine (research sections 4.3 and 5):
// function environment templates (package fret) become minimal function
// images built from the shared store, and the engine turns invocations
// into instances. fre-runc stays the lean OCI runtime; this is the rest.
//
// This increment has the templates' format:
//
//	fre template check FILE...   validate templates; print each as JSON
//	                             (what a build will use) or say why not
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fre-runtime/fre/fret"
)

const usage = `usage: fre template check FILE...

  template check   validate function environment templates (apiVersion %s)
                   and print each, resolved, as JSON; exit 1 if one is bad
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "template" || args[1] != "check" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(stdout, usage, fret.APIVersion)
			return 0
		}
		fmt.Fprintf(stderr, usage, fret.APIVersion)
		return 2
	}
	files := args[2:]
	if len(files) == 0 {
		fmt.Fprintln(stderr, "fre template check: no template given")
		return 2
	}
	status := 0
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	for _, f := range files {
		t, err := fret.Load(f)
		if err != nil {
			fmt.Fprintln(stderr, "fre:", err)
			status = 1
			continue
		}
		if err := enc.Encode(t); err != nil {
			fmt.Fprintln(stderr, "fre:", err)
			return 1
		}
	}
	return status
}
