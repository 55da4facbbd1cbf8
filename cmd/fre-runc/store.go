package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fre-runtime/fre/rootfs"
	"github.com/fre-runtime/fre/runtime"
)

// storeOptions are the flags every "store" subcommand takes.
type storeOptions struct {
	dir    string
	format string
}

func init() {
	register(&command{name: "store", noReorder: true, usage: "import|ls|df|gc|verify [options] [arguments...]",
		short: "manage FRE's shared file store (import, ls, df, gc, verify)", minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet, g *globalOptions) func([]string) error {
			o := &storeOptions{}
			fs.StringVar(&o.dir, "store", rootfs.DefaultRoot, "store directory")
			fs.StringVar(&o.format, "format", "text", "output format: text or json")
			return func(args []string) error { return runStore(o, args, os.Stdout, os.Stderr) }
		}})
}

func runStore(o *storeOptions, args []string, stdout, stderr io.Writer) error {
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("store "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dir, "store", o.dir, "store directory")
	fs.StringVar(&o.format, "format", o.format, "output format: text or json")
	var lowerdirs, quiet bool
	var ref string
	var keep rootfs.GCOptions
	var keepSize string
	if sub == "gc" {
		fs.IntVar(&keep.KeepUnused, "keep-unused", 0, "keep this many unused trees, the most recently used (the import cache)")
		fs.DurationVar(&keep.MaxAge, "max-age", 0, "with --keep-unused: only those used within this long")
		fs.StringVar(&keepSize, "max-unused-size", "", "with --keep-unused: only while their sizes add up to at most this (e.g. 2Gi)")
	}
	if sub == "import" {
		fs.BoolVar(&lowerdirs, "lowerdirs", false, "the directories are overlay lowerdirs, top first")
		fs.StringVar(&ref, "ref", "", "hold the tree for this container ID (see store gc)")
		fs.BoolVar(&quiet, "quiet", false, "no progress output")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if keepSize != "" {
		n, err := runtime.ParseSize(keepSize)
		if err != nil {
			return fmt.Errorf("store gc --max-unused-size: %w", err)
		}
		keep.MaxUnusedSize = n
	}
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("store %s: unknown format %q (text or json)", sub, o.format)
	}
	s, err := rootfs.Open(rootfs.Options{Root: o.dir, Warnf: func(f string, a ...any) {
		fmt.Fprintf(stderr, "warning: "+f+"\n", a...)
	}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch sub {
	case "import":
		return storeImport(ctx, s, o, args, lowerdirs, ref, quiet, stdout, stderr)
	case "ls", "list":
		return storeLs(ctx, s, o, stdout)
	case "df":
		return storeDF(ctx, s, o, stdout)
	case "gc":
		return storeGC(ctx, s, o, keep, stdout)
	case "verify":
		return storeVerify(ctx, s, o, stdout)
	}
	return fmt.Errorf("store: unknown subcommand %q (import, ls, df, gc, verify)", sub)
}

func storeImport(ctx context.Context, s *rootfs.Store, o *storeOptions, args []string, lowerdirs bool, ref string, quiet bool, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("store import: needs a directory or layer tars")
	}
	dirs := 0
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return fmt.Errorf("store import: %w", err)
		}
		if fi.IsDir() {
			dirs++
		}
	}
	opts := rootfs.ImportOptions{Ref: ref}
	if !quiet && isTerminal(stderr) {
		start := time.Now()
		opts.Progress = func(done, total int64) {
			if time.Since(start) < 500*time.Millisecond && done < total {
				return
			}
			pct := 100.0
			if total > 0 {
				pct = float64(done) * 100 / float64(total)
			}
			fmt.Fprintf(stderr, "\rimporting: %5.1f%% (%s / %s)", pct, humanBytes(done), humanBytes(total))
			if done >= total {
				fmt.Fprintln(stderr)
			}
		}
	}
	var t *rootfs.Tree
	var err error
	start := time.Now()
	switch {
	case lowerdirs && dirs == len(args):
		t, err = s.ImportLowerDirs(ctx, args, opts)
	case lowerdirs:
		return errors.New("store import --lowerdirs: every argument must be a directory")
	case dirs == 1 && len(args) == 1:
		t, err = s.ImportDir(ctx, args[0], opts)
	case dirs == 0:
		t, err = s.ImportLayers(ctx, args, opts)
	default:
		return errors.New("store import: give one directory, or layer tars (bottom first), or --lowerdirs with directories")
	}
	if err != nil {
		return err
	}
	if o.format == "json" {
		return storeJSON(stdout, struct {
			*rootfs.Tree
			Path    string  `json:"path"`
			Cached  bool    `json:"cached"`
			Seconds float64 `json:"seconds"`
		}{t, t.Path(), t.Cached, time.Since(start).Seconds()})
	}
	how := "imported"
	if t.Cached {
		how = "cached"
	}
	fmt.Fprintf(stdout, "%s %s: %d files, %d dirs, %s in %s\n%s\n", how, t.ID, t.Files, t.Dirs,
		humanBytes(t.LogicalSize), time.Since(start).Round(time.Millisecond), t.Path())
	return nil
}

