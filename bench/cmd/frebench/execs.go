package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fre-runtime/fre/internal/testutil"
)

// execLatency (issue 3): one running container per runtime (runc's default
// spec running `sleep`), then n `exec ID /bin/true` one after another,
// runtimes interleaved in rounds of ten.
func execLatency(e *env) error {
	n := e.opts.n
	dir := filepath.Join(e.dir, "bundle-exec")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	spec, err := testutil.ReadSpec(e.bundle)
	if err != nil {
		return err
	}
	spec.Process.Args = []string{"/bin/sleep", "100000"}
	if err := testutil.WriteSpec(dir, spec); err != nil {
		return err
	}
	fmt.Printf("\n== exec latency: `exec ID /bin/true` into a running busybox container, %d per runtime\n", n)
	lat := map[string][]time.Duration{}
	var rows [][]string
	for _, b := range e.benches {
		d, err := b.r.execs(dir, e.id(b.name), n)
		if err != nil {
			fmt.Printf("%-16s FAILED: %s\n", b.name, firstLine(err.Error()))
		}
		lat[b.name] = d
		for i, x := range d {
			rows = append(rows, []string{b.name, strconv.Itoa(i), ms(float64(x) / 1e6)})
		}
	}
	fmt.Printf("%-16s %6s %9s %9s %9s\n", "runtime", "n", "mean ms", "p50 ms", "p99 ms")
	sums := map[string]summary{}
	for _, b := range e.benches {
		s := summarize(lat[b.name])
		sums[b.name] = s
		fmt.Printf("%-16s %6d %9.2f %9.2f %9.2f\n", b.name, s.n, s.mean, s.p50, s.p99)
	}
	fmt.Println("ratios of the means (issue 3 sets no target):")
	for _, fre := range []string{"fre-runc", "fre-runc-shared"} {
		for _, other := range []string{"crun", "runc"} {
			f, o := sums[fre], sums[other]
			if f.n > 0 && o.n > 0 && o.mean > 0 {
				fmt.Printf("  %s/%s %.3fx\n", fre, other, f.mean/o.mean)
			}
		}
	}
	return writeCSV(e.opts.results, "exec-latency.csv", []string{"runtime", "i", "ms"}, rows)
}
