package main

import (
	"fmt"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
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
	var groups []barGroup
	for _, c := range configs {
		g := barGroup{name: c}
		for _, l := range langs {
			g.values = append(g.values, byCfg[c][l])
		}
		groups = append(groups, g)
	}
	if err := barChart(filepath.Join(results, "memory-total.png"),
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
	if err := barChart(filepath.Join(results, "memory-store.png"), "Store size vs unpacked images", "MiB",
		[]string{fmt.Sprintf("%d images", len(names)), "store", fmt.Sprintf("bundles (%dx%d)", len(names), sf.copies)},
		[]barGroup{{name: "size", values: []float64{mib(distinct), mib(sf.df.StoredSize), mib(sf.unpacked)}}}); err != nil {
		return err
	}
	first, cp := barGroup{name: "first import"}, barGroup{name: "further copy (cached objects)"}
	for _, n := range names {
		first.values = append(first.values, msOf(sf.importFirst[n]))
		cp.values = append(cp.values, msOf(sf.importCopy[n]))
	}
	return barChart(filepath.Join(results, "memory-import.png"), "Import time per image", "ms", names, []barGroup{first, cp})
}

type barGroup struct {
	name   string
	values []float64
}

func barChart(path, title, unit string, labels []string, groups []barGroup) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	w := vg.Points(60 / float64(len(groups)))
	for i, g := range groups {
		b, err := plotter.NewBarChart(plotter.Values(g.values), w)
		if err != nil {
			return err
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		b.Offset = w * vg.Length(float64(i)-float64(len(groups)-1)/2)
		p.Add(b)
		if len(groups) > 1 {
			p.Legend.Add(g.name, b)
		}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(labels...)
	return p.Save(vg.Length(120+90*len(labels))*vg.Millimeter/4, 10*vg.Centimeter, path)
}
