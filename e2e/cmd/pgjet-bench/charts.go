package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// The charts of docs/benchmarks.md, drawn from a run's results.json
// (`make bench-charts`), with the figures the tables show.
var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// series is one bar per workload.
type series struct {
	name   string
	values []float64 // by workload; 0: not measured
}

// writeCharts reads results.json and writes the SVG charts into dir.
func writeCharts(resultsFile, dir string) error {
	data, err := os.ReadFile(resultsFile)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", resultsFile, err)
	}
	if len(r.Workloads) == 0 {
		return fmt.Errorf("%s has no workload results", resultsFile)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var names []string
	for _, w := range r.Workloads {
		names = append(names, w.Name)
	}
	per := func(f func(w *workloadResult) float64) []float64 {
		v := make([]float64, len(r.Workloads))
		for i := range r.Workloads {
			v[i] = f(&r.Workloads[i])
		}
		return v
	}
	code, _, _ := strings.Cut(r.Machine.Code, " ") // the commit's short hash
	subtitle := fmt.Sprintf("pgjet-bench %s, code %s", r.Started, code)

	charts := []struct {
		file, title, ylabel string
		refs                []float64 // horizontal reference lines
		series              []series
	}{
		{"ratio-to-ceiling.svg", "Collector ÷ pgoutput decoding ceiling (pg_recvlogical)", "× ceiling (median of rounds)", []float64{1, 0.9},
			[]series{
				{"external nats-server", per(func(w *workloadResult) float64 { return w.ratio(w.Collector) })},
				{"embedded server", per(func(w *workloadResult) float64 { return w.ratio(w.Embedded) })},
			}},
		{"router-vs-collector.svg", "Router ÷ collector (events/s over changes/s, output persist async)", "× collector", []float64{1, 1.5},
			variantSeries(r.Workloads, []string{"native", "cloudevents", "cloudevents-change", "debezium"}, func(w *workloadResult, s variantStats) float64 {
				if col := median(rates(w.Collector)); col > 0 && s.n > 0 {
					return median(s.perSec) / col
				}
				return 0
			})},
		{"envelope-costs.svg", "Router CPU per event ÷ native, same round", "× native CPU µs/event", []float64{1},
			variantSeries(r.Workloads, []string{"cloudevents", "cloudevents-change", "debezium", "native+group", "native+tracing"}, func(_ *workloadResult, s variantStats) float64 {
				return median(s.xCPU)
			})},
		{"tracing-cost.svg", "Tracing on ÷ off, same round (rate: higher is better; CPU: lower)", "× untraced", []float64{1},
			[]series{
				{"collector changes/s", per(func(w *workloadResult) float64 { x, _ := w.tracedRatios(); return median(x) })},
				{"collector CPU", per(func(w *workloadResult) float64 { _, x := w.tracedRatios(); return median(x) })},
				{"router events/s", per(func(w *workloadResult) float64 { return median(w.variant("native+tracing").xRate) })},
				{"router CPU", per(func(w *workloadResult) float64 { return median(w.variant("native+tracing").xCPU) })},
			}},
	}
	for _, c := range charts {
		if err := barChart(filepath.Join(dir, c.file), c.title+"\n"+subtitle, c.ylabel, names, c.refs, c.series); err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
	}
	return nil
}

// variantSeries is a series per router variant of f over the workloads.
func variantSeries(ws []workloadResult, variants []string, f func(*workloadResult, variantStats) float64) []series {
	var out []series
	for _, v := range variants {
		s := series{name: v, values: make([]float64, len(ws))}
		for i := range ws {
			s.values[i] = f(&ws[i], ws[i].variant(v))
		}
		out = append(out, s)
	}
	return out
}

// barChart draws grouped bars (a group per workload, a bar per series)
// with dashed reference lines, and saves it as SVG.
func barChart(file, title, ylabel string, groups []string, refs []float64, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	width := vg.Points(float64(72) / float64(max(1, len(ss))))
	shown, top := 0, 0.0
	for _, ref := range refs {
		top = max(top, ref)
	}
	for i, s := range ss {
		empty := true
		for _, v := range s.values {
			empty = empty && v == 0
			top = max(top, v)
		}
		if empty {
			continue // a variant this run did not measure
		}
		bars, err := plotter.NewBarChart(plotter.Values(s.values), width)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.name, bars)
		shown++
	}
	if shown == 0 {
		return fmt.Errorf("no figures in the results")
	}
	for _, ref := range refs {
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: ref}, {X: float64(len(groups)) - 0.5, Y: ref}})
		if err != nil {
			return err
		}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		line.Color = color.Gray{Y: 0x60}
		p.Add(line)
	}
	// Room above the bars for the legend.
	p.Y.Max = top * (1.15 + 0.08*float64(shown))
	p.NominalX(groups...)
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4*vg.Inch, file)
}
