package main

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/fre-runtime/fre/bench/chart"
)

// plotMemory draws the memory scenario's figures (the research's 9–11):
// total memory per language and runtime, store size against the unpacked
// images, and import time per image.
func plotMemory(results string, rows []memRow, sf storeFigures, configs []string) error {
	var langs []string
	for _, r := range rows {
		if r.config == configs[0] {
			langs = append(langs, r.lang)
		}
	}
	byCfg := map[string]map[string]float64{}
	for _, r := range rows {
		if byCfg[r.config] == nil {
			byCfg[r.config] = map[string]float64{}
		}
		byCfg[r.config][r.lang] = mib(r.total())
	}
	var groups []chart.Group
	for _, c := range configs {
		g := chart.Group{Name: c}
		for _, l := range langs {
			g.Values = append(g.Values, byCfg[c][l])
		}
		groups = append(groups, g)
	}
	if err := chart.Bar(filepath.Join(results, "memory-total.png"),
		fmt.Sprintf("Memory of %d containers per image (PSS anon + mapped files' cache)", rows[0].containers),
		"MiB", langs, groups); err != nil {
		return err
	}
	if sf.df.StoredSize == 0 {
		return nil
	}
	var distinct int64
	var names []string
	for n, s := range sf.imageSize {
		distinct += s
		names = append(names, n)
	}
	sort.Strings(names)
	if err := chart.Bar(filepath.Join(results, "memory-store.png"), "Store size vs unpacked images", "MiB",
		[]string{fmt.Sprintf("%d images", len(names)), "store", fmt.Sprintf("bundles (%dx%d)", len(names), sf.copies)},
		[]chart.Group{{Name: "size", Values: []float64{mib(distinct), mib(sf.df.StoredSize), mib(sf.unpacked)}}}); err != nil {
		return err
	}
	first, cp := chart.Group{Name: "first import"}, chart.Group{Name: "further copy (cached objects)"}
	for _, n := range names {
		first.Values = append(first.Values, msOf(sf.importFirst[n]))
		cp.Values = append(cp.Values, msOf(sf.importCopy[n]))
	}
	return chart.Bar(filepath.Join(results, "memory-import.png"), "Import time per image", "ms", names, []chart.Group{first, cp})
}
