package plan

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/wire"
)

// The routes benchmarks measure what a second and third route cost one
// router process: Run with a Plan of 1 route, of 3 routes selecting every
// table, and of 3 routes selecting one table each, all reading the same raw
// stream. Every route has its own durable consumer, so each one reads and
// decodes every raw record; the disjoint case publishes the same events as
// the single route, only split three ways.
//
// The raw records are BenchmarkRelay's (package relay): transactions of 500
// inserts of (id int4, name text), here rotating over three tables of that
// shape so that routes can select disjoint thirds. The in-process server
// (natstest) fsyncs every write (sync_interval always, as pgjet deploys
// it); the raw stream is filled before the clock starts, and the output
// streams have async persistence (--output-persist async, what a router
// needs to keep up with a fsyncing server; with per-write fsyncs the
// benchmark would measure the disk, ~2,700 events/s). Output streams are
// created before the clock starts, with the settings the relay gives them.
//
// Reported per variant: events/s (stored, all routes), events/s/route,
// changes/s (raw changes every route has handled, per second: how fast the
// router drains the raw stream), and the process's CPU time (getrusage:
// router and in-process server together) per raw change and per stored
// event. CPU time is less sensitive than wall time to other processes on
// the machine.

const (
	benchRecords   = 240 // raw records
	benchPerRecord = 500 // inserts per record
	benchChanges   = benchRecords * benchPerRecord
	benchRaw       = "PGJET_RAW"
)

var (
	benchSource = wire.Source{Name: "test", SystemID: 7300000000000000001, Timeline: 1, Database: "app", Slot: "pgjet"}
	// benchTables have the columns of the relay benchmark's users table.
	benchTables = []wire.Relation{benchTable(16384, "users"), benchTable(16390, "orders"), benchTable(16396, "items")}
)

func benchTable(id uint32, name string) wire.Relation {
	return wire.Relation{ID: id, Schema: "public", Table: name, ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "name", TypeOID: 25, TypeMod: -1},
	}}
}

