package bench

import (
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart size: one panel per metric, side by side.
const (
	chartPanelWidth = 4 * vg.Inch
	chartHeight     = 3.5 * vg.Inch
)

// errPoints places error bars over bars: x is the bar's index, y its median, and the error
// reaches down to min and up to max.
type errPoints []struct{ x, y, lo, hi float64 }

func (e errPoints) Len() int                        { return len(e) }
func (e errPoints) XY(i int) (float64, float64)     { return e[i].x, e[i].y }
func (e errPoints) YError(i int) (float64, float64) { return e[i].y - e[i].lo, e[i].hi - e[i].y }

// plots builds one bar chart per metric: median bars with min/max error bars.
func (r *Report) plots() ([]*plot.Plot, error) {
	var out []*plot.Plot
	for _, key := range metricOrder {
		p := plot.New()
		p.Title.Text = r.metricLabel(key)
		p.Y.Min = 0
		p.Y.Label.Text = fmt.Sprintf("median, min–max of %d round(s)", r.Rounds)
		p.Add(plotter.NewGrid())
		var (
			errs  errPoints
			names []string
			top   float64
		)
		for i, s := range r.Systems {
			names = append(names, r.label(&r.Systems[i]))
			m, ok := s.Metrics[key]
			if !ok || !m.Valid() {
				continue
			}
			// One chart per bar so that each system keeps its colour across panels.
			bar, err := plotter.NewBarChart(plotter.Values{m.Median}, vg.Points(28))
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", key, err)
			}
			bar.XMin = float64(i)
			bar.LineStyle.Width = 0
			bar.Color = plotutil.Color(i)
			p.Add(bar)
			errs = append(errs, struct{ x, y, lo, hi float64 }{float64(i), m.Median, m.Min, m.Max})
			top = max(top, m.Max)
		}
		if len(names) == 0 {
			continue
		}
		if len(errs) > 0 {
			eb, err := plotter.NewYErrorBars(errs)
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", key, err)
			}
			p.Add(eb)
		}
		p.NominalX(names...)
		// Slanted names: six systems' names do not fit side by side under narrow bars.
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		if top > 0 {
			p.Y.Max = top * 1.08 // room above the highest whisker
		}
		p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5 // every system gets its slot, measured or not
		out = append(out, p)
	}
	return out, nil
}

// draw renders all panels onto c.
func (r *Report) draw(c draw.Canvas) error {
	ps, err := r.plots()
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return nil
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(ps), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{ps}, tiles, c)
	for i, p := range ps {
		p.Draw(canvases[0][i])
	}
	return nil
}

func (r *Report) chartWidth() vg.Length {
	return chartPanelWidth * vg.Length(len(metricOrder))
}

// WriteSVG writes the bar chart (median bars, min/max error bars, one panel per metric) as SVG.
func (r *Report) WriteSVG(w io.Writer) error {
	c := vgsvg.New(r.chartWidth(), chartHeight)
	if err := r.draw(draw.New(c)); err != nil {
		return err
	}
	_, err := c.WriteTo(w)
	return err
}

// WritePNG writes the same chart as WriteSVG as a PNG.
func (r *Report) WritePNG(w io.Writer) error {
	c := vgimg.New(r.chartWidth(), chartHeight)
	if err := r.draw(draw.New(c)); err != nil {
		return err
	}
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}
