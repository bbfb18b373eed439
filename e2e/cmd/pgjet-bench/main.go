// Command pgjet-bench measures pgjet against the pgoutput decoding ceiling on
// a throwaway PostgreSQL cluster and nats-server, and writes the figures as
// Markdown tables (docs/benchmarks.md explains the method).
//
// For each workload it writes a backlog with several logical slots created
// before it, so every reader drains the same WAL:
//
//   - ceiling: pg_recvlogical (pgoutput, to /dev/null) up to the backlog's end,
//     once before and once after the collector, to see the noise;
//   - collector against the external nats-server (sync_interval: always),
//     timed from process start until the raw stream holds the backlog's last
//     change;
//   - collector with its embedded server (also fsync per write);
//   - routers from the filled raw stream, output stream with the server's
//     persistence and with --output-persist async;
//   - with -router-ab DIR: the router of DIR too, interleaved with the
//     one of -bin in every async round;
//   - with -envelopes: instead of the async native and cloudevents rounds,
//     rounds of five routers one after another (native, cloudevents,
//     cloudevents with data change, debezium, native with --group
//     transaction), in the opposite order every other round, then the
//     publish ceiling of the workload's native events (ceiling.go); with
//     -router-ab too, the native router of DIR next to the one of -bin
//     (after it in odd rounds, before it in even ones);
//   - snapshot: the collector's initial snapshot of a table of 1,000,000
//     rows against COPY ... TO STDOUT of it, alternating;
//   - with -profile: the collector and a router again under `perf record`
//     (with -envelopes, the debezium and grouping routers too).
//
// Then the end-to-end latency at a fixed commit rate with collector and
// router running: arrival at a consumer of the output stream minus the
// event's commit time, for each of -e2e-envelopes.
//
// Usage (from the repository root, after `make build`):
//
//	go run ./e2e/cmd/pgjet-bench [-quick] [-out DIR] [-workloads oltp,bulk,wide,toast,snapshot] [-e2e=false] [-profile] [-envelopes]
//
// BENCH_QUICK=1 is the same as -quick.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/shared/pgtest"
)

type config struct {
	quick     bool
	binDir    string
	outDir    string
	workloads []string
	e2e       bool
	persists  []string
	natsSync  string
	e2eSecs   int
	e2eRate   int
	profile   bool
	keep      bool
	runs      int
	oltpTx    int // -oltp-tx: the OLTP backlog's transactions, when set
	// routerFsync adds the router run with a fsync-per-write output stream.
	routerFsync bool
	// routerAB is a directory with another pgjet-router, timed in every
	// async round right after the one of binDir (an A/B of a change).
	routerAB string
	// routerABEnvelopes: with -envelopes, the routers of routerAB in every
	// envelope, not only native.
	routerABEnvelopes bool
	// envelopes: rounds of every router variant (routerVariants).
	envelopes bool
	// ceilingHeaders: with envelopes, also the native events' ceiling
	// without each header the router sets (ceilingHeaders).
	ceilingHeaders bool
	// variants are the router variants -envelopes times (native always:
	// the others' ratios are to it).
	variants []string
	// e2eEnvelopes are the router variants of the end-to-end runs.
	e2eEnvelopes []string
	// tracing: time a collector and a router with OpenTelemetry tracing on
	// (an OTLP/HTTP receiver in this process) beside the untraced ones.
	tracing bool
}

// bench is one benchmark session: a Postgres cluster, a work dir and the results.
type bench struct {
	cfg   config
	sizes sizes
	dir   string // logs, scripts, JetStream stores
	pg    *pgtest.Cluster
	pgBin string
	dsn   string
	conn  *pgx.Conn // admin queries, used from the main goroutine only
	perf  string    // path of perf, when profiling

	lastPgbench string
	res         results
	// samples are events of a router, by workload and variant: what the publish
	// ceiling publishes.
	samples map[string][]*nats.Msg
	// otelEnv turns tracing on in a process (-tracing), exporting to the
	// receiver in this one.
	otelEnv []string
}

