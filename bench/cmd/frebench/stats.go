package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/fre-runtime/fre/bench/resultfile"
)

type summary struct {
	n                        int
	mean, p50, p99, min, max float64 // milliseconds
}

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	sort.Float64s(ms)
	return summary{
		n: len(ms), mean: sum / float64(len(ms)),
		p50: percentile(ms, 50), p99: percentile(ms, 99),
		min: ms[0], max: ms[len(ms)-1],
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// target is one "fre ≤ k × other" goal.
type target struct {
	other string
	k     float64
}

// printTargets prints fre-runc's ratio to each other runtime on the figure
// value picks, against the goal, or why it cannot be judged.
func printTargets(e *env, what string, value func(name string) (float64, bool), targets []target) {
	printTargetsFor(e, "fre-runc", what, value, targets)
}

// printTargetsFor is printTargets for a fre-runc variant named fre.
func printTargetsFor(e *env, fre, what string, value func(name string) (float64, bool), targets []target) {
	v, freOK := value(fre)
	for _, t := range targets {
		other, ok := value(t.other)
		pair := fmt.Sprintf("%s/%s", fre, t.other)
		switch {
		case !freOK:
			fmt.Printf("  %-28s %-20s   -      target <= %.2gx  SKIP (%s not measured)\n", what, pair, t.k, fre)
		case !ok || other == 0:
			fmt.Printf("  %-28s %-20s   -      target <= %.2gx  SKIP (%s not measured)\n", what, pair, t.k, t.other)
		default:
			r := v / other
			verdict := "PASS"
			if r > t.k {
				verdict = "MISS"
			}
			fmt.Printf("  %-28s %-20s %6.3fx  target <= %.2gx  %s\n", what, pair, r, t.k, verdict)
		}
	}
}

func writeCSV(dir, name string, header []string, rows [][]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return resultfile.CSV(filepath.Join(dir, name), header, rows)
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
