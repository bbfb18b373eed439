package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// markdown renders the results as the tables of docs/benchmarks.md.
func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.Quick {
		mode = "quick (smoke-test sizes: figures are not meaningful)"
	}
	p("# pgjet-bench results\n\n")
	p("Mode: %s. Started %s, finished %s.\n\n", mode, r.Started, r.Finished)
	m := r.Machine
	p("| machine | |\n|---|---|\n")
	p("| CPUs (nproc) | %s |\n| CPU | %s |\n| memory | %s |\n| kernel | %s |\n| PostgreSQL | %s |\n| nats-server | %s |\n| Go | %s |\n| code | %s |\n| loadavg at start | %s |\n\n",
		m.NProc, m.CPU, m.Memory, m.Kernel, m.Postgres, m.NATS, m.Go, m.Code, m.LoadStart)

	if len(r.Workloads) > 0 {
		p("## Collector vs the pgoutput decoding ceiling\n\n")
		p("Same backlog for every reader (slots created before it). Rounds of ceiling (`pg_recvlogical` to /dev/null), collector against the external nats-server (`sync_interval: always`), collector with its embedded server; ")
		p("figures are medians over the rounds, (min–max) in brackets; the ratio is the median of the per-round ratios. ")
		p("Collector time runs from process start until the raw stream holds the backlog's last change. ")
		p("CPU in seconds per million changes; walsender = the Postgres process decoding for that reader.\n\n")
		p("| workload | changes | WAL MB | ceiling changes/s | collector changes/s | ratio | peak RSS MiB | collector CPU s/M | walsender CPU s/M ceiling / collector | nats-server CPU s/M | changes per raw msg | loadavg1 |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, w := range r.Workloads {
			p("| %s | %d | %.0f | %s | %s | **%.2f** | %.0f | %.1f | %.1f / %.1f | %.1f | %.0f | %s |\n",
				w.Name, w.Changes, float64(w.WALBytes)/1e6, spread(w.ceilingRates()), spread(rates(w.Collector)), w.ratio(w.Collector),
				maxRSS(w.Collector), median(w.perM(w.Collector, func(c collectorRun) float64 { return c.CPU })),
				median(w.ceilingWalsender()), median(w.perM(w.Collector, func(c collectorRun) float64 { return c.WalsenderCPU })),
				median(w.perM(w.Collector, func(c collectorRun) float64 { return c.NATSCPU })), w.changesPerMsg(w.Collector), loads(w))
		}
		p("\nCollector with its embedded server (`--embedded`: fsync per write, max payload 31 MiB so raw messages up to 4 MiB); RSS and CPU include the server.\n\n")
		p("| workload | collector changes/s | ratio to ceiling | peak RSS MiB | CPU s/M | walsender CPU s/M | changes per raw msg |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, w := range r.Workloads {
			p("| %s | %s | **%.2f** | %.0f | %.1f | %.1f | %.0f |\n", w.Name, spread(rates(w.Embedded)), w.ratio(w.Embedded),
				maxRSS(w.Embedded), median(w.perM(w.Embedded, func(c collectorRun) float64 { return c.CPU })),
				median(w.perM(w.Embedded, func(c collectorRun) float64 { return c.WalsenderCPU })), w.changesPerMsg(w.Embedded))
		}

		p("\n## Router from the filled raw stream\n\n")
		p("One router process, its own durable consumer and output stream, from process start until the output stream holds every event (backlog changes + 1 end marker), or the time cap. ")
		p("`default`: output stream with the server's persistence (fsync per write here), one run; `async`: `--output-persist async`, one run per round and envelope (`native`, and `cloudevents` in structured mode, interleaved). ")
		p("The ratio compares with the median collector (external server) rate.\n\n")
		r.routerTable(p, "")
		if ab := r.routerAB(); ab != "" {
			p("\nThe router of `%s` (`-router-ab`), timed right after each async run above, on the same raw stream:\n\n", ab)
			r.routerTable(p, ab)
		}

		r.envelopeTables(p)
		r.tracingTable(p)

		p("\nEvery round (changes/s; ratio to the same round's ceiling; loadavg1 after the collector run):\n\n")
		p("| workload | round | ceiling | collector | ratio | embedded | ratio | loadavg1 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, w := range r.Workloads {
			for i := range w.Ceiling {
				c := w.Ceiling[i]
				col, emb := w.Collector[i], w.Embedded[i]
				p("| %s | %d | %.0f | %.0f | %.2f | %.0f | %.2f | %s |\n", w.Name, i+1, c.PerSec, col.PerSec, col.PerSec/c.PerSec, emb.PerSec, emb.PerSec/c.PerSec, col.Load)
			}
		}
	}

	if len(r.E2E) > 0 {
		p("\n## End-to-end latency\n\n")
		p("Collector and router running; pgbench commits single-row inserts at a fixed rate; latency = arrival at an ordered consumer of the output stream minus the event's `commit_time`.\n\n")
		p("| output persist, envelope | rate tx/s × s | events / txs | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | CPU %% collector / router / nats | loadavg1 |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n")
		for _, e := range r.E2E {
			p("| %s | %d × %d | %d / %d | %.1f | %.1f | **%.1f** | %.1f | %.1f | %.0f / %.0f / %.0f | %s |\n",
				e.label(), e.Rate, e.Seconds, e.Events, e.Txs, e.P50, e.P90, e.P99, e.P999, e.Max, e.CollectorCPU, e.RouterCPU, e.NATS, e.Load)
		}
		p("\n")
		for _, e := range r.E2E {
			p("- pgbench (%s): %s\n", e.label(), e.Pgbench)
		}
		p("\nLatency by stage, from the commit (ms; the raw record's and the event's store times are the JetStream timestamps; one sample per transaction for the raw record):\n\n")
		p("| output persist, envelope | until | samples | p50 | p90 | p99 | p99.9 | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, e := range r.E2E {
			for _, s := range e.Stages {
				p("| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n", e.label(), s.Name, s.N, s.P50, s.P90, s.P99, s.P999, s.Max)
			}
		}
		p("\nThe collector's lags per 10 s interval (its progress log; read = from commit until decoded, the walsender's share; stored = until the raw record was acknowledged):\n\n")
		for _, e := range r.E2E {
			for _, l := range e.CollectorLags {
				p("- %s: %s\n", e.label(), l)
			}
		}
		p("\nWhere the backlog sat while pgbench ran (kB of WAL, max / mean of 100 ms samples): written but not yet sent by the walsender; sent but not yet confirmed by the collector (reading, batching, fsynced raw publish).\n\n")
		for _, e := range r.E2E {
			p("- %s: unsent %.0f / %.0f, unconfirmed %.0f / %.0f\n", e.label(), e.UnsentMaxKB, e.UnsentMeanKB, e.UnconfirmedMaxKB, e.UnconfirmedMeanKB)
		}
		p("\nWorst latency (ms) of the events committed in each tenth of the run:\n\n")
		for _, e := range r.E2E {
			var s []string
			for _, v := range e.Series {
				s = append(s, fmt.Sprintf("%.0f", v))
			}
			p("- %s: %s\n", e.label(), strings.Join(s, ", "))
		}
	}

	if r.Snapshot != nil {
		r.Snapshot.markdown(p)
	}
	for _, w := range r.Workloads {
		for _, pr := range w.Profiles {
			p("\n## perf profile: %s, workload %s (%s)\n\nStages (share of samples including callees):\n\n```\n%s\n```\n\nSelf time:\n\n```\n%s\n```\n\nIncluding callees:\n\n```\n%s\n```\n", pr.What, w.Name, pr.File, pr.Key, pr.Self, pr.Cum)
		}
	}
	return b.String()
}

