// Command fre is FRE's function engine (research sections 4.3 and 5):
// function environment templates (package fret) become minimal function
// images built from the shared store (package fnimage), and the engine
// turns invocations into instances. fre-runc stays the lean OCI runtime;
// this is the rest.
//
//	fre template check FILE...   validate templates; print each as JSON
//	                             (what a build will use) or say why not
//	fre build [flags] FILE       build a template's image: an OCI layout,
//	                             the tree in the store, a bundle
//	fre serve [flags]            the engine: a REST API that deploys
//	                             functions and invokes them over HTTP,
//	                             instances through containerd (package engine)
//	fre invoke NAME [BODY]       call a function through fre serve
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fre-runtime/fre/fnimage"
	"github.com/fre-runtime/fre/fret"
	"github.com/fre-runtime/fre/rootfs"
)

const usage = `usage: fre template check FILE...
       fre build [--layout DIR] [--bundle DIR] [--store DIR] [--cache DIR] [--json] FILE
       fre serve [--listen ADDR] [--containerd SOCK] [--runtime TYPE] [flags]
       fre invoke [--api ADDR] [--time] NAME [BODY]

  template check   validate function environment templates (apiVersion %s)
                   and print each, resolved, as JSON; exit 1 if one is bad
  build            build a template's function image: its layers (base,
                   libs, packages, code) as an OCI image layout (--layout,
                   importable with ctr images import), its tree in FRE's
                   shared store (--store, default $FRE_STORE_ROOT or
                   /var/lib/fre/store) and a runnable bundle on that tree
                   (--bundle); the same template and inputs give the same
                   digests
  serve            the function engine: deploy functions (an image in
                   containerd, or a template it builds), invoke them over
                   HTTP (POST /functions/NAME/invoke, /fn/NAME/...); cold
                   and warm instances through containerd's fre shim; see
                   fre serve -h and docs/function-contract.md
  invoke           call a function through fre serve and print its answer
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprintf(stdout, usage, fret.APIVersion)
		return 0
	case len(args) >= 2 && args[0] == "template" && args[1] == "check":
		return templateCheck(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "build":
		return build(args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "serve":
		return serve(args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "invoke":
		return invoke(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, usage, fret.APIVersion)
	return 2
}

func templateCheck(files []string, stdout, stderr io.Writer) int {
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

// openStore opens the shared store at root, else $FRE_STORE_ROOT, else
// rootfs.DefaultRoot.
func openStore(root string) (*rootfs.Store, error) {
	if root == "" {
		root = os.Getenv("FRE_STORE_ROOT")
	}
	if root == "" {
		root = rootfs.DefaultRoot
	}
	return rootfs.Open(rootfs.Options{Root: root})
}

func build(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fre build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	layout := fs.String("layout", "", "write the image as an OCI image layout in `DIR` (must not exist, or be empty)")
	bundle := fs.String("bundle", "", "write a runnable OCI bundle in `DIR`, on the store's tree")
	store := fs.String("store", "", "FRE's shared store (default $FRE_STORE_ROOT, else "+rootfs.DefaultRoot+")")
	noStore := fs.Bool("no-store", false, "write the layout only, no tree in the store")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cache := fs.String("cache", "", "the layer cache (default: build-cache beside the store; \"none\" for none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "fre build: want one template")
		return 2
	}
	t, err := fret.Load(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "fre:", err)
		return 1
	}
	o := fnimage.Options{Layout: *layout, Bundle: *bundle}
	if !*noStore {
		if o.Store, err = openStore(*store); err != nil {
			fmt.Fprintln(stderr, "fre build:", err)
			return 1
		}
		o.Cache = filepath.Join(filepath.Dir(filepath.Clean(o.Store.Root())), "build-cache")
	}
	switch *cache {
	case "":
	case "none":
		o.Cache = ""
	default:
		o.Cache = *cache
	}
	if o.Layout == "" && o.Store == nil {
		fmt.Fprintln(stderr, "fre build: nothing to write (--no-store and no --layout)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := fnimage.Build(ctx, t, o)
	if err != nil {
		fmt.Fprintf(stderr, "fre build: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	if *asJSON {
		out := map[string]any{"image": res.Ref, "manifest": res.Manifest, "config": res.Config,
			"layers": res.Layers, "size": res.Size, "seconds": res.Took.Seconds()}
		if res.Tree != nil {
			out["tree"] = res.Tree.ID
			out["treePath"] = res.Tree.Path()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return 0
	}
	fmt.Fprintf(stdout, "%s %s (%d bytes in %d layers, %.0f ms)\n", res.Ref, res.Manifest, res.Size, len(res.Layers), res.Took.Seconds()*1000)
	for _, l := range res.Layers {
		fmt.Fprintf(stdout, "  %-8s %s %9d bytes %5d files\n", l.Part, l.Digest, l.Size, l.Files)
	}
	if res.Tree != nil {
		fmt.Fprintf(stdout, "  store tree %s\n", res.Tree.Path())
	}
	return 0
}
