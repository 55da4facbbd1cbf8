// Package chart draws the bench's PNG figures (gonum/plot), so every
// bench program makes its bar charts the same way.
package chart

import (
	"image/color"
	"io"
	"math"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/fre-runtime/fre/bench/resultfile"
)

// Group is one series: a bar at each label.
type Group struct {
	Name   string
	Values []float64
}

// Bar draws labels along x with one bar per group at each, and each
// bar's value written above it.
func Bar(path, title, unit string, labels []string, groups []Group) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Add(plotter.NewGrid())
	w := vg.Points(math.Min(40, 110/float64(len(groups))))
	hi := 0.0
	for i, g := range groups {
		b, err := plotter.NewBarChart(plotter.Values(g.Values), w)
		if err != nil {
			return err
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		b.Offset = w * vg.Length(float64(i)-float64(len(groups)-1)/2)
		p.Add(b)
		if len(groups) > 1 {
			p.Legend.Add(g.Name, b)
		}
		xyl := plotter.XYLabels{}
		for x, v := range g.Values {
			xyl.XYs = append(xyl.XYs, plotter.XY{X: float64(x), Y: v})
			xyl.Labels = append(xyl.Labels, valueLabel(v))
			hi = math.Max(hi, v)
		}
		lab, err := plotter.NewLabels(xyl)
		if err != nil {
			return err
		}
		for j := range lab.TextStyle {
			lab.TextStyle[j].XAlign = draw.XCenter
			lab.TextStyle[j].Font.Size = vg.Points(8)
		}
		lab.Offset = vg.Point{X: b.Offset, Y: vg.Points(2)}
		p.Add(lab)
	}
	p.Y.Min, p.Y.Max = 0, hi*1.35 // room for the labels and the legend
	p.Legend.Top = true
	p.NominalX(labels...)
	// Half a category of room each side, so the outer bars are not cut.
	p.X.Min, p.X.Max = -0.5, float64(len(labels))-0.5
	width := vg.Length(4+2.2*float64(len(labels))*math.Max(1, float64(len(groups))/1.5)) * vg.Centimeter
	width = max(width, 16*vg.Centimeter)
	img := vgimg.NewWith(vgimg.UseWH(width, 11*vg.Centimeter), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(img))
	return SavePNG(path, img)
}

func valueLabel(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// SavePNG writes img to path (through a temporary file) and says so.
func SavePNG(path string, img *vgimg.Canvas) error {
	return resultfile.Write(path, func(w io.Writer) error {
		_, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w)
		return err
	})
}

// Series is one line of a CDF: its samples, in any order.
type Series struct {
	Name   string
	Values []float64
}

// CDF draws each series' empirical cumulative distribution: value along
// x (logarithmic when logX), the fraction of samples at or below it
// along y.
func CDF(path, title, unit string, logX bool, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = unit
	p.Y.Label.Text = "fraction of requests"
	p.Add(plotter.NewGrid())
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, s := range series {
		v := append([]float64(nil), s.Values...)
		sort.Float64s(v)
		xys := make(plotter.XYs, 0, len(v))
		for j, x := range v {
			if logX && x <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: float64(j+1) / float64(len(v))})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(4), vg.Points(14)
	img := vgimg.NewWith(vgimg.UseWH(18*vg.Centimeter, 11*vg.Centimeter), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(img))
	return SavePNG(path, img)
}

// Line is one series of a line chart: points in x order.
type Line struct {
	Name string
	X, Y []float64
}

// Lines draws each series as a line with its points marked.
func Lines(path, title, xLabel, yLabel string, lines []Line) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	maxY := 0.0
	for i, s := range lines {
		xys := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if j < len(s.Y) {
				xys = append(xys, plotter.XY{X: s.X[j], Y: s.Y[j]})
				maxY = math.Max(maxY, s.Y[j])
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l, pts)
		p.Legend.Add(s.Name, l, pts)
	}
	p.Y.Min, p.Y.Max = 0, maxY*1.15
	p.Legend.Top = false
	p.Legend.Left = false
	img := vgimg.NewWith(vgimg.UseWH(18*vg.Centimeter, 11*vg.Centimeter), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(img))
	return SavePNG(path, img)
}