func benchText(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

// benchRawRecords are the raw records, marshalled once: change i is on
// table i%3.
func benchRawRecords(b *testing.B) [][]byte {
	b.Helper()
	out := make([][]byte, 0, benchRecords)
	for r := 0; r < benchRecords; r++ {
		tx := wire.Tx{Xid: uint32(r), CommitLSN: uint64(r+1) << 16, CommitTime: time.Now().UnixMicro(), Final: true}
		for i := 0; i < benchPerRecord; i++ {
			n := r*benchPerRecord + i
			id := strconv.Itoa(n)
			tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: int32(n % len(benchTables)), New: []wire.Value{benchText(id), benchText("user number " + id)}})
		}
		data, err := wire.Marshal(&wire.Message{Source: benchSource, Relations: benchTables, Txs: []wire.Tx{tx}})
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// routesVariant is one router configuration.
type routesVariant struct {
	name     string
	routes   int
	disjoint bool // route k selects only table k; otherwise every route selects every table
	// partitioned: the routes are the shares k/routes of one route, writing
	// one output stream (as many routers would).
	partitioned bool
}

var routesVariants = []routesVariant{
	{name: "routes=1", routes: 1},
	{name: "routes=3", routes: 3},
	{name: "routes=3-disjoint", routes: 3, disjoint: true},
}

// events is what route k stores.
func (v routesVariant) events(k int) int {
	if v.partitioned {
		return 0 // counted on the one stream
	}
	if !v.disjoint {
		return benchChanges
	}
	n := benchChanges / len(benchTables)
	if k < benchChanges%len(benchTables) {
		n++
	}
	return n
}

func (v routesVariant) totalEvents() int {
	if v.partitioned {
		return benchChanges
	}
	n := 0
	for k := 0; k < v.routes; k++ {
		n += v.events(k)
	}
	return n
}

type routesResult struct {
	wall, cpu time.Duration
	events    int
}

// runRoutes runs one router with variant v on a fresh server holding the
// raw records, timed from Run until every route's output stream holds all
// its events.
func runRoutes(b *testing.B, v routesVariant, raw [][]byte) routesResult {
	b.Helper()
	dir, err := os.MkdirTemp("", "pgjet-routes-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := natstest.RunDir(b, dir)
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: benchRaw, Subjects: []string{wire.RawFilter}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	for _, data := range raw {
		if _, err := js.Publish(ctx, wire.RawSubjectPrefix+"test", data); err != nil {
			b.Fatalf("publish raw: %v", err)
		}
	}

	p := &Plan{Raw: natsconn.Config{URL: srv.ClientURL()}, RawStream: benchRaw}
	for k := 0; k < v.routes; k++ {
		id := "r" + strconv.Itoa(k+1)
		rc := route.Config{Name: id, Prefix: "pg" + strconv.Itoa(k+1)} // own subjects: streams on one server must not overlap
		stream := "EVENTS_" + id
		if v.partitioned {
			rc = route.Config{Name: "p", Prefix: "pg", Partition: k, Partitions: v.routes}
			stream = "EVENTS"
		}
		if v.disjoint {
			rc.Include = []string{"public." + benchTables[k].Table}
		}
		rt, err := route.New(rc)
		if err != nil {
			b.Fatal(err)
		}
		r := Route{ID: id, Conn: natsconn.Config{URL: srv.ClientURL()}, Relay: relay.Config{
			RawStream: benchRaw, Durable: "bench-" + id, Stream: stream, Route: rt,
			PersistAsync: true, Duplicates: relay.DefaultDuplicates,
			PublishTimeout: 10 * time.Second, AckWait: time.Minute,
		}}
		// As ensureOutput would create it, but before the clock starts.
		if v.partitioned && k > 0 {
			p.Routes = append(p.Routes, r)
			continue
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: r.Relay.Stream, Subjects: rt.Subjects(), Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			MaxBytes: -1, MaxMsgs: -1, Duplicates: r.Relay.Duplicates, PersistMode: jetstream.AsyncPersistMode,
		}); err != nil {
			b.Fatal(err)
		}
		p.Routes = append(p.Routes, r)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Garbage of earlier runs (their servers) is not this run's to collect.
	runtime.GC()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	b.StartTimer()
	cpu0 := processCPU()
	start := time.Now()
	// Label the router's goroutines (inherited by those it starts, its NATS
	// clients' included), so a CPU profile tells them from the server's:
	// go tool pprof -tagfocus side=router.
	go pprof.Do(runCtx, pprof.Labels("side", "router"), func(ctx context.Context) { done <- Run(ctx, p, log, io.Discard) })
	for k := range p.Routes {
		if v.partitioned {
			if k == 0 {
				waitStored(b, js, "EVENTS", benchChanges, done)
			}
			continue
		}
		waitStored(b, js, p.Routes[k].Relay.Stream, v.events(k), done)
	}
	res := routesResult{wall: time.Since(start), cpu: processCPU() - cpu0, events: v.totalEvents()}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return res
}

// waitStored polls stream until it holds want messages. One stream info
// request per 2 ms costs the server little next to the routes' work.
func waitStored(b *testing.B, js jetstream.JetStream, stream string, want int, done <-chan error) {
	b.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := s.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs >= uint64(want) {
			return
		}
		select {
		case err := <-done:
			b.Fatalf("router stopped with %d of %d events in %s: %v", info.State.Msgs, want, stream, err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// processCPU is the user + system time of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRoutes(b *testing.B, v routesVariant, prefix string, rs []routesResult) {
	var wall, cpu time.Duration
	events := 0
	for _, r := range rs {
		wall += r.wall
		cpu += r.cpu
		events += r.events
	}
	b.ReportMetric(float64(events)/wall.Seconds(), prefix+"events/s")
	b.ReportMetric(float64(events)/float64(v.routes)/wall.Seconds(), prefix+"events/s/route")
	b.ReportMetric(float64(benchChanges*len(rs))/wall.Seconds(), prefix+"changes/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(benchChanges*len(rs)), prefix+"cpu-µs/change")
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), prefix+"cpu-µs/event")
}

// BenchmarkRoutes runs each variant on its own, b.N times: for profiles
// (-bench 'Routes/routes=3$' -cpuprofile ...). Compare variants with
// BenchmarkRoutesAlternating, which interleaves them.
func BenchmarkRoutes(b *testing.B) {
	raw := benchRawRecords(b)
	for _, v := range routesVariants {
		b.Run(v.name, func(b *testing.B) {
			b.StopTimer()
			var rs []routesResult
			for i := 0; i < b.N; i++ {
				rs = append(rs, runRoutes(b, v, raw))
			}
			reportRoutes(b, v, "", rs)
		})
	}
}

// BenchmarkRoutesAlternating runs every variant once per iteration (a
// round), in an order that rotates from round to round, so that load from
// elsewhere on the machine hits a round rather than one variant. It reports
// each variant's figures and the median over rounds of the per-round ratios
// of 3 routes to 1: wall time to drain the raw stream, and process CPU.
func BenchmarkRoutesAlternating(b *testing.B) {
	raw := benchRawRecords(b)
	b.StopTimer()
	rs := make([][]routesResult, len(routesVariants))
	for i := 0; i < b.N; i++ {
		for j := range routesVariants {
			k := (i + j) % len(routesVariants)
			rs[k] = append(rs[k], runRoutes(b, routesVariants[k], raw))
		}
		one, all, dis := rs[0][i], rs[1][i], rs[2][i]
		b.Logf("round %d/%d: changes/s %.0f / %.0f / %.0f, cpu-µs/change %.2f / %.2f / %.2f (routes=1 / 3 / 3-disjoint)", i+1, b.N,
			benchChanges/one.wall.Seconds(), benchChanges/all.wall.Seconds(), benchChanges/dis.wall.Seconds(),
			float64(one.cpu.Microseconds())/benchChanges, float64(all.cpu.Microseconds())/benchChanges, float64(dis.cpu.Microseconds())/benchChanges)
	}
	short := []string{"r1-", "r3-", "r3disj-"}
	for k, v := range routesVariants {
		reportRoutes(b, v, short[k], rs[k])
	}
	ratio := func(k int, f func(routesResult) time.Duration) float64 {
		var xs []float64
		for i := range rs[0] {
			xs = append(xs, float64(f(rs[k][i]))/float64(f(rs[0][i])))
		}
		slices.Sort(xs)
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	wall := func(r routesResult) time.Duration { return r.wall }
	cpu := func(r routesResult) time.Duration { return r.cpu }
	b.ReportMetric(ratio(1, wall), "r3/r1-wall")
	b.ReportMetric(ratio(1, cpu), "r3/r1-cpu")
	b.ReportMetric(ratio(2, wall), "r3disj/r1-wall")
	b.ReportMetric(ratio(2, cpu), "r3disj/r1-cpu")
	// Per-op time is a round's three runs: not a figure to read.
	b.ReportMetric(0, "ns/op")
}

// partitionVariants compare one router with two partitions of it, both
// in this process (two routers on this 2-core machine share it anyway).
var partitionVariants = []routesVariant{
	{name: "partitions=1", routes: 1},
	{name: "partitions=2", routes: 2, partitioned: true},
}

// BenchmarkPartitionsAlternating runs one router and two partitions of it
// once per iteration, alternating, and reports the median ratio of their
// events/s and CPU per event.
func BenchmarkPartitionsAlternating(b *testing.B) {
	raw := benchRawRecords(b)
	var one, two []routesResult
	var rate, cpu []float64
	for i := 0; i < b.N; i++ {
		order := partitionVariants
		if i%2 == 1 {
			order = []routesVariant{partitionVariants[1], partitionVariants[0]}
		}
		got := map[string]routesResult{}
		for _, v := range order {
			b.StopTimer()
			got[v.name] = runRoutes(b, v, raw)
		}
		r1, r2 := got["partitions=1"], got["partitions=2"]
		one, two = append(one, r1), append(two, r2)
		rate = append(rate, r1.wall.Seconds()/r2.wall.Seconds())
		cpu = append(cpu, (r2.cpu.Seconds()/float64(r2.events))/(r1.cpu.Seconds()/float64(r1.events)))
		b.Logf("round %d/%d: events/s %.0f (1) %.0f (2 partitions), cpu-µs/event %.2f / %.2f", i+1, b.N,
			float64(r1.events)/r1.wall.Seconds(), float64(r2.events)/r2.wall.Seconds(),
			1e6*r1.cpu.Seconds()/float64(r1.events), 1e6*r2.cpu.Seconds()/float64(r2.events))
	}
	reportRoutes(b, partitionVariants[0], "one/", one)
	reportRoutes(b, partitionVariants[1], "two/", two)
	slices.Sort(rate)
	slices.Sort(cpu)
	b.ReportMetric(rate[len(rate)/2], "events/s-ratio-2:1")
	b.ReportMetric(cpu[len(cpu)/2], "cpu/event-ratio-2:1")
}