func perM(secs float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return secs / float64(n) * 1e6
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread formats the median and, with several values, the range.
func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	m := median(v)
	if len(v) == 1 {
		return fmt.Sprintf("%.0f", m)
	}
	return fmt.Sprintf("%.0f (%.0f–%.0f)", m, slices.Min(v), slices.Max(v))
}

func rates(runs []collectorRun) []float64 {
	var v []float64
	for _, c := range runs {
		v = append(v, c.PerSec)
	}
	return v
}

func maxRSS(runs []collectorRun) float64 {
	m := 0.0
	for _, c := range runs {
		m = max(m, float64(c.RSSKiB)/1024)
	}
	return m
}

func (w *workloadResult) ceilingRates() []float64 {
	var v []float64
	for _, c := range w.Ceiling {
		v = append(v, c.PerSec)
	}
	return v
}

func (w *workloadResult) ceilingWalsender() []float64 {
	var v []float64
	for _, c := range w.Ceiling {
		v = append(v, perM(c.WalsenderCPU, w.Changes))
	}
	return v
}

// ratio is the median over rounds of collector rate / same round's ceiling.
func (w *workloadResult) ratio(runs []collectorRun) float64 {
	var v []float64
	for i, c := range runs {
		if i < len(w.Ceiling) && w.Ceiling[i].PerSec > 0 {
			v = append(v, c.PerSec/w.Ceiling[i].PerSec)
		}
	}
	return median(v)
}

