package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// point is one variant at one concurrency of a figure, in milliseconds.
type point struct {
	variant           string
	c                 int
	p50, p99, mean    float64
	batch             float64 // fig1: wall time of the whole batch
	hasMean, hasBatch bool
}

// figure is the data of one of the research's figures.
type figure struct {
	name, title string
	variants    []string // in plotting order
	points      []point
	failures    []benchFailure
}

func (f *figure) get(variant string, c int) (point, bool) {
	for _, p := range f.points {
		if p.variant == variant && p.c == c {
			return p, true
		}
	}
	return point{}, false
}

func (f *figure) concurrencies() []int {
	seen := map[int]bool{}
	var cs []int
	for _, p := range f.points {
		if !seen[p.c] {
			seen[p.c] = true
			cs = append(cs, p.c)
		}
	}
	sort.Ints(cs)
	return cs
}

// failed returns the failure recorded for variant at c, if any.
func (f *figure) failed(variant string, c int) (benchFailure, bool) {
	for _, x := range f.failures {
		if strings.HasSuffix(x.name, fmt.Sprintf("/c=%d/%s", c, variant)) ||
			(variant == fig2Variant(x.name) && strings.HasSuffix(x.name, fmt.Sprintf("/c=%d", c))) {
			return x, true
		}
	}
	return benchFailure{}, false
}

// figures reads the Go benchmark output and writes figures 1 and 2.
func figures(goBench, dir string) error {
	fh, err := os.Open(goBench)
	if err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	defer fh.Close()
	res, fails, err := parseBench(fh)
	if err != nil {
		return fmt.Errorf("figures: read %s: %w", goBench, err)
	}
	fig1, fig2 := netnsFigure(res, fails), cgroupFigure(res, fails)
	var wrote int
	for _, f := range []*figure{fig2, fig1} {
		if len(f.points) == 0 {
			fmt.Printf("\n== %s: no results in %s; skipped\n", f.title, goBench)
			printFailures(f)
			continue
		}
		if err := writeFigure(dir, f); err != nil {
			return err
		}
		wrote++
	}
	if len(fig2.points) > 0 {
		printFig2(fig2)
	}
	if len(fig1.points) > 0 {
		printFig1(fig1)
	}
	if wrote == 0 {
		return fmt.Errorf("figures: %s: %w", goBench, ErrNoData)
	}
	return nil
}

// Figure 2: cgpool's BenchmarkCgroupCreate and BenchmarkCgroupPoolClaim,
// sub-benchmarks c=N, metrics ms/op (mean), p50-ms, p99-ms.
const (
	fig2Create = "create"
	fig2Reuse  = "reuse"
)

func fig2Variant(name string) string {
	switch {
	case strings.HasPrefix(name, "BenchmarkCgroupCreate/"):
		return fig2Create
	case strings.HasPrefix(name, "BenchmarkCgroupPoolClaim/"):
		return fig2Reuse
	}
	return ""
}

func cgroupFigure(res []benchResult, fails []benchFailure) *figure {
	f := &figure{name: "fig2-cgroup", title: "figure 2: cgroup create vs reuse (cgpool)",
		variants: []string{fig2Create, fig2Reuse}}
	for _, r := range res {
		v := fig2Variant(r.name)
		c, ok := concurrencyOf(r.name)
		if v == "" || !ok {
			continue
		}
		p := point{variant: v, c: c}
		p.p50, _ = metric(r.metrics, "p50-ms", "p50-ms/op")
		p.p99, _ = metric(r.metrics, "p99-ms", "p99-ms/op")
		// ns/op here is a whole round of c operations; ms/op is per op.
		p.mean, p.hasMean = metric(r.metrics, "ms/op")
		f.points = append(f.points, p)
	}
	for _, x := range fails {
		if fig2Variant(x.name) != "" {
			f.failures = append(f.failures, x)
		}
	}
	return f
}

// Figure 1: netns's BenchmarkFigure1/c=N/<variant>, metrics p50-ms/op,
// p99-ms/op, batch-ms and ns/op (the mean per op).
func netnsFigure(res []benchResult, fails []benchFailure) *figure {
	f := &figure{name: "fig1-netns", title: "figure 1: clone with namespaces (netns)"}
	seen := map[string]bool{}
	for _, r := range res {
		rest, ok := strings.CutPrefix(r.name, "BenchmarkFigure1/")
		if !ok {
			continue
		}
		cs, v, ok := strings.Cut(rest, "/")
		c, err := strconv.Atoi(strings.TrimPrefix(cs, "c="))
		if !ok || err != nil {
			continue
		}
		if !seen[v] {
			seen[v] = true
			f.variants = append(f.variants, v)
		}
		p := point{variant: v, c: c}
		p.p50, _ = metric(r.metrics, "p50-ms/op", "p50-ms")
		p.p99, _ = metric(r.metrics, "p99-ms/op", "p99-ms")
		if ns, ok := metric(r.metrics, "ns/op"); ok {
			p.mean, p.hasMean = ns/1e6, true
		}
		p.batch, p.hasBatch = metric(r.metrics, "batch-ms")
		f.points = append(f.points, p)
	}
	for _, x := range fails {
		rest, ok := strings.CutPrefix(x.name, "BenchmarkFigure1/")
		if !ok {
			if x.name == "BenchmarkFigure1" && len(f.points) == 0 {
				f.failures = append(f.failures, x) // e.g. skipped: not root
			}
			continue
		}
		f.failures = append(f.failures, x)
		if _, v, ok := strings.Cut(rest, "/"); ok && !seen[v] {
			seen[v] = true
			f.variants = append(f.variants, v)
		}
	}
	return f
}