func main() {
	var c config
	var wl string
	flag.BoolVar(&c.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "small sizes: a smoke test that runs in a few minutes (also BENCH_QUICK=1)")
	flag.StringVar(&c.binDir, "bin", "bin", "directory with pgjet-collector, pgjet-router and nats-server (make build)")
	flag.StringVar(&c.outDir, "out", "", "directory for results.md, results.json, logs and profiles (default tmp/bench-<time>)")
	flag.StringVar(&wl, "workloads", "oltp,bulk,wide,toast,snapshot", "workloads to run, comma-separated (snapshot: the initial snapshot of a table against COPY of it)")
	flag.BoolVar(&c.e2e, "e2e", true, "measure end-to-end latency at a fixed commit rate")
	persists := flag.String("e2e-persist", "default,async", "--output-persist values of the routers in the end-to-end runs, comma-separated")
	e2eEnvelopes := flag.String("e2e-envelopes", "native", "router variants of the end-to-end runs, comma-separated (native, cloudevents, cloudevents-change, debezium): one run each per --e2e-persist value")
	flag.IntVar(&c.e2eSecs, "e2e-seconds", 0, "length of each end-to-end run (default 60 s, 8 s with -quick)")
	flag.IntVar(&c.e2eRate, "e2e-rate", 2000, "commits per second in the end-to-end runs")
	flag.StringVar(&c.natsSync, "nats-sync", "always", "sync_interval of the nats-servers: always is what pgjet promises; a duration (e.g. 2m, JetStream's default) only to attribute time to fsyncs")
	flag.BoolVar(&c.profile, "profile", false, "also profile the collector and a router with `perf record` (separate, untimed runs)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work dir (logs, stores) after the run")
	flag.IntVar(&c.oltpTx, "oltp-tx", 0, "single-row transactions of the OLTP backlog (default 200000, 20000 with -quick): more make router runs long enough to compare on a busy machine")
	flag.IntVar(&c.runs, "runs", 0, "rounds of ceiling/collector runs per workload (default 3, 1 with -quick)")
	flag.BoolVar(&c.routerFsync, "router-fsync", true, "also time a router whose output stream fsyncs every write (about 90 s on the full OLTP backlog)")
	flag.StringVar(&c.routerAB, "router-ab", "", "directory with another pgjet-router to time in every async round, right after the one of -bin (with -envelopes: next to it, the order taking turns)")
	flag.BoolVar(&c.routerABEnvelopes, "router-ab-envelopes", false, "with -envelopes and -router-ab: time the other router in every envelope (cloudevents, cloudevents-change, debezium), not only native, each next to the one of -bin (after it in odd rounds, before it in even ones)")
	charts := flag.String("charts", "", "draw the charts of docs/benchmarks.md from this results.json into -chart-dir and exit (make bench-charts)")
	chartDir := flag.String("chart-dir", "docs/benchmarks", "directory of the charts -charts writes")
	flag.BoolVar(&c.tracing, "tracing", true, "also time, in every round, a collector and a router (native) exporting every span over OTLP/HTTP to a receiver in this process, for the cost of tracing")
	variants := flag.String("variants", "", "with -envelopes: the router variants to time, comma-separated (native is always timed; default: all), e.g. native,debezium for more rounds of one comparison in the same time")
	flag.BoolVar(&c.ceilingHeaders, "ceiling-headers", false, "with -envelopes: in every round also the native events' publish ceiling without Nats-Msg-Id and without Nats-Expected-Stream, for what each header costs the server")
	flag.BoolVar(&c.envelopes, "envelopes", false, "time routers of every envelope (native, cloudevents, cloudevents data change, debezium) and native with --group transaction, alternating within each round, instead of the async native and cloudevents rounds")
	flag.Parse()
	if *charts != "" {
		if err := writeCharts(*charts, *chartDir); err != nil {
			fmt.Fprintf(os.Stderr, "pgjet-bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	c.workloads = strings.Split(wl, ",")
	c.persists = strings.Split(*persists, ",")
	c.e2eEnvelopes = strings.Split(*e2eEnvelopes, ",")
	c.variants = nil
	for _, v := range routerVariants {
		c.variants = append(c.variants, v.name)
	}
	if *variants != "" {
		if !c.envelopes {
			fmt.Fprintln(os.Stderr, "pgjet-bench: -variants goes with -envelopes")
			os.Exit(2)
		}
		c.variants = append(strings.Split(*variants, ","), "native")
	}
	for _, e := range append(slices.Clone(c.e2eEnvelopes), c.variants...) {
		if !slices.ContainsFunc(routerVariants, func(v routerVariant) bool { return v.name == e }) {
			fmt.Fprintf(os.Stderr, "pgjet-bench: unknown router variant %q\n", e)
			os.Exit(2)
		}
	}
	if c.outDir == "" {
		c.outDir = filepath.Join("tmp", "bench-"+time.Now().Format("20060102-150405"))
	}

	// Clean up on Ctrl-C too: Postgres runs detached and would outlive us.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "pgjet-bench: %s, cleaning up\n", s)
		runCleanups()
		os.Exit(130)
	}()

	err := run(c)
	runCleanups()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx := context.Background()
	b := &bench{cfg: c, sizes: fullSizes, samples: map[string][]*nats.Msg{}}
	if c.quick {
		b.sizes = quickSizes
	}
	if c.runs > 0 {
		b.sizes.runs = c.runs
	}
	if c.oltpTx > 0 {
		b.sizes.oltpTx = c.oltpTx
	}
	if c.e2eRate > 0 {
		b.sizes.e2eRate = c.e2eRate
	}
	if c.e2eSecs > 0 {
		b.sizes.e2eSeconds = c.e2eSecs
	}
	var err error
	if c.binDir, err = filepath.Abs(c.binDir); err != nil {
		return err
	}
	b.cfg.binDir = c.binDir
	for _, name := range []string{"pgjet-collector", "pgjet-router", "nats-server"} {
		if _, err := os.Stat(filepath.Join(c.binDir, name)); err != nil {
			return fmt.Errorf("%s missing in %s: run `make build` first", name, c.binDir)
		}
	}
	if c.routerAB != "" {
		if c.routerAB, err = filepath.Abs(c.routerAB); err != nil {
			return err
		}
		b.cfg.routerAB = c.routerAB
		b.cfg.routerABEnvelopes = c.routerABEnvelopes
		if _, err := os.Stat(filepath.Join(c.routerAB, "pgjet-router")); err != nil {
			return fmt.Errorf("-router-ab: pgjet-router missing in %s", c.routerAB)
		}
	}
	for _, tool := range []string{"pgbench", "pg_recvlogical"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not on PATH (Debian: postgresql-client)", tool)
		}
	}
	if c.profile {
		if b.perf, err = exec.LookPath("perf"); err != nil {
			return fmt.Errorf("-profile needs perf (linux-perf): %w", err)
		}
	}
	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "pgjet-bench-"); err != nil {
		return err
	}
	if !c.keep {
		atExit(func() { os.RemoveAll(b.dir) })
	}
	logf("work dir %s, results in %s", b.dir, c.outDir)

	if b.pgBin, err = pgtest.BinDir(); err != nil {
		return err
	}
	// Settings of ../shared/bench/pg-up.sh, where the reference figures come
	// from: fsync stays on (pgtest turns it off for tests), a large
	// shared_buffers and max_wal_size so bulk loads see few checkpoints.
	b.pg, err = pgtest.Start(
		"fsync = on",
		"shared_buffers = 512MB",
		"max_wal_size = 4GB",
		"max_replication_slots = 20",
		"max_wal_senders = 20",
	)
	if err != nil {
		return err
	}
	atExit(b.pg.Stop)
	if c.tracing {
		// An OTLP/HTTP receiver that takes every export and keeps nothing:
		// what tracing costs the processes, not what a backend costs.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-protobuf")
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		atExit(func() { _ = srv.Close() })
		b.otelEnv = []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String()}
	}
	b.dsn = b.pg.DSN("")
	if b.conn, err = pgx.Connect(ctx, b.dsn); err != nil {
		return err
	}
	atExit(func() { b.conn.Close(context.Background()) })
	b.res.Machine = machineInfo(ctx, b)
	b.res.Quick = c.quick
	b.res.Started = time.Now().UTC().Format(time.RFC3339)

	for _, w := range workloads(b.sizes) {
		if !slices.Contains(c.workloads, w.name) {
			continue
		}
		r, err := b.runWorkload(ctx, w)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.name, err)
		}
		b.res.Workloads = append(b.res.Workloads, r)
		b.save() // partial results survive a later failure
	}
	if slices.Contains(c.workloads, "snapshot") {
		r, err := b.runSnapshot(ctx)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		b.res.Snapshot = r
		b.save()
	}
	if c.e2e {
		for _, persist := range c.persists {
			for _, env := range c.e2eEnvelopes {
				r, err := b.runE2E(ctx, persist, variantNamed(env))
				if err != nil {
					return fmt.Errorf("end-to-end (%s, %s): %w", persist, env, err)
				}
				b.res.E2E = append(b.res.E2E, r)
				b.save()
			}
		}
	}
	b.res.Finished = time.Now().UTC().Format(time.RFC3339)
	b.save()
	md, _ := os.ReadFile(filepath.Join(c.outDir, "results.md"))
	fmt.Print(string(md))
	return nil
}