func (w *workloadResult) perM(runs []collectorRun, f func(collectorRun) float64) []float64 {
	var v []float64
	for _, c := range runs {
		v = append(v, perM(f(c), w.Changes))
	}
	return v
}

func (w *workloadResult) changesPerMsg(runs []collectorRun) float64 {
	var v []float64
	for _, c := range runs {
		if c.RawMsgs > 0 {
			v = append(v, float64(w.Changes)/float64(c.RawMsgs))
		}
	}
	return median(v)
}

func loads(w workloadResult) string {
	var s []string
	for _, c := range w.Collector {
		s = append(s, c.Load)
	}
	return strings.Join(s, ", ")
}

// routerAB is the -router-ab directory of the runs, if any.
func (r *results) routerAB() string {
	for _, w := range r.Workloads {
		for _, rr := range w.Routers {
			if rr.Bin != "" {
				return rr.Bin
			}
		}
	}
	return ""
}

// routerTable writes the router rows of the runs of bin (empty: -bin).
func (r *results) routerTable(p func(string, ...any), bin string) {
	p("| workload | output persist | envelope | runs | events | events/s | vs collector | router CPU s/M | router peak RSS MiB | nats-server CPU s/M |\n")
	p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range r.Workloads {
		col := median(rates(w.Collector))
		for _, k := range []struct{ persist, envelope string }{{"default", "native"}, {"async", "native"}, {"async", "cloudevents"}} {
			persist := k.persist
			var rs []routerRun
			for _, rr := range w.Routers {
				// Runs recorded before the envelope was: native.
				if rr.Bin == bin && rr.Persist == persist && (rr.Envelope == k.envelope || rr.Envelope == "" && k.envelope == "native") {
					rs = append(rs, rr)
				}
			}
			if len(rs) == 0 {
				continue
			}
			var perSec, cpu, ncpu []float64
			var rss float64
			events := ""
			for _, rr := range rs {
				perSec = append(perSec, rr.PerSec)
				cpu = append(cpu, perM(rr.CPU, int64(rr.Events)))
				ncpu = append(ncpu, perM(rr.NATSCPU, int64(rr.Events)))
				rss = max(rss, float64(rr.RSSKiB)/1024)
				events = fmt.Sprintf("%d", rr.Events)
				if rr.Capped {
					events += " (capped)"
				}
			}
			p("| %s | %s | %s | %d | %s | %s | **%.2f×** | %.1f | %.0f | %.1f |\n", w.Name, persist, k.envelope, len(rs), events, spread(perSec),
				median(perSec)/col, median(cpu), rss, median(ncpu))
		}
	}
}

