package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fre-runtime/fre/bench/chart"
)

// runs plots frebench's summaries: the concurrent start (wall time and the
// slowest container per runtime) and the sequential runs (mean per runtime,
// one bar per spec).
func runs(dir string) error {
	var errs []error
	made := 0
	for _, plot := range []func(string) error{plotConcurrent, plotSequential} {
		err := plot(dir)
		switch {
		case err == nil:
			made++
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoData):
			fmt.Printf("freplot: %v; skipped\n", err)
		default:
			errs = append(errs, err)
		}
	}
	if made == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("runs: no frebench summaries under %s: %w", dir, ErrNoData))
	}
	return errors.Join(errs...)
}

func plotConcurrent(dir string) error {
	t, err := readTable(filepath.Join(dir, "run-concurrent-summary.csv"), "runtime", "wall_ms", "max_ms")
	if err != nil {
		return err
	}
	var labels []string
	wall, lat := chart.Group{Name: "wall time (first start to last exit)"}, chart.Group{Name: "slowest container"}
	n := ""
	for _, r := range t.rows {
		label := t.str(r, "runtime")
		if f := t.str(r, "fails"); f != "" && f != "0" {
			label += " (" + f + " failed)"
		}
		labels = append(labels, label)
		wall.Values = append(wall.Values, t.num(r, "wall_ms"))
		lat.Values = append(lat.Values, t.num(r, "max_ms"))
		n = t.str(r, "containers")
	}
	return chart.Bar(filepath.Join(dir, "run-concurrent.png"),
		fmt.Sprintf("%s containers started at once (busybox /bin/true, cgroupsPath + memory limit)", n),
		"ms", labels, []chart.Group{wall, lat})
}

// specNames describes each sequential run by its file's suffix.
var specNames = map[string]string{
	"":          "runc's default spec",
	"-nocgroup": "without linux.resources (no cgroup)",
}

func plotSequential(dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "run-sequential*-summary.csv"))
	if len(files) == 0 {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "run-sequential*-summary.csv"), os.ErrNotExist)
	}
	sort.Strings(files) // run-sequential-summary sorts after -nocgroup-
	sort.SliceStable(files, func(i, j int) bool { return strings.HasSuffix(files[i], "/run-sequential-summary.csv") })
	var labels []string
	index := map[string]int{}
	var groups []chart.Group
	runs := 0
	for _, path := range files {
		t, err := readTable(path, "runtime", "mean_ms")
		if err != nil {
			return err
		}
		suffix := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "run-sequential"), "-summary.csv")
		name, ok := specNames[suffix]
		if !ok {
			name = strings.TrimPrefix(suffix, "-")
		}
		g := chart.Group{Name: name}
		vals := map[string]float64{}
		for _, r := range t.rows {
			rt := t.str(r, "runtime")
			if _, ok := index[rt]; !ok {
				index[rt] = len(labels)
				labels = append(labels, rt)
			}
			vals[rt] = t.num(r, "mean_ms")
			if t.str(r, "n") != "" {
				runs = max(runs, int(t.num(r, "n")))
			}
		}
		g.Values = make([]float64, 0, len(labels))
		for _, rt := range labels {
			g.Values = append(g.Values, vals[rt]) // 0: not measured with this spec
		}
		groups = append(groups, g)
	}
	for i := range groups {
		for len(groups[i].Values) < len(labels) {
			groups[i].Values = append(groups[i].Values, 0)
		}
	}
	return chart.Bar(filepath.Join(dir, "run-sequential.png"),
		fmt.Sprintf("Sequential run of busybox /bin/true: mean of %d runs per runtime", runs),
		"ms per container (run, mean)", labels, groups)
}
