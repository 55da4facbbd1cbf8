package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// benchResult is one benchmark of `go test -bench` output: its name without
// the -GOMAXPROCS suffix and its metrics by unit ("ns/op", "p50-ms", ...).
// A benchmark reported more than once (-count) has each metric averaged.
type benchResult struct {
	name    string
	runs    int
	metrics map[string]float64
}

// benchFailure is a benchmark reported as --- FAIL or --- SKIP, with the
// first line it logged.
type benchFailure struct {
	name, verdict, msg string
}

// procsSuffix is the "-N" go test appends to a name when GOMAXPROCS > 1.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads standard `go test -bench` output. Lines that are not
// results (headers, PASS/FAIL, logs, this repo's "==" banners) are skipped.
func parseBench(r io.Reader) ([]benchResult, []benchFailure, error) {
	var (
		order    []string
		byName   = map[string]*benchResult{}
		failures []benchFailure
		pending  *benchFailure // a failure waiting for its message line
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if pending != nil {
			if t := strings.TrimSpace(line); t != "" && strings.HasPrefix(line, " ") {
				pending.msg = t
			}
			failures = append(failures, *pending)
			pending = nil
			if strings.HasPrefix(line, " ") {
				continue
			}
		}
		if v, name, ok := failureLine(line); ok {
			pending = &benchFailure{name: name, verdict: v}
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a name printed before the benchmark's own output
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(f[0], "")
		res := byName[name]
		if res == nil {
			res = &benchResult{name: name, metrics: map[string]float64{}}
			byName[name] = res
			order = append(order, name)
		}
		res.runs++
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			// Running mean, so -count N averages.
			res.metrics[f[i+1]] += (v - res.metrics[f[i+1]]) / float64(res.runs)
		}
	}
	if pending != nil {
		failures = append(failures, *pending)
	}
	out := make([]benchResult, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out, failures, sc.Err()
}

// failureLine recognises "--- FAIL: BenchmarkX/sub" and "--- SKIP: ...".
func failureLine(line string) (verdict, name string, ok bool) {
	t := strings.TrimSpace(line)
	for _, v := range []string{"FAIL", "SKIP"} {
		if rest, found := strings.CutPrefix(t, "--- "+v+": "); found {
			name := strings.Fields(rest)
			if len(name) > 0 && strings.HasPrefix(name[0], "Benchmark") {
				return v, procsSuffix.ReplaceAllString(name[0], ""), true
			}
		}
	}
	return "", "", false
}

// metric returns the first of units present in m.
func metric(m map[string]float64, units ...string) (float64, bool) {
	for _, u := range units {
		if v, ok := m[u]; ok {
			return v, true
		}
	}
	return 0, false
}