// envelopeTables writes the -envelopes runs: per variant, medians over the
// rounds, with ratios to the native router of the same round; then every
// run.
func (r *results) envelopeTables(p func(string, ...any)) {
	has := false
	for _, w := range r.Workloads {
		for _, rr := range w.Routers {
			has = has || rr.Round > 0
		}
	}
	if !has {
		return
	}
	p("\n## Envelopes and grouping (`-envelopes`)\n\n")
	p("Routers (`--output-persist async`) one after another in each round on the same raw stream, in the opposite order every other round; each its own durable consumer and output stream, deleted after the run. ")
	p("`cloudevents`: structured mode, data the native document; `cloudevents-change`: data {before, after, op}; `debezium`: payload only, key in a header; `native+group`: native events, `--group transaction` (a message per transaction, in parts at the max payload or at a raw record's end); `native+tracing` (`-tracing`): native events with OpenTelemetry tracing on, a span per raw record exported over OTLP/HTTP and a traceparent header on every event. ")
	p("Medians over the rounds, (min–max); × native is the median of the ratios to the native run of the same round (higher is better for events/s, lower for CPU). CPU in µs per event; bytes per event: the output stream's bytes (JetStream's accounting: data, headers, subject) over its events.\n\n")
	p("`%s`: the workload's native events published by a client that does nothing else (ceiling.go): what the server takes; its CPU column is that client's; `%s` the same with that envelope's events. × ceiling: a router's events/s over the ceiling of its envelope's events in the same round (1.00: the server is the limit), a ceiling's over the native events' ceiling (what the envelope's bytes cost the server). With `-router-ab`, `native (B)` is the native router of the other build, next to the one of `-bin` in each round (after it in odd rounds, before it in even ones with -envelopes) (`-router-ab-envelopes`: every envelope's, × native over the native router of `-bin`). × collector: over the median collector rate of the workload. With `-ceiling-headers`, `%s` and `%s`: the native events' ceiling without that header, × ceiling over the one with both (what the header costs the server).\n\n", ceilingVariant, ceilingOf("debezium"), ceilingWithout(ceilingHeaders[0]), ceilingWithout(ceilingHeaders[1]))
	p("| workload | variant | rounds | events | messages | bytes/event | events/s | × native | × ceiling | × collector | messages/s | router CPU µs/event | × native | nats-server CPU µs/event | router peak RSS MiB |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	type row struct {
		label string
		match func(routerRun) bool
	}
	var rows []row
	for _, v := range routerVariants {
		rows = append(rows, row{v.name, func(rr routerRun) bool { return rr.Envelope == v.name && rr.Bin == "" }})
	}
	for _, v := range routerVariants {
		rows = append(rows, row{v.name + " (B)", func(rr routerRun) bool { return rr.Envelope == v.name && rr.Bin != "" }})
	}
	for _, v := range routerVariants {
		if !v.group && !v.traced {
			c := ceilingOf(v.name)
			rows = append(rows, row{c, func(rr routerRun) bool { return rr.Envelope == c }})
		}
	}
	for _, h := range ceilingHeaders {
		c := ceilingWithout(h)
		rows = append(rows, row{c, func(rr routerRun) bool { return rr.Envelope == c }})
	}
	for _, w := range r.Workloads {
		col := median(rates(w.Collector))
		for _, v := range rows {
			vs := w.runs(v.match)
			n, perSec, msgSec, cpu, ncpu, xRate, xCPU, xCeil := vs.n, vs.perSec, vs.msgSec, vs.cpu, vs.ncpu, vs.xRate, vs.xCPU, vs.xCeil
			rss, events, msgs, bytes := vs.rss, vs.events, vs.msgs, vs.bytes
			if n == 0 {
				continue
			}
			perEvent := "-"
			if bytes > 0 && events > 0 {
				perEvent = fmt.Sprintf("%.0f", float64(bytes)/float64(events))
			}
			xc := "-"
			if len(xCeil) > 0 {
				xc = fmt.Sprintf("%.2f×", median(xCeil))
			}
			p("| %s | %s | %d | %d | %d | %s | %s | **%.2f×** | %s | %.2f× | %s | %.2f | %.2f× | %.2f | %.0f |\n", w.Name, v.label, n, events, msgs, perEvent, spread(perSec),
				median(xRate), xc, median(perSec)/col, spread(msgSec), median(cpu), median(xCPU), median(ncpu), rss)
		}
	}
	p("\nEvery run, in the order run (events/s, × the same round's native; CPU µs/event; loadavg1 after the run):\n\n")
	p("| workload | round | variant | events/s | × native | × ceiling | messages | secs | router CPU µs/event | nats-server CPU µs/event | loadavg1 |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range r.Workloads {
		xCeiling := w.ceilingRatio()
		native := map[int]routerRun{}
		for _, rr := range w.Routers {
			if rr.Round > 0 && rr.Envelope == "native" && rr.Bin == "" {
				native[rr.Round] = rr
			}
		}
		for _, rr := range w.Routers {
			if rr.Round == 0 {
				continue
			}
			xc := "-"
			if x, ok := xCeiling(rr); ok {
				xc = fmt.Sprintf("%.2f", x)
			}
			if rr.Bin != "" {
				rr.Envelope += " (B)"
			}
			x := 0.0
			if nr, ok := native[rr.Round]; ok && nr.PerSec > 0 {
				x = rr.PerSec / nr.PerSec
			}
			capped := ""
			if rr.Capped {
				capped = " (capped)"
			}
			p("| %s | %d | %s | %.0f%s | %.2f | %s | %d | %.2f | %.2f | %.2f | %s |\n", w.Name, rr.Round, rr.Envelope, rr.PerSec, capped, x, xc, rr.Msgs, rr.Secs,
				perM(rr.CPU, int64(rr.Events)), perM(rr.NATSCPU, int64(rr.Events)), rr.Load)
		}
	}
}

// ceilingRatio returns, for a run of an -envelopes round, its events/s over
// a publish ceiling of the same round: a router's over the ceiling of its
// envelope's events, a ceiling's over the native events' ceiling.
func (w *workloadResult) ceilingRatio() func(routerRun) (float64, bool) {
	ceil := map[int]map[string]float64{}
	for _, rr := range w.Routers {
		if rr.Round > 0 && isCeiling(rr.Envelope) && rr.PerSec > 0 {
			if ceil[rr.Round] == nil {
				ceil[rr.Round] = map[string]float64{}
			}
			ceil[rr.Round][rr.Envelope] = rr.PerSec
		}
	}
	return func(rr routerRun) (float64, bool) {
		against := ceilingOf(rr.Envelope)
		if isCeiling(rr.Envelope) {
			against = ceilingVariant
		}
		c, ok := ceil[rr.Round][against]
		if rr.Round == 0 || !ok {
			return 0, false
		}
		return rr.PerSec / c, true
	}
}

