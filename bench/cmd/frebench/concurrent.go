package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// concurrent starts C containers at once per runtime (runtimes one after
// another), each busybox /bin/true with its own linux.cgroupsPath and a
// memory limit, and reports the wall time from the first start to the last
// exit and the slowest container. Issue 4's target: fre-runc <= 0.1x runc
// and <= 0.5x crun.
func concurrent(e *env) error {
	c := e.opts.concurrency
	fmt.Printf("\n== concurrent start: %d containers at once, cgroupsPath + memory limit %d MiB\n", c, e.opts.memLimit>>20)
	base, err := specFrom(e.bundle)
	if err != nil {
		return err
	}
	parent := fmt.Sprintf("fre-bench-%d", os.Getpid())
	defer removeCgroupParent(parent)
	benches, err := concurrentBenches(e, "/"+parent)
	if err != nil {
		return err
	}

	type result struct {
		wall  time.Duration
		cpu   time.Duration
		lat   summary
		fails int
		err   string
	}
	results := map[string]result{}
	var rows [][]string
	for _, b := range benches {
		bundles := make([]string, c)
		ids := make([]string, c)
		for i := range bundles {
			s := cloneSpec(base)
			s.Linux.CgroupsPath = fmt.Sprintf("/%s/%s-%d", parent, b.name, i)
			limit := e.opts.memLimit
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
			bundles[i] = filepath.Join(e.dir, "concurrent", b.name, strconv.Itoa(i))
			if err := writeSpecCopy(bundles[i], s); err != nil {
				return err
			}
			ids[i] = e.id(b.name)
		}
		if b.prepare != nil {
			if err := b.prepare(); err != nil {
				return err
			}
		}
		bu, err := b.r.concurrent(bundles, ids)
		lat, wall, errs := bu.Lat, bu.Wall, bu.Errs
		if b.finish != nil { // drain the pool even after a failed run
			if ferr := b.finish(); ferr != nil && err == nil {
				return ferr
			}
		}
		if err != nil {
			return fmt.Errorf("%s concurrent: %w", b.name, err)
		}
		var ok []time.Duration
		r := result{wall: wall, cpu: bu.CPU}
		for i, d := range lat {
			status := "ok"
			if i < len(errs) && errs[i] != "" {
				r.fails++
				status = "error"
				if r.err == "" {
					r.err = firstLine(errs[i])
				}
			} else {
				ok = append(ok, d)
			}
			rows = append(rows, []string{b.name, strconv.Itoa(i), ms(float64(d) / 1e6), status})
		}
		r.lat = summarize(ok)
		results[b.name] = r
		os.RemoveAll(filepath.Join(e.dir, "concurrent", b.name))
	}

	fmt.Printf("%-16s %6s %10s %10s %10s %10s %12s %6s  %s\n", "runtime", "n", "wall ms", "max ms", "p50 ms", "p99 ms", "cpu ms/ctr", "fails", "")
	names := make([]string, 0, len(results))
	var fres []string
	for _, b := range benches {
		names = append(names, b.name)
		if strings.HasPrefix(b.name, "fre-runc") {
			fres = append(fres, b.name)
		}
	}
	for _, b := range benches {
		r := results[b.name]
		fmt.Printf("%-16s %6d %10.1f %10.1f %10.1f %10.1f %12.2f %6d  %s\n", b.name, c, float64(r.wall)/1e6, r.lat.max, r.lat.p50, r.lat.p99, float64(r.cpu)/1e6/float64(c), r.fails, b.note)
		if r.err != "" {
			fmt.Printf("           first error: %s\n", r.err)
		}
	}
	for _, s := range e.skipped {
		fmt.Printf("%-10s SKIPPED (%s)\n", "", s)
	}
	measured := func(name string) (result, bool) {
		r, ok := results[name]
		// A run where containers failed is not a figure to compare.
		return r, ok && r.fails == 0
	}
	fmt.Println("targets:")
	for _, fre := range fres {
		printTargetsFor(e, fre, "concurrent wall time", func(n string) (float64, bool) {
			r, ok := measured(n)
			return float64(r.wall), ok
		}, []target{{"runc", 0.1}, {"crun", 0.5}})
		printTargetsFor(e, fre, "concurrent max latency", func(n string) (float64, bool) {
			r, ok := measured(n)
			return r.lat.max, ok
		}, []target{{"runc", 0.1}, {"crun", 0.5}})
	}
	if r1, ok1 := measured("fre-runc-pool"); ok1 {
		if r0, ok0 := measured("fre-runc-nopool"); ok0 && r0.wall > 0 && r0.lat.max > 0 {
			fmt.Printf("  cgroup pool on/off: wall %.3fx, max latency %.3fx\n", float64(r1.wall)/float64(r0.wall), r1.lat.max/r0.lat.max)
		}
	}

	if err := writeCSV(e.opts.results, "run-concurrent.csv", []string{"runtime", "container", "ms", "status"}, rows); err != nil {
		return err
	}
	var srows [][]string
	for _, n := range names {
		r := results[n]
		srows = append(srows, []string{n, strconv.Itoa(c), ms(float64(r.wall) / 1e6), ms(r.lat.max), ms(r.lat.p50), ms(r.lat.p99), ms(float64(r.cpu) / 1e6 / float64(c)), strconv.Itoa(r.fails)})
	}
	return writeCSV(e.opts.results, "run-concurrent-summary.csv",
		[]string{"runtime", "containers", "wall_ms", "max_ms", "p50_ms", "p99_ms", "cpu_ms_per_container", "fails"}, srows)
}

func specFrom(bundle string) (*specs.Spec, error) {
	s, err := readSpec(bundle)
	if err != nil {
		return nil, err
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s, nil
}

// removeCgroupParent removes the bench's parent cgroup (and any child a
// runtime left) in every hierarchy. Only fre-bench-<pid> dirs are touched.
func removeCgroupParent(parent string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
	if d := filepath.Join("/sys/fs/cgroup", parent); exists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		children, _ := filepath.Glob(filepath.Join(d, "*"))
		for _, c := range children {
			if fi, err := os.Stat(c); err == nil && fi.IsDir() {
				if err := os.Remove(c); err != nil {
					fmt.Fprintf(os.Stderr, "frebench: leftover cgroup %s: %v\n", c, err)
				}
			}
		}
		if err := os.Remove(d); err != nil {
			fmt.Fprintf(os.Stderr, "frebench: cannot remove cgroup %s: %v\n", d, err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
