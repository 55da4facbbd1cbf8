package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/netns"
)

// poolOptions are the flags of the "pool" subcommands.
type poolOptions struct {
	parent string
	size   int
	format string
	all    bool
}

func init() {
	register(&command{name: "pool", noReorder: true, usage: "fill|status|drain|gc [options]",
		short: "manage the cgroup pool (fill, status, drain, gc)", minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			o := &poolOptions{}
			poolFlags(fs, o)
			return func(args []string) error { return runPool(g, o, args, os.Stdout, os.Stderr) }
		}})
}

func poolFlags(fs *flag.FlagSet, o *poolOptions) {
	fs.StringVar(&o.parent, "parent", o.parent, "parent cgroup (default: every configured and seen parent)")
	fs.IntVar(&o.size, "size", o.size, "idle cgroups per parent (default: the pool's size)")
	fs.StringVar(&o.format, "format", o.format, "output format: table or json (status, gc)")
	fs.BoolVar(&o.all, "all", o.all, "gc: also remove pool cgroups no pool on this host registered (an older FRE's)")
}

func runPool(g *globalOptions, o *poolOptions, args []string, stdout, stderr io.Writer) error {
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("pool "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	poolFlags(fs, o) // flags may also follow the subcommand
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("pool %s: unexpected arguments %v", sub, fs.Args())
	}
	if o.format == "" {
		o.format = "table"
	}
	if o.format != "table" && o.format != "text" && o.format != "json" {
		return fmt.Errorf("pool %s: unknown format %q (table or json)", sub, o.format)
	}
	// The pools' directories are the runtime's settings (config file,
	// $FRE_CGPOOL_DIR, $FRE_NETNS_POOL_DIR; host-wide by default).
	rt, err := openRuntime(g)
	if err != nil {
		return err
	}
	p, err := cgpool.Open(cgpool.Config{StateDir: rt.Options.CgroupPoolDir, Size: o.size, Enabled: true})
	if err != nil {
		return err
	}
	defer p.Close()
	netDir := rt.Options.NetnsPoolDir
	switch sub {
	case "fill":
		if err := p.Fill(o.parent, o.size); err != nil {
			return err
		}
		// The netns pool is filled when the netns policy is pool.
		if rt.Options.NetnsPolicy == netns.PolicyPool {
			return rt.NetnsPool().Fill(rt.Options.NetnsPoolSize)
		}
		return nil
	case "drain":
		if err := p.Drain(o.parent); err != nil {
			return err
		}
		// The netns pool goes too: every pin is removed (a running
		// container keeps its namespace as long as it runs).
		if _, err := os.Stat(netDir); err == nil {
			return netns.Purge(netDir)
		}
		return nil
	case "status":
		st, err := p.Status()
		if err != nil {
			return err
		}
		return printPoolStatus(stdout, st, o.format)
	case "gc":
		res, err := p.GC(o.all)
		if err != nil {
			return err
		}
		if o.format == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		fmt.Fprintf(stdout, "removed %d cgroup(s) of pools that are gone", res.Removed)
		if len(res.Owners) > 0 {
			fmt.Fprintf(stdout, "; dropped %d registration(s)", len(res.Owners))
		}
		fmt.Fprintln(stdout)
		for _, b := range res.Busy {
			fmt.Fprintf(stdout, "left (busy): %s\n", b)
		}
		return nil
	}
	return fmt.Errorf("pool: unknown subcommand %q (fill, status, drain, gc)", sub)
}

func printPoolStatus(w io.Writer, st cgpool.Status, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	state := "on"
	if !st.Enabled {
		state = "off"
	}
	if st.Note != "" {
		state += " (" + st.Note + ")"
	}
	fmt.Fprintf(w, "pool: %s, cgroups %s, size %d per parent\n", state, st.Mode, st.Size)
	fmt.Fprintf(w, "hits %d, misses %d, claimed %d, released %d, removed %d\n\n", st.Hits, st.Misses, st.Claimed, st.Release, st.Removed)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PARENT\tIDLE\tIN USE")
	for _, ps := range st.Parents {
		inUse := "-"
		if ps.Named {
			inUse = fmt.Sprint(ps.InUse)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", ps.Parent, ps.Idle, inUse)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Every pool's cgroups on the host, with their owners.
	if len(st.Host) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ncgroups of every pool on this host:")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PARENT\tTAG\tIDLE\tCGROUPS\tOWNER\tSTATE")
	for _, e := range st.Host {
		owner, state := e.Owner, e.State
		if owner == "" {
			owner = "-"
		}
		if e.Self {
			state += " (this pool)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", e.Parent, e.Tag, e.Idle, len(e.Names), owner, state)
	}
	return tw.Flush()
}
