// Command freplot turns the figures `make bench` measures into CSV tables,
// PNG plots and the ratios issue 4 asks for. It measures nothing itself:
// its one job is reading what the benchmarks wrote under results/.
//
//	freplot [-results DIR] figures   the Go benchmarks' output (go-bench.txt):
//	                                 fig1-netns.{csv,png}, fig2-cgroup.{csv,png},
//	                                 and reuse/create, pooled/new netns ratios
//	freplot [-results DIR] runs      frebench's summaries: run-concurrent.png,
//	                                 run-sequential.png
//	freplot [-results DIR] all       both
//
// A figure whose input is missing is reported and skipped, so a partial
// bench run still gets every plot it has data for; the exit status is
// non-zero only when nothing could be produced or a write failed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	results := flag.String("results", "results", "directory the benchmarks wrote to, and where figures go")
	goBench := flag.String("go-bench", "", "Go benchmark output to read (default: <results>/go-bench.txt)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: freplot [flags] figures|runs|soak|all")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *goBench == "" {
		*goBench = filepath.Join(*results, "go-bench.txt")
	}
	var err error
	switch flag.Arg(0) {
	case "figures":
		err = figures(*goBench, *results)
	case "runs":
		err = runs(*results)
	case "soak":
		err = soak(*results)
	case "all":
		err = errors.Join(figures(*goBench, *results), runs(*results))
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "freplot:", err)
		os.Exit(1)
	}
}