func storeLs(ctx context.Context, s *rootfs.Store, o *storeOptions, stdout io.Writer) error {
	trees, err := s.List(ctx)
	if err != nil {
		return err
	}
	if o.format == "json" {
		if trees == nil {
			trees = []*rootfs.Tree{}
		}
		return storeJSON(stdout, trees)
	}
	w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "TREE\tKIND\tFILES\tSIZE\tREFS\tCREATED\tSOURCE")
	for _, t := range trees {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", t.ID[:min(12, len(t.ID))], t.Kind, t.Files,
			humanBytes(t.LogicalSize), len(t.Refs), t.Created.Local().Format(time.DateTime), strings.Join(t.Sources, " "))
	}
	return w.Flush()
}

func storeDF(ctx context.Context, s *rootfs.Store, o *storeOptions, stdout io.Writer) error {
	df, err := s.DF(ctx)
	if err != nil {
		return err
	}
	if o.format == "json" {
		return storeJSON(stdout, df)
	}
	w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(w, "trees\t%d\n", df.Trees)
	fmt.Fprintf(w, "objects\t%d\n", df.Objects)
	fmt.Fprintf(w, "logical size\t%s\t(sum of the trees' files)\n", humanBytes(df.LogicalSize))
	fmt.Fprintf(w, "stored size\t%s\t(sum of the objects; %s on disk)\n", humanBytes(df.StoredSize), humanBytes(df.DiskUsage))
	fmt.Fprintf(w, "dedup ratio\t%.2fx\n", df.DedupRatio)
	fmt.Fprintf(w, "live trees\t%d\t(held by a container or an image)\n", df.LiveTrees)
	fmt.Fprintf(w, "unused trees\t%d\t(%s; the import cache)\n", df.UnusedTrees, humanBytes(df.UnusedLogical))
	fmt.Fprintf(w, "reclaimable\t%s\t(%d objects no live tree links, %s on disk: store gc)\n", humanBytes(df.Reclaimable), df.ReclaimableObjects, humanBytes(df.ReclaimableDisk))
	return w.Flush()
}

func storeGC(ctx context.Context, s *rootfs.Store, o *storeOptions, keep rootfs.GCOptions, stdout io.Writer) error {
	r, err := s.GCWith(ctx, keep)
	if err != nil {
		return err
	}
	if o.format == "json" {
		return storeJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "removed %d trees, %d objects (%s), %d stale index entries, %d crashed imports; kept %d unused trees\n",
		r.Trees, r.Objects, humanBytes(r.Bytes), r.IndexEntries, r.IngestLeft, r.Kept)
	return nil
}

func storeVerify(ctx context.Context, s *rootfs.Store, o *storeOptions, stdout io.Writer) error {
	r, err := s.Verify(ctx)
	if err != nil {
		return err
	}
	if o.format == "json" {
		if r.Corrupt == nil {
			r.Corrupt = []rootfs.Corruption{}
		}
		if err := storeJSON(stdout, r); err != nil {
			return err
		}
	} else {
		for _, c := range r.Corrupt {
			fmt.Fprintf(stdout, "CORRUPT %s: %s\n", c.Path, c.Reason)
		}
		fmt.Fprintf(stdout, "checked %d objects (%s): %d corrupt\n", r.Objects, humanBytes(r.Bytes), len(r.Corrupt))
	}
	if len(r.Corrupt) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func storeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