// tracingTable compares the collector with tracing on (-tracing) with the
// one without, round by round; the router's cost is the native+tracing row
// of the envelope tables.
func (r *results) tracingTable(p func(string, ...any)) {
	has := false
	for _, w := range r.Workloads {
		has = has || len(w.Traced) > 0
	}
	if !has {
		return
	}
	p("\n## Tracing (`-tracing`)\n\n")
	p("The collector with OpenTelemetry tracing on (a span per transaction and per raw message, every span exported over OTLP/HTTP to a receiver in pgjet-bench), run in each round right after the untraced one on the same backlog, each with a nats-server of its own. ")
	p("× untraced: median of the per-round ratios (events/s: higher is better; CPU: lower). The router's cost is the `native+tracing` row above (× native).\n\n")
	p("| workload | untraced changes/s | traced changes/s | × untraced | untraced CPU s/M | traced CPU s/M | × untraced |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range r.Workloads {
		if len(w.Traced) == 0 {
			continue
		}
		xRate, xCPU := w.tracedRatios()
		cpu := func(runs []collectorRun) float64 {
			return median(w.perM(runs, func(c collectorRun) float64 { return c.CPU }))
		}
		p("| %s | %s | %s | **%.2f×** | %.1f | %.1f | %.2f× |\n", w.Name, spread(rates(w.Collector)), spread(rates(w.Traced)), median(xRate),
			cpu(w.Collector), cpu(w.Traced), median(xCPU))
	}
}

// variantStats are the -envelopes runs of one router variant of a
// workload: per run, and as ratios to the native run of the same round
// and to the publish ceiling of the variant's events in that round.
type variantStats struct {
	n                                             int
	perSec, msgSec, cpu, ncpu, xRate, xCPU, xCeil []float64
	rss                                           float64
	events, msgs, bytes                           uint64
}

// variant gathers the -envelopes runs of the router variant name (of
// -bin's build, not -router-ab's).
func (w *workloadResult) variant(name string) variantStats {
	return w.runs(func(rr routerRun) bool { return rr.Envelope == name && rr.Bin == "" })
}

// runs gathers the -envelopes runs match selects.
func (w *workloadResult) runs(match func(routerRun) bool) variantStats {
	native := map[int]routerRun{}
	for _, rr := range w.Routers {
		if rr.Round > 0 && rr.Envelope == "native" && rr.Bin == "" {
			native[rr.Round] = rr
		}
	}
	xCeiling := w.ceilingRatio()
	var s variantStats
	for _, rr := range w.Routers {
		if rr.Round == 0 || !match(rr) {
			continue
		}
		s.n++
		s.perSec = append(s.perSec, rr.PerSec)
		s.msgSec = append(s.msgSec, float64(rr.Msgs)/rr.Secs)
		s.cpu = append(s.cpu, perM(rr.CPU, int64(rr.Events)))
		s.ncpu = append(s.ncpu, perM(rr.NATSCPU, int64(rr.Events)))
		s.rss = max(s.rss, float64(rr.RSSKiB)/1024)
		s.events, s.msgs, s.bytes = rr.Events, rr.Msgs, rr.Bytes
		if nr, ok := native[rr.Round]; ok && nr.PerSec > 0 && nr.CPU > 0 {
			s.xRate = append(s.xRate, rr.PerSec/nr.PerSec)
			s.xCPU = append(s.xCPU, perM(rr.CPU, int64(rr.Events))/perM(nr.CPU, int64(nr.Events)))
		}
		if x, ok := xCeiling(rr); ok {
			s.xCeil = append(s.xCeil, x)
		}
	}
	return s
}

// tracedRatios are the per-round ratios of the traced collector to the
// untraced one: changes/s and CPU.
func (w *workloadResult) tracedRatios() (xRate, xCPU []float64) {
	for i := range w.Traced {
		if i < len(w.Collector) && w.Collector[i].PerSec > 0 && w.Collector[i].CPU > 0 {
			xRate = append(xRate, w.Traced[i].PerSec/w.Collector[i].PerSec)
			xCPU = append(xCPU, w.Traced[i].CPU/w.Collector[i].CPU)
		}
	}
	return xRate, xCPU
}