// save writes results.json and results.md.
func (b *bench) save() {
	j, _ := json.MarshalIndent(b.res, "", "  ")
	if err := os.WriteFile(filepath.Join(b.cfg.outDir, "results.json"), j, 0o644); err != nil {
		logf("write results.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.cfg.outDir, "results.md"), []byte(b.res.markdown()), 0o644); err != nil {
		logf("write results.md: %v", err)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s pgjet-bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// exec runs SQL (several statements allowed) on the admin connection.
func (b *bench) exec(ctx context.Context, sql string) error {
	_, err := b.conn.Exec(ctx, sql)
	return err
}

func machineInfo(ctx context.Context, b *bench) machine {
	m := machine{}
	m.NProc = strings.TrimSpace(cmdOut("nproc"))
	if cpu, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(cpu), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	m.Kernel = strings.TrimSpace(cmdOut("uname", "-r"))
	if mem, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory = strings.TrimSpace(strings.TrimPrefix(strings.Split(string(mem), "\n")[0], "MemTotal:"))
	}
	_ = b.conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres)
	m.NATS = strings.TrimSpace(cmdOut(filepath.Join(b.cfg.binDir, "nats-server"), "--version"))
	m.Go = strings.TrimSpace(cmdOut("go", "version"))
	m.LoadStart = strings.TrimSpace(cmdOut("cat", "/proc/loadavg"))
	// The binaries are built from the working tree: name the commit and
	// whether anything differed from it.
	m.Code = strings.TrimSpace(cmdOut("git", "log", "-1", "--format=%h %s"))
	if dirty := strings.TrimSpace(cmdOut("git", "status", "--short", "--untracked-files=no")); dirty != "" && dirty != "?" {
		m.Code += " + uncommitted changes in " + strings.Join(strings.Fields(strings.ReplaceAll(dirty, "M ", " ")), " ")
	}
	return m
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}
