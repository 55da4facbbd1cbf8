package main

import (
	"path/filepath"

	"github.com/fre-runtime/fre/bench/chart"
)

// soak plots make soak's checkpoints (results/soak.csv): the grouped
// shim's RSS over its cycles, and each part's time per cycle.
func soak(dir string) error {
	t, err := readTable(filepath.Join(dir, "soak.csv"), "part", "cycle", "per_cycle_ms", "shim_rss_kb")
	if err != nil {
		return err
	}
	rss := chart.Line{Name: "grouped shim RSS (MiB)"}
	per := map[string]*chart.Line{}
	var parts []string
	for _, r := range t.rows {
		part, cycle := t.str(r, "part"), t.num(r, "cycle")
		if part == "shim" {
			rss.X, rss.Y = append(rss.X, cycle), append(rss.Y, t.num(r, "shim_rss_kb")/1024)
		}
		l := per[part]
		if l == nil {
			l = &chart.Line{Name: part}
			per[part] = l
			parts = append(parts, part)
		}
		l.X, l.Y = append(l.X, cycle), append(l.Y, t.num(r, "per_cycle_ms"))
	}
	if err := chart.Lines(filepath.Join(dir, "soak-shim-rss.png"), "make soak: the grouped shim's RSS", "cycles through the shim", "MiB", []chart.Line{rss}); err != nil {
		return err
	}
	var lines []chart.Line
	for _, p := range parts {
		lines = append(lines, *per[p])
	}
	return chart.Lines(filepath.Join(dir, "soak-cycle.png"), "make soak: mean time per cycle between checkpoints", "cycles", "ms per cycle", lines)
}