// concurrencyOf reads the N of a ".../c=N" sub-benchmark name.
func concurrencyOf(name string) (int, bool) {
	i := strings.LastIndex(name, "/c=")
	if i < 0 {
		return 0, false
	}
	c, err := strconv.Atoi(name[i+3:])
	return c, err == nil
}

func writeFigure(dir string, f *figure) error {
	header := []string{"variant", "concurrency", "p50_ms", "p99_ms", "mean_ms"}
	batch := f.name == "fig1-netns"
	if batch {
		header = append(header, "batch_ms")
	}
	var rows [][]string
	for _, v := range f.variants {
		for _, c := range f.concurrencies() {
			p, ok := f.get(v, c)
			if !ok {
				continue
			}
			row := []string{v, strconv.Itoa(c), msStr(p.p50), msStr(p.p99), optMs(p.mean, p.hasMean)}
			if batch {
				row = append(row, optMs(p.batch, p.hasBatch))
			}
			rows = append(rows, row)
		}
	}
	if err := writeCSV(filepath.Join(dir, f.name+".csv"), header, rows); err != nil {
		return err
	}
	return lineFigure(filepath.Join(dir, f.name+".png"), f)
}

func printFailures(f *figure) {
	for _, x := range f.failures {
		fmt.Printf("  %s %s: %s\n", x.verdict, x.name, x.msg)
	}
}

// printFig2 prints reuse against create at each concurrency: the research
// reports creation slowing down under concurrency (a kernel-global mutex)
// while reuse stays well under a millisecond.
func printFig2(f *figure) {
	fmt.Printf("\n== %s, ms per operation; ratio = reuse/create (lower is better)\n", f.title)
	fmt.Printf("%6s  %9s %9s %7s   %9s %9s %7s   %9s %9s %7s\n", "conc",
		"create50", "reuse50", "ratio", "create99", "reuse99", "ratio", "createAvg", "reuseAvg", "ratio")
	under := true
	for _, c := range f.concurrencies() {
		cr, okC := f.get(fig2Create, c)
		ru, okR := f.get(fig2Reuse, c)
		switch {
		case okC && okR:
			fmt.Printf("%6d  %9.3f %9.3f %7s   %9.3f %9.3f %7s   %9.3f %9.3f %7s\n", c,
				cr.p50, ru.p50, ratio(ru.p50, cr.p50), cr.p99, ru.p99, ratio(ru.p99, cr.p99),
				cr.mean, ru.mean, ratio(ru.mean, cr.mean))
		default:
			fmt.Printf("%6d  %s\n", c, missing(f, c, okC, okR, fig2Create, fig2Reuse))
		}
		if okR && ru.p50 >= 1 {
			under = false
		}
	}
	verdict := "yes"
	if !under {
		verdict = "NO"
	}
	fmt.Printf("reuse p50 under 1 ms at every concurrency: %s\n", verdict)
	printFailures(f)
}

// printFig1 prints every variant, then a pooled netns against a new one.
func printFig1(f *figure) {
	fmt.Printf("\n== %s, ms per clone\n", f.title)
	fmt.Printf("%6s  %-42s %9s %9s %9s %9s\n", "conc", "variant", "p50", "p99", "mean", "batch")
	for _, c := range f.concurrencies() {
		for _, v := range f.variants {
			if p, ok := f.get(v, c); ok {
				fmt.Printf("%6d  %-42s %9.1f %9.1f %9s %9s\n", c, v, p.p50, p.p99, optMs1(p.mean, p.hasMean), optMs1(p.batch, p.hasBatch))
			} else if x, ok := f.failed(v, c); ok {
				fmt.Printf("%6d  %-42s %s: %s\n", c, v, x.verdict, shorten(x.msg, 90))
			}
		}
	}
	newNS := variantEnding(f, "+new-netns")
	fmt.Println("pooled netns vs new netns; ratio = pooled/new (lower is better):")
	if newNS == "" {
		fmt.Println("  no new-netns variant measured")
		return
	}
	for _, pooled := range f.variants {
		if !strings.Contains(pooled, "pooled-netns") {
			continue
		}
		for _, c := range f.concurrencies() {
			pn, okP := f.get(pooled, c)
			nn, okN := f.get(newNS, c)
			label := pooled[strings.LastIndex(pooled, "+")+1:]
			if !okP || !okN {
				fmt.Printf("  c=%-5d %-20s %s\n", c, label, missing(f, c, okP, okN, pooled, newNS))
				continue
			}
			fmt.Printf("  c=%-5d %-20s p50 %7.1f vs %7.1f ms %7s   p99 %7.1f vs %7.1f ms %7s   mean %7s\n",
				c, label, pn.p50, nn.p50, ratio(pn.p50, nn.p50), pn.p99, nn.p99, ratio(pn.p99, nn.p99), ratio(pn.mean, nn.mean))
		}
	}
}

func variantEnding(f *figure, suffix string) string {
	for _, v := range f.variants {
		if strings.HasSuffix(v, suffix) {
			return v
		}
	}
	return ""
}

// missing says which side of a comparison is absent at c, and why.
func missing(f *figure, c int, okA, okB bool, a, b string) string {
	var parts []string
	for _, s := range []struct {
		ok   bool
		name string
	}{{okA, a}, {okB, b}} {
		if s.ok {
			continue
		}
		why := "not measured"
		if x, ok := f.failed(s.name, c); ok {
			why = x.verdict
			if x.msg != "" {
				why += " (" + shorten(x.msg, 80) + ")"
			}
		}
		parts = append(parts, s.name+" "+why)
	}
	return strings.Join(parts, "; ")
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 3, 64) + "x"
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func msStr(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

func optMs(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return msStr(v)
}

func optMs1(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
