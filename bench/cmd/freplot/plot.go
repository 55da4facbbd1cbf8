package main

import (
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/fre-runtime/fre/bench/chart"
)

// lineFigure draws the research's figure shape: latency against
// concurrency, one line per variant, p50 and p99 side by side. Both axes
// are logarithmic: concurrency doubles and latencies span decades.
func lineFigure(path string, f *figure) error {
	cs := f.concurrencies()
	var ticks []plot.Tick
	for _, c := range cs {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: strconv.Itoa(c)})
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range f.points {
		for _, v := range []float64{p.p50, p.p99} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	panels := []struct {
		title string
		val   func(point) float64
	}{{"p50", func(p point) float64 { return p.p50 }}, {"p99", func(p point) float64 { return p.p99 }}}
	plots := make([][]*plot.Plot, 1)
	// One legend for both panels, below them, so it never hides a line.
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.XOffs = vg.Centimeter
	for k, pan := range panels {
		p := plot.New()
		p.Title.Text = f.title + " — " + pan.title
		p.X.Label.Text = "operations at once (log scale)"
		p.Y.Label.Text = "ms per operation (log scale)"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.Y.Tick.Marker = decadeTicks{}
		p.Add(plotter.NewGrid())
		for i, v := range f.variants {
			var xys plotter.XYs
			for _, c := range cs {
				if pt, ok := f.get(v, c); ok && pan.val(pt) > 0 {
					xys = append(xys, plotter.XY{X: float64(c), Y: pan.val(pt)})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
			l.Width = vg.Points(1.5)
			l.Dashes = plotutil.Dashes(i)
			s.Shape = plotutil.Shape(i)
			s.Radius = vg.Points(3)
			p.Add(l, s)
			if k == 0 {
				legend.Add(v, l, s)
			}
		}
		p.X.Min, p.X.Max = float64(cs[0])/1.6, float64(cs[len(cs)-1])*1.6
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
		plots[0] = append(plots[0], p)
	}
	legendH := vg.Points(16*float64(len(f.variants)) + 8)
	w, h := 32*vg.Centimeter, 11*vg.Centimeter+legendH
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Centimeter, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, draw.Crop(dc, 0, 0, legendH, 0))
	for i, p := range plots[0] {
		p.Draw(canvases[0][i])
	}
	legend.Draw(draw.Crop(dc, 0, 0, 0, -(h - legendH)))
	return chart.SavePNG(path, img)
}

// decadeTicks labels every power of ten in range (plot.LogTicks drops
// those below 1) with minor ticks between.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		ts = append(ts, plot.Tick{Value: d, Label: strconv.FormatFloat(d, 'f', -1, 64)})
		for i := 2; i < 10 && d*float64(i) <= hi; i++ {
			ts = append(ts, plot.Tick{Value: d * float64(i)})
		}
	}
	return ts
}
