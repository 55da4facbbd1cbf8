package main

import (
	"fmt"
	"strconv"
	"time"
)

// sequential runs the /bin/true bundle n times per runtime, one container at
// a time, interleaving runtimes round by round (and rotating who goes first)
// so drift in the machine's load hits all of them alike. Issue 2's target:
// fre-runc <= 0.5x crun and <= 0.1x runc.
func sequential(e *env) error {
	title := "runc's default spec"
	if e.opts.systemd {
		title += ", systemd cgroup driver"
	}
	if err := sequentialWith(e, e.bundle, title, "run-sequential"); err != nil {
		return err
	}
	if e.opts.systemd {
		// Without linux.resources fre-runc makes no cgroup, where the
		// others start a scope still: no like-for-like run.
		return nil
	}
	// crun runs here with --cgroup-manager=disabled (it refuses the hybrid
	// layout), so it never pays for a cgroup; the same spec without
	// linux.resources (no cgroup for anyone) is the like-for-like run.
	bundle, err := e.noResourcesBundle()
	if err != nil {
		return err
	}
	return sequentialWith(e, bundle, "runc's default spec without linux.resources (no cgroup)", "run-sequential-nocgroup")
}

func sequentialWith(e *env, bundle, title, file string) error {
	n := e.opts.n
	fmt.Printf("\n== sequential run: busybox /bin/true, %s, %d runs per runtime (+%d warm-up), interleaved\n", title, n, e.opts.warmup)
	for _, b := range e.benches {
		for i := 0; i < e.opts.warmup; i++ {
			if _, err := b.r.run(bundle, e.id(b.name)); err != nil {
				return fmt.Errorf("%s warm-up: %w", b.name, err)
			}
		}
	}
	lat := map[string][]time.Duration{}
	fails := map[string]int{}
	firstErr := map[string]error{}
	var rows [][]string
	for round := 0; round < n; round++ {
		for k := range e.benches {
			b := e.benches[(round+k)%len(e.benches)]
			d, err := b.r.run(bundle, e.id(b.name))
			if err != nil {
				fails[b.name]++
				if firstErr[b.name] == nil {
					firstErr[b.name] = err
				}
				rows = append(rows, []string{b.name, strconv.Itoa(round), "", "error"})
				continue
			}
			lat[b.name] = append(lat[b.name], d)
			rows = append(rows, []string{b.name, strconv.Itoa(round), ms(float64(d) / 1e6), "ok"})
		}
	}

	sums := map[string]summary{}
	fmt.Printf("%-10s %6s %9s %9s %9s %9s %9s %6s  %s\n", "runtime", "n", "mean ms", "p50 ms", "p99 ms", "min ms", "max ms", "fails", "")
	for _, b := range e.benches {
		s := summarize(lat[b.name])
		sums[b.name] = s
		fmt.Printf("%-10s %6d %9.2f %9.2f %9.2f %9.2f %9.2f %6d  %s\n", b.name, s.n, s.mean, s.p50, s.p99, s.min, s.max, fails[b.name], b.note)
		if err := firstErr[b.name]; err != nil {
			fmt.Printf("           first error: %s\n", firstLine(err.Error()))
		}
	}
	for _, s := range e.skipped {
		fmt.Printf("%-10s SKIPPED (%s)\n", "", s)
	}
	value := func(name string) (float64, bool) {
		s, ok := sums[name]
		return s.mean, ok && s.n > 0
	}
	fmt.Println("targets (mean):")
	printTargets(e, "sequential run", value, []target{{"crun", 0.5}, {"runc", 0.1}})
	printTargetsFor(e, "fre-runc-shared", "sequential run", value, []target{{"crun", 0.5}, {"runc", 0.1}})
	if on, ok1 := value("fre-runc"); ok1 {
		if off, ok2 := value("fre-runc-nopool"); ok2 && off > 0 {
			fmt.Printf("  cgroup pool on/off (fre-runc/fre-runc-nopool): %.3fx\n", on/off)
		}
		if named, ok2 := value("fre-runc-named"); ok2 && on > 0 {
			fmt.Printf("  named cgroup pool on/off (fre-runc-named/fre-runc): %.3fx\n", named/on)
		}
		if al, ok2 := value("fre-runc-alongside"); ok2 && on > 0 {
			fmt.Printf("  scope start alongside the set-up/before it (fre-runc-alongside/fre-runc): %.3fx\n", al/on)
		}
	}

	if err := writeCSV(e.opts.results, file+".csv", []string{"runtime", "round", "ms", "status"}, rows); err != nil {
		return err
	}
	var srows [][]string
	for _, b := range e.benches {
		s := sums[b.name]
		srows = append(srows, []string{b.name, strconv.Itoa(s.n), ms(s.mean), ms(s.p50), ms(s.p99), ms(s.min), ms(s.max), strconv.Itoa(fails[b.name])})
	}
	return writeCSV(e.opts.results, file+"-summary.csv",
		[]string{"runtime", "n", "mean_ms", "p50_ms", "p99_ms", "min_ms", "max_ms", "fails"}, srows)
}
