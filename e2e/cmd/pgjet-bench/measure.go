package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// The raw stream's name, as the collector creates it by default.
const rawStream = "PGJET_RAW"

type results struct {
	Machine   machine
	Quick     bool
	Started   string
	Finished  string
	Workloads []workloadResult
	E2E       []e2eResult
	Snapshot  *snapshotResult
}

type machine struct {
	NProc, CPU, Kernel, Memory, Postgres, NATS, Go, LoadStart, Code string
}

type workloadResult struct {
	Name, Title string
	Changes     int64 // row changes in the backlog (the end marker not counted)
	WriteSecs   float64
	WALBytes    int64
	Ceiling     []ceilingRun   // one per round
	Collector   []collectorRun // external nats-server, one per round
	Embedded    []collectorRun // --embedded, one per round
	Traced      []collectorRun // external nats-server, tracing on (-tracing), one per round
	Routers     []routerRun
	Profiles    []profile
}

type ceilingRun struct {
	Secs, PerSec float64
	WalsenderCPU float64 // CPU seconds of the walsender serving pg_recvlogical
	Load         string
}

type collectorRun struct {
	Mode         string // "external" or "embedded"
	Secs, PerSec float64
	CPU          float64 // collector CPU seconds until done
	WalsenderCPU float64
	NATSCPU      float64 // external nats-server CPU seconds while it ran
	RSSKiB       int64
	Counted      uint64 // changes the collector reports having published
	RawMsgs      uint64
	RawBytes     uint64
	Load         string
}

type routerRun struct {
	Bin      string // the -router-ab directory; empty for -bin
	Persist  string
	Envelope string // the variant's name (routerVariants): native, cloudevents (structured, data native), ...
	// Round of an -envelopes run (1...), 0 otherwise.
	Round int
	// Group: --group transaction; Msgs is then the messages stored (parts
	// of transactions), Events the events they hold.
	Group        bool
	Msgs         uint64
	Bytes        uint64 // the output stream's, when done
	Events       uint64
	Secs, PerSec float64
	CPU, NATSCPU float64
	NATSSyscalls uint64 // the server's reads and writes while it ran
	RSSKiB       int64
	Capped       bool // stopped at the time cap before storing everything
	Load         string
}

type profile struct {
	What      string
	File      string
	Self, Cum string // perf report excerpts
	Key       string // shares of the pipeline's stages (keySymbols)
}

type e2eResult struct {
	Persist                       string
	Envelope                      string // the router's variant
	Rate, Seconds                 int
	Txs                           int64
	Events                        int
	P50, P90, P99, P999, Max      float64   // milliseconds
	CollectorCPU, RouterCPU, NATS float64   // % of one core over the run
	Pgbench                       string    // pgbench's own latency and tps lines
	Series                        []float64 // max latency (ms) per tenth of the run, by commit time
	Load                          string
	// Where the backlog sits, sampled every 100 ms while pgbench runs (max
	// and mean, kB of WAL): written but not yet sent by the walsender
	// (decoding), and sent but not yet confirmed by the collector (its
	// reading, batching and the fsynced raw publish).
	UnsentMaxKB, UnsentMeanKB           float64
	UnconfirmedMaxKB, UnconfirmedMeanKB float64
	// The collector's own progress lines (every 10 s): per interval, lag from
	// commit to decoded (the walsender's share) and to stored.
	CollectorLags []string
	// Latency by stage, from the commit: until the raw record holding the
	// transaction was stored (collector), until the event was stored in the
	// output stream (router), until it reached the measuring consumer.
	Stages []stage
}

// stage is the latency distribution (ms) from commit to one point of the path.
type stage struct {
	Name                     string
	N                        int
	P50, P90, P99, P999, Max float64
}

// newStage sorts lat (microseconds) and summarizes it.
func newStage(name string, lat []int64) stage {
	s := stage{Name: name, N: len(lat)}
	if len(lat) == 0 {
		return s
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1000 }
	s.P50, s.P90, s.P99, s.P999, s.Max = pct(0.5), pct(0.9), pct(0.99), pct(0.999), float64(lat[len(lat)-1])/1000
	return s
}

func (b *bench) runWorkload(ctx context.Context, w workload) (workloadResult, error) {
	r := workloadResult{Name: w.name, Title: w.title}
	logf("%s: preparing", w.name)
	if err := w.prepare(ctx, b); err != nil {
		return r, err
	}
	if err := b.exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %[1]s; CREATE PUBLICATION %[1]s FOR TABLE %[1]s", w.name)); err != nil {
		return r, err
	}
	if err := b.exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	// Every reader gets its own slot, created before the backlog: they all
	// decode exactly the same WAL.
	var slots []string
	slot := func(role string) string { return w.name + "_" + role }
	roles := []string{}
	for i := 1; i <= b.sizes.runs; i++ {
		roles = append(roles, fmt.Sprintf("ceil%d", i), fmt.Sprintf("pgjet%d", i), fmt.Sprintf("embedded%d", i))
		if b.cfg.tracing {
			roles = append(roles, fmt.Sprintf("traced%d", i))
		}
	}
	if b.perf != "" {
		roles = append(roles, "prof")
	}
	for _, role := range roles {
		if _, err := b.conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot(role)); err != nil {
			return r, fmt.Errorf("create slot: %w", err)
		}
		slots = append(slots, slot(role))
	}
	defer func() {
		for _, s := range slots {
			_ = b.dropSlot(ctx, s)
		}
		_ = b.exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %[1]s; DROP TABLE IF EXISTS %[1]s", w.name))
		_ = b.exec(ctx, "CHECKPOINT")
	}()

	var l0 string
	if err := b.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&l0); err != nil {
		return r, err
	}
	logf("%s: writing the backlog: %s", w.name, w.title)
	t0 := time.Now()
	changes, err := w.write(ctx, b)
	if err != nil {
		return r, err
	}
	r.WriteSecs = time.Since(t0).Seconds()
	r.Changes = changes
	// The end marker: a non-transactional logical message. Its LSN (the end
	// of its WAL record) is both what pgoutput reports for it and what
	// pg_logical_emit_message returns, so "the raw stream holds the marker"
	// and "pg_recvlogical -E marker" mean the same point of the WAL.
	var endText string
	if err := b.conn.QueryRow(ctx, "SELECT pg_logical_emit_message(false, 'pgjet-bench', 'end')::text").Scan(&endText); err != nil {
		return r, err
	}
	lsn, err := wire.ParseLSN(endText)
	lend := uint64(lsn)
	if err != nil {
		return r, err
	}
	if err := b.conn.QueryRow(ctx, "SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint", endText, l0).Scan(&r.WALBytes); err != nil {
		return r, err
	}
	logf("%s: %d changes written in %.1fs, WAL %s..%s (%.1f MB)", w.name, changes, r.WriteSecs, l0, endText, float64(r.WALBytes)/1e6)

	// Rounds of ceiling, collector (external server), collector (embedded),
	// interleaved so that a burst of noise from elsewhere on the machine
	// hits one round rather than one contender.
	var n *natsServer // the last round's server: its raw stream feeds the routers
	defer func() {
		if n != nil {
			n.stop()
		}
	}()
	timeout := 10 * time.Minute
	for i := 1; i <= b.sizes.runs; i++ {
		c, err := b.ceiling(ctx, slot(fmt.Sprintf("ceil%d", i)), w.name, lend, changes)
		if err != nil {
			return r, err
		}
		r.Ceiling = append(r.Ceiling, c)
		timeout = time.Duration(c.Secs*20)*time.Second + 2*time.Minute
		if n != nil {
			n.stop()
		}
		if n, err = b.startNATS(fmt.Sprintf("nats-%s-%d", w.name, i)); err != nil {
			return r, err
		}
		col, err := b.runCollector(ctx, w, slot(fmt.Sprintf("pgjet%d", i)), n, lend, changes, timeout, "", nil)
		if err != nil {
			return r, err
		}
		r.Collector = append(r.Collector, col)
		if b.cfg.tracing {
			// Its own server: the raw stream of n feeds the routers.
			tn, err := b.startNATS(fmt.Sprintf("nats-%s-traced-%d", w.name, i))
			if err != nil {
				return r, err
			}
			tc, err := b.runCollector(ctx, w, slot(fmt.Sprintf("traced%d", i)), tn, lend, changes, timeout, "", b.otelEnv)
			tn.stop()
			if err != nil {
				return r, err
			}
			r.Traced = append(r.Traced, tc)
		}
		emb, err := b.runCollector(ctx, w, slot(fmt.Sprintf("embedded%d", i)), nil, lend, changes, timeout, "", nil)
		if err != nil {
			return r, err
		}
		r.Embedded = append(r.Embedded, emb)
	}

	// Every change of the backlog plus the end marker becomes one event.
	expected := uint64(changes) + 1
	if got := r.Collector[len(r.Collector)-1].Counted; got != 0 && got != expected {
		logf("%s: the collector reports %d changes, the backlog has %d (+1 marker)", w.name, got, changes)
		expected = got
	}
	// The fsync-per-event output is slow and steady: one capped run. The
	// async one is repeated like the collector.
	if b.cfg.routerFsync {
		rr, err := b.runRouter(ctx, n, w.name, "default", "", "default", variantNamed("native"), expected, "")
		if err != nil {
			return r, err
		}
		r.Routers = append(r.Routers, rr)
	}
	bins := []string{""}
	if b.cfg.routerAB != "" {
		bins = append(bins, b.cfg.routerAB)
	}
	for i := 1; i <= b.sizes.runs && !b.cfg.envelopes; i++ {
		for _, env := range []string{"native", "cloudevents"} {
			for bi, bin := range bins {
				tag := fmt.Sprintf("async%s%d", env, i)
				if bi > 0 {
					tag += "b"
				}
				rr, err := b.runRouter(ctx, n, w.name, tag, bin, "async", variantNamed(env), expected, "")
				if err != nil {
					return r, err
				}
				r.Routers = append(r.Routers, rr)
			}
		}
	}
	// -envelopes: every variant once per round on the same raw stream, in
	// the opposite order every other round, so that a drift of the
	// machine's load (or a warming cache) favours no variant.
	// The builds of -router-ab take turns too: a run right after another
	// is slower (in one run, the same native router 7% slower when it
	// always came second).
	for i := 1; i <= b.sizes.runs && b.cfg.envelopes; i++ {
		order := slices.Clone(routerVariants)
		builds := []int{0, 1}[:len(bins)]
		if i%2 == 0 {
			slices.Reverse(order)
			slices.Reverse(builds)
		}
		for _, v := range order {
			if v.traced && !b.cfg.tracing || !slices.Contains(b.cfg.variants, v.name) {
				continue
			}
			for _, bi := range builds {
				bin := bins[bi]
				if bi > 0 && v.name != "native" && (!b.cfg.routerABEnvelopes || v.group || v.traced) {
					continue // -router-ab: the native router of both builds (-router-ab-envelopes: every envelope), the other variants of -bin
				}
				tag := fmt.Sprintf("env_%s_%d", v.tag, i)
				if bi > 0 {
					tag += "b"
				}
				rr, err := b.runRouter(ctx, n, w.name, tag, bin, "async", v, expected, "")
				if err != nil {
					return r, err
				}
				rr.Round = i
				r.Routers = append(r.Routers, rr)
			}
		}
		// The server's ceiling for each envelope's events, in the same
		// round: what the server takes of those bytes whoever publishes.
		for _, v := range routerVariants {
			if v.group || v.traced || !slices.Contains(b.cfg.variants, v.name) {
				continue
			}
			cr, err := b.publishCeiling(ctx, n, w.name, fmt.Sprintf("CEIL_%s_%d", v.tag, i), ceilingOf(v.name), b.samples[w.name+"|"+v.name], expected, "", "")
			if err != nil {
				return r, err
			}
			cr.Round = i
			r.Routers = append(r.Routers, cr)
		}
		if b.cfg.ceilingHeaders {
			hs := slices.Clone(ceilingHeaders)
			if i%2 == 0 {
				slices.Reverse(hs)
			}
			for _, h := range hs {
				cr, err := b.publishCeiling(ctx, n, w.name, fmt.Sprintf("CEIL_NO_%s_%d", strings.ReplaceAll(strings.ToUpper(h), "-", "_"), i),
					ceilingWithout(h), b.samples[w.name+"|native"], expected, h, "")
				if err != nil {
					return r, err
				}
				cr.Round = i
				r.Routers = append(r.Routers, cr)
			}
		}
	}

	if b.perf != "" {
		// Separate runs under perf, so that the timed ones above are not
		// perturbed by sampling.
		pn, err := b.startNATS("nats-prof-" + w.name)
		if err != nil {
			return r, err
		}
		file := filepath.Join(b.cfg.outDir, "perf-collector-"+w.name+".data")
		if _, err := b.runCollector(ctx, w, slot("prof"), pn, lend, changes, timeout, file, nil); err != nil {
			return r, err
		}
		pn.stop()
		r.Profiles = append(r.Profiles, b.perfReport("collector", file))
		file = filepath.Join(b.cfg.outDir, "perf-router-"+w.name+".data")
		if _, err := b.runRouter(ctx, n, w.name, "prof", "", "async", variantNamed("native"), expected, file); err != nil {
			return r, err
		}
		r.Profiles = append(r.Profiles, b.perfReport("router (output persist async)", file))
		r.Profiles = append(r.Profiles, b.perfReport("nats-server while the router runs", natsPerfFile(file)))
		// The server under the ceiling's client, to tell what a router
		// asks of it beyond storing the same events.
		file = filepath.Join(b.cfg.outDir, "perf-ceiling-"+w.name+"-nats.data")
		if _, err := b.publishCeiling(ctx, n, w.name, "CEIL_prof", ceilingOf("native"), b.samples[w.name+"|native"], expected, "", file); err != nil {
			return r, err
		}
		r.Profiles = append(r.Profiles, b.perfReport("nats-server while the ceiling's client publishes", file))
		if b.cfg.envelopes {
			for _, name := range []string{"debezium", "native+group"} {
				v := variantNamed(name)
				file := filepath.Join(b.cfg.outDir, "perf-router-"+w.name+"-"+v.tag+".data")
				if _, err := b.runRouter(ctx, n, w.name, "prof_"+v.tag, "", "async", v, expected, file); err != nil {
					return r, err
				}
				r.Profiles = append(r.Profiles, b.perfReport("router "+name+" (output persist async)", file))
				r.Profiles = append(r.Profiles, b.perfReport("nats-server while the router "+name+" runs", natsPerfFile(file)))
			}
		}
	}
	return r, nil
}

// ceiling drains slot with pg_recvlogical up to lend: the rate at which
// Postgres decodes the backlog through pgoutput and sends it to a client
// that does nothing with it.
func (b *bench) ceiling(ctx context.Context, slot, pub string, lend uint64, changes int64) (ceilingRun, error) {
	mon, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return ceilingRun{}, err
	}
	defer mon.Close(ctx)
	// The walsender exits with its client: sample its CPU while it runs.
	sampler := sampleCPU(func() int { return slotPID(ctx, mon, slot) })
	// messages=true as the collector asks for it, so both receive the end
	// marker and stop at the same record.
	args := []string{"-d", b.dsn, "-S", slot, "--start", "--no-loop", "-E", wire.LSN(lend).String(),
		"-o", "proto_version=1", "-o", "publication_names=" + pub, "-o", "messages=true", "-f", "/dev/null"}
	logf("ceiling on %s: pg_recvlogical %s", slot, strings.Join(args[2:], " "))
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "pg_recvlogical", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	secs := time.Since(t0).Seconds()
	cpu := sampler.end()
	if err != nil {
		return ceilingRun{}, fmt.Errorf("pg_recvlogical: %w\n%s", err, out)
	}
	c := ceilingRun{Secs: secs, PerSec: float64(changes) / secs, WalsenderCPU: cpu, Load: loadavg1()}
	logf("ceiling on %s: %.2fs, %.0f changes/s, walsender CPU %.2fs, loadavg1 %s", slot, secs, c.PerSec, cpu, c.Load)
	return c, b.dropSlot(ctx, slot)
}

// slotPID is the walsender serving slot, 0 when none.
func slotPID(ctx context.Context, conn *pgx.Conn, slot string) int {
	var pid *int32
	if err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid); err != nil || pid == nil {
		return 0
	}
	return int(*pid)
}

func (b *bench) dropSlot(ctx context.Context, slot string) error {
	var err error
	// Right after its client stops, a walsender may still hold the slot.
	for i := 0; i < 100; i++ {
		if _, err = b.conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("drop slot %s: %w", slot, err)
}

// natsServer is bin/nats-server on a free port with the durability pgjet
// promises: every JetStream write fsynced before it is acknowledged.
type natsServer struct {
	url  string
	dir  string
	proc *proc
}

func (b *bench) startNATS(name string) (*natsServer, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ { // the free port may be taken before the bind
		port, err := pgtest.FreePort()
		if err != nil {
			return nil, err
		}
		// As deploy/nats/single.conf: sync always, default max_payload (1 MB).
		conf := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  sync_interval: %s\n}\n", port, filepath.Join(dir, "store"), b.cfg.natsSync)
		confPath := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		p, err := startProc(name, filepath.Join(b.cfg.binDir, "nats-server"), []string{"-c", confPath}, filepath.Join(b.cfg.outDir, name+".log"))
		if err != nil {
			return nil, err
		}
		if p.waitForLog("Server is ready", 30*time.Second) {
			return &natsServer{url: fmt.Sprintf("nats://127.0.0.1:%d", port), dir: dir, proc: p}, nil
		}
		lastErr = fmt.Errorf("nats-server not ready:\n%s", p.tail(20))
		p.kill()
	}
	return nil, lastErr
}

func (n *natsServer) stop() {
	_ = n.proc.stop(15 * time.Second)
	os.RemoveAll(n.dir)
}

var stoppedRE = regexp.MustCompile(`msg=stopped changes=(\d+)`)

// runCollector starts the collector on slot (against n, or with its embedded
// server when n is nil) and times it from process start until the raw stream
// holds the end marker at lend.
func (b *bench) runCollector(ctx context.Context, w workload, slot string, n *natsServer, lend uint64, changes int64, timeout time.Duration, perfFile string, env []string) (collectorRun, error) {
	r := collectorRun{Mode: "external"}
	args := []string{"--dsn", b.dsn, "--slot", slot, "--publication", w.name, "--source", w.name}
	url := ""
	var natsCPU0 float64
	if n != nil {
		args = append(args, "--nats", n.url)
		url = n.url
		natsCPU0, _ = cpuSeconds(n.proc.pid())
	} else {
		r.Mode = "embedded"
		port, err := pgtest.FreePort()
		if err != nil {
			return r, err
		}
		listen := fmt.Sprintf("127.0.0.1:%d", port)
		store := filepath.Join(b.dir, "embedded-"+slot)
		defer os.RemoveAll(store)
		args = append(args, "--embedded", store, "--listen", listen)
		url = "nats://" + listen
	}
	logf("collector (%s) on %s", r.Mode, slot)
	t0 := time.Now()
	p, err := startProcEnv("pgjet-collector", filepath.Join(b.cfg.binDir, "pgjet-collector"), args, env, filepath.Join(b.cfg.outDir, "collector-"+slot+".log"))
	if err != nil {
		return r, err
	}
	defer p.kill()
	var perf *proc
	if perfFile != "" {
		if perf, err = b.startPerf(p.pid(), perfFile); err != nil {
			return r, err
		}
	}
	done, err := waitRaw(ctx, url, lend, p, timeout)
	if err != nil {
		return r, fmt.Errorf("collector on %s: %w\nlast lines of its log:\n%s", slot, err, p.tail(30))
	}
	r.Secs = done.Sub(t0).Seconds()
	r.PerSec = float64(changes) / r.Secs
	r.CPU, _ = cpuSeconds(p.pid())
	r.RSSKiB = peakRSSKiB(p.pid())
	if pid := slotPID(ctx, b.conn, slot); pid != 0 {
		r.WalsenderCPU, _ = cpuSeconds(pid)
	}
	if n != nil {
		c, _ := cpuSeconds(n.proc.pid())
		r.NATSCPU = c - natsCPU0
	}
	r.Load = loadavg1()
	r.RawMsgs, r.RawBytes = rawStreamState(ctx, url)
	if perf != nil {
		stopPerf(perf)
	}
	if err := p.stop(30 * time.Second); err != nil {
		logf("collector on %s: %v", slot, err)
	}
	if m := stoppedRE.FindStringSubmatch(p.log()); m != nil {
		r.Counted, _ = strconv.ParseUint(m[1], 10, 64)
	}
	logf("collector (%s) on %s: %.2fs, %.0f changes/s, CPU %.2fs, peak RSS %d MiB, walsender CPU %.2fs, nats CPU %.2fs, %d raw messages, loadavg1 %s",
		r.Mode, slot, r.Secs, r.PerSec, r.CPU, r.RSSKiB/1024, r.WalsenderCPU, r.NATSCPU, r.RawMsgs, r.Load)
	return r, b.dropSlot(ctx, slot)
}

// waitRaw returns the time at which the raw stream at url first holds a
// record whose last change is at or after lend. It reads only headers: the
// raw message id names its last commit LSN.
func waitRaw(ctx context.Context, url string, lend uint64, p *proc, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var nc *nats.Conn
	var err error
	for {
		// The embedded server listens only once the collector is up.
		if nc, err = nats.Connect(url, nats.MaxReconnects(-1)); err == nil {
			break
		}
		if p.exited() || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("cannot connect to %s: %w", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return time.Time{}, err
	}
	var s jetstream.Stream
	for {
		if s, err = js.Stream(ctx, rawStream); err == nil {
			break
		}
		if p.exited() || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("raw stream never appeared: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return time.Time{}, err
	}
	seen := make(chan time.Time, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		if last, ok := rawLastLSN(m.Headers().Get(jetstream.MsgIDHeader)); ok && last >= lend {
			select {
			case seen <- at:
			default:
			}
		}
	})
	if err != nil {
		return time.Time{}, err
	}
	defer cc.Stop()
	select {
	case at := <-seen:
		return at, nil
	case <-p.done:
		return time.Time{}, errors.New("collector exited")
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("end marker not in the raw stream after %s", timeout)
	}
}

// rawLastLSN reads the last commit LSN from a raw Nats-Msg-Id,
// "<source id>:<first lsn>.<change>-<last lsn>.<change>" (LSNs in hex).
func rawLastLSN(id string) (uint64, bool) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return 0, false
	}
	_, last, ok := strings.Cut(id[i+1:], "-")
	if !ok {
		return 0, false
	}
	lsn, _, _ := strings.Cut(last, ".")
	v, err := strconv.ParseUint(lsn, 16, 64)
	return v, err == nil
}

func rawStreamState(ctx context.Context, url string) (msgs, bytes uint64) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, 0
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0
	}
	s, err := js.Stream(ctx, rawStream)
	if err != nil {
		return 0, 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0
	}
	return info.State.Msgs, info.State.Bytes
}

// routerVariant is a router configuration -envelopes compares.
type routerVariant struct {
	name, tag string   // tag: in stream, durable and file names
	args      []string // --envelope and the like
	group     bool     // --group transaction
	traced    bool     // tracing on (-tracing)
}

// routerVariants are the envelopes (and grouping) timed by -envelopes, in
// the order of odd rounds.
var routerVariants = []routerVariant{
	{name: "native", tag: "native", args: []string{"--envelope", "native"}},
	// Structured mode, data the native document (the default is data
	// change, the variant after this one).
	{name: "cloudevents", tag: "ce", args: []string{"--envelope", "cloudevents", "--cloudevents-data", "native"}},
	{name: "cloudevents-change", tag: "cechange", args: []string{"--envelope", "cloudevents", "--cloudevents-data", "change"}},
	// Payload only (no schema), key in a header: the envelope's defaults.
	{name: "debezium", tag: "debezium", args: []string{"--envelope", "debezium"}},
	{name: "native+group", tag: "group", args: []string{"--envelope", "native", "--group", "transaction"}, group: true},
	// Tracing on: a span per raw record exported over OTLP/HTTP (-tracing).
	{name: "native+tracing", tag: "traced", args: []string{"--envelope", "native"}, traced: true},
}

func variantNamed(name string) routerVariant {
	for _, v := range routerVariants {
		if v.name == name {
			return v
		}
	}
	panic("no router variant " + name)
}

// endMarker is in the (native) rendering of the backlog's end marker, the
// logical message pgjet-bench emits: a grouping router is done when its
// output stream's last message holds it.
var endMarker = []byte(`"pgjet-bench"`)

// runRouter starts a router (of bin, or of -bin if empty) with its own
// durable consumer and output stream on the filled raw stream of n, and
// times it from process start until the output stream holds expected events
// (or the time cap); a grouping router, until its last message holds the
// end marker (then the events the messages hold are counted, untimed).
func (b *bench) runRouter(ctx context.Context, n *natsServer, wname, tag, bin, persist string, v routerVariant, expected uint64, perfFile string) (routerRun, error) {
	r := routerRun{Bin: bin, Persist: persist, Envelope: v.name, Group: v.group}
	dir := bin
	if dir == "" {
		dir = b.cfg.binDir
	}
	stream := "EV_" + strings.ToUpper(tag)
	args := []string{"--nats", n.url, "--durable", "bench_" + tag, "--stream", stream, "--subject-prefix", "ev" + tag,
		"--output-persist", persist}
	args = append(args, v.args...)
	envelope := v.name
	nc, err := nats.Connect(n.url)
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	natsCPU0, _ := cpuSeconds(n.proc.pid())
	natsSys0 := syscalls(n.proc.pid())
	logf("router (%s, %s) of %s on %s: %d events expected", persist, envelope, dir, wname, expected)
	t0 := time.Now()
	var env []string
	if v.traced {
		env = b.otelEnv
	}
	p, err := startProcEnv("pgjet-router", filepath.Join(dir, "pgjet-router"), args, env, filepath.Join(b.cfg.outDir, "router-"+wname+"-"+tag+".log"))
	if err != nil {
		return r, err
	}
	defer p.kill()
	// The server's share is profiled too: it is the larger half of the
	// router's cost per event.
	var perf, natsPerf *proc
	if perfFile != "" {
		if perf, err = b.startPerf(p.pid(), perfFile); err != nil {
			return r, err
		}
		if natsPerf, err = b.startPerf(n.proc.pid(), natsPerfFile(perfFile)); err != nil {
			return r, err
		}
	}
	var checked uint64 // the last sequence looked at for the end marker
	for {
		if p.exited() {
			return r, fmt.Errorf("router exited:\n%s", p.tail(30))
		}
		done := false
		if s, err := js.Stream(ctx, stream); err == nil {
			if info, err := s.Info(ctx); err == nil {
				r.Msgs, r.Bytes = info.State.Msgs, info.State.Bytes
				if !v.group {
					r.Events = r.Msgs
					done = r.Events >= expected
				} else if last := info.State.LastSeq; last > checked {
					if m, err := s.GetMsg(ctx, last); err == nil {
						checked = last
						done = bytes.Contains(m.Data, endMarker)
					}
				}
			}
		}
		if done {
			break
		}
		if time.Since(t0) > b.sizes.routerCap {
			r.Capped = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Secs = time.Since(t0).Seconds()
	r.CPU, _ = cpuSeconds(p.pid())
	r.RSSKiB = peakRSSKiB(p.pid())
	c, _ := cpuSeconds(n.proc.pid())
	r.NATSCPU = c - natsCPU0
	r.NATSSyscalls = syscalls(n.proc.pid()) - natsSys0
	r.Load = loadavg1()
	if perf != nil {
		stopPerf(perf)
		stopPerf(natsPerf)
	}
	if err := p.stop(30 * time.Second); err != nil {
		logf("router: %v", err)
	}
	if v.group {
		events, msgs, err := countGrouped(ctx, js, stream)
		if err != nil {
			return r, fmt.Errorf("count the events of %s: %w", stream, err)
		}
		r.Events, r.Msgs = events, msgs
		if !r.Capped && events != expected {
			logf("router (%s) on %s: the groups hold %d events, %d expected", envelope, wname, events, expected)
		}
	}
	r.PerSec = float64(r.Events) / r.Secs
	if !v.group && !v.traced && bin == "" && persist == "async" {
		// The variant's events of the workload, for its publish ceiling.
		b.samples[wname+"|"+v.name] = sampleEvents(ctx, js, stream)
	}
	// Each run starts from the same server: an output stream left behind
	// keeps its duplicate window's ids in the server's heap, and every
	// later run paid for them in garbage collection (nats-server's CPU per
	// event grew by half from the first to the sixth run on one server).
	if err := js.DeleteStream(ctx, stream); err != nil {
		logf("router: delete %s: %v", stream, err)
	}
	capped := ""
	if r.Capped {
		capped = fmt.Sprintf(" (stopped at the %s cap)", b.sizes.routerCap)
	}
	logf("router (%s, %s) on %s: %d events (%d messages) in %.2fs%s, %.0f events/s, CPU %.2fs, peak RSS %d MiB, nats CPU %.2fs, nats syscalls %.1f per 1000 events, loadavg1 %s",
		persist, envelope, wname, r.Events, r.Msgs, r.Secs, capped, r.PerSec, r.CPU, r.RSSKiB/1024, r.NATSCPU, perThousand(r.NATSSyscalls, r.Events), r.Load)
	return r, nil
}

// countGrouped reads the grouped output stream and returns the events its
// messages hold (each part's last_index - first_index + 1: with neither
// transaction nor relation events, a transaction's events are its changes,
// indexed 0...) and the messages.
func countGrouped(ctx context.Context, js jetstream.JetStream, stream string) (events, msgs uint64, err error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	total := info.State.Msgs
	if total == 0 {
		return 0, 0, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, 0, err
	}
	var bad error
	var mu sync.Mutex
	all := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		first, ok1 := groupField(m.Data(), `"first_index":`)
		last, ok2 := groupField(m.Data(), `"last_index":`)
		mu.Lock()
		defer mu.Unlock()
		if !ok1 || !ok2 || last < first {
			if bad == nil {
				bad = fmt.Errorf("message %q is not a group", m.Headers().Get(jetstream.MsgIDHeader))
			}
		} else {
			events += last - first + 1
		}
		if msgs++; msgs == total {
			close(all)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	defer cc.Stop()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("read %d of %d messages", msgs, total)
	}
	cc.Stop()
	mu.Lock()
	defer mu.Unlock()
	return events, msgs, bad
}

// groupField reads an unsigned field of a group's wrapper, which comes
// before its events.
func groupField(data []byte, key string) (uint64, bool) {
	if i := bytes.Index(data, []byte(`"events":[`)); i >= 0 {
		data = data[:i]
	}
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return n, err == nil
}

// natsPerfFile names the profile of the server taken beside the router's.
func natsPerfFile(routerFile string) string {
	return strings.TrimSuffix(routerFile, ".data") + "-nats.data"
}

// startPerf samples pid's CPU time with call stacks (frame pointers, which Go
// keeps) at 499 Hz.
func (b *bench) startPerf(pid int, file string) (*proc, error) {
	return startProc("perf", b.perf, []string{"record", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", file}, file+".log")
}

func stopPerf(p *proc) {
	// SIGINT makes perf record write its data and exit.
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
	}
}

// perfReport extracts the top of a perf profile: self time per function and
// time including callees.
func (b *bench) perfReport(what, file string) profile {
	pr := profile{What: what, File: filepath.Base(file)}
	report := func(children bool, limit string) string {
		args := []string{"report", "-i", file, "--stdio", "--sort", "sym", "-g", "none", "--percent-limit", limit}
		if children {
			args = append(args, "--children")
		} else {
			args = append(args, "--no-children")
		}
		out, err := exec.Command(b.perf, args...).Output()
		if err != nil {
			return "perf report failed: " + err.Error()
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				keep = append(keep, l)
			}
		}
		if len(keep) > 25 {
			keep = keep[:25]
		}
		return strings.Join(keep, "\n")
	}
	pr.Self = report(false, "1")
	pr.Cum = report(true, "4")
	pr.Key = b.perfKey(file)
	_ = os.WriteFile(file+".self.txt", []byte(pr.Self+"\n"), 0o644)
	_ = os.WriteFile(file+".cum.txt", []byte(pr.Cum+"\n"), 0o644)
	_ = os.WriteFile(file+".key.txt", []byte(pr.Key+"\n"), 0o644)
	return pr
}

// keySymbols are the stages of the collector's and the router's work, to
// read a profile by stage: share of samples in each including callees.
var keySymbols = []string{
	// collector
	"replication.(*Stream).Run", "pgconn.(*PgConn).ReceiveMessage", "context.WithTimeout", "pgoutput.(*Decoder).Handle",
	"pglogrepl.Parse", "rawstream.(*Publisher).Add", "rawstream.(*Publisher).publish", "rawstream.Assemble", "wire.Marshal",
	// router
	"relay.(*Relay).handle", "wire.Unmarshal", "relay.(*Relay).render", "envelope.(*Native).append", "value.(*Decoder).AppendJSON",
	"encoding/json.Valid", "relay.(*Relay).publishFrom", "jetstream.(*jetStream).PublishMsgAsync", "relay.(*Relay).ack",
	// router: the other envelopes, grouping, publish acks
	"envelope.(*CloudEvents).Append", "envelope.(*Debezium).append", "value.(*Debezium).AppendValue", "envelope.(*Debezium).Header",
	"relay.(*Relay).flushGroup", "jetstream.(*jetStream).handleAsyncReply", "encoding/json.Unmarshal",
	// both
	"nats%2ego.(*Conn).flusher", "nats%2ego.(*Conn).readLoop", "runtime.mallocgc", "runtime.gcBgMarkWorker", "runtime.findRunnable",
	"runtime.sysmon", "[k] do_syscall_64",
	// nats-server
	"server.(*client).readLoop", "server.(*client).processInboundClientMsg", "server.(*stream).processJetStreamMsg",
	"server.(*stream).processInboundJetStreamMsg", "server.(*fileStore).StoreMsg", "server.(*stream).internalLoop",
	"server.(*client).flushOutbound", "server.(*client).deliverMsg", "server.(*consumer).loopAndGatherMsgs",
	"server.(*client).processMsgResults", "server.(*stream).checkMsgId", "server.(*stream).storeMsgId",
}

// perfKey lists keySymbols with their share of samples (including callees).
func (b *bench) perfKey(file string) string {
	out, err := exec.Command(b.perf, "report", "-i", file, "--stdio", "--children", "--sort", "sym", "-g", "none").Output()
	if err != nil {
		return "perf report failed: " + err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		sym := strings.Join(f[2:], " ")
		for _, k := range keySymbols {
			if strings.HasSuffix(sym, k) || sym == k {
				lines = append(lines, fmt.Sprintf("%8s  %s", f[0], sym))
			}
		}
	}
	return strings.Join(lines, "\n")
}

// runE2E runs collector and router continuously and writes at a fixed
// commit rate; each event's latency is its arrival at a consumer of the
// output stream minus its commit_time.
func (b *bench) runE2E(ctx context.Context, persist string, v routerVariant) (e2eResult, error) {
	r := e2eResult{Persist: persist, Envelope: v.name, Rate: b.sizes.e2eRate, Seconds: b.sizes.e2eSeconds}
	name := "e2e_" + persist
	if v.name != "native" {
		name += "_" + v.tag
	}
	if err := b.exec(ctx, fmt.Sprintf(benchTableSQL, name)); err != nil {
		return r, err
	}
	if err := b.exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %[1]s; CREATE PUBLICATION %[1]s FOR TABLE %[1]s", name)); err != nil {
		return r, err
	}
	defer func() {
		_ = b.dropSlot(ctx, name)
		_ = b.exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS %[1]s; DROP TABLE IF EXISTS %[1]s; CHECKPOINT", name))
	}()
	n, err := b.startNATS("nats-" + name)
	if err != nil {
		return r, err
	}
	defer n.stop()
	col, err := startProc("pgjet-collector", filepath.Join(b.cfg.binDir, "pgjet-collector"),
		[]string{"--dsn", b.dsn, "--slot", name, "--publication", name, "--source", name, "--nats", n.url},
		filepath.Join(b.cfg.outDir, "collector-"+name+".log"))
	if err != nil {
		return r, err
	}
	defer col.kill()
	if !col.waitForLog("msg=streaming", 60*time.Second) {
		return r, fmt.Errorf("collector did not start streaming:\n%s", col.tail(30))
	}
	rt, err := startProc("pgjet-router", filepath.Join(b.cfg.binDir, "pgjet-router"),
		append([]string{"--nats", n.url, "--stream", "EVENTS", "--output-persist", persist}, v.args...),
		filepath.Join(b.cfg.outDir, "router-"+name+".log"))
	if err != nil {
		return r, err
	}
	defer rt.kill()
	if !rt.waitForLog("msg=relaying", 60*time.Second) {
		return r, fmt.Errorf("router did not start relaying:\n%s", rt.tail(30))
	}

	nc, err := nats.Connect(n.url)
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	s, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		return r, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return r, err
	}
	var mu sync.Mutex
	lat := make([]int64, 0, r.Rate*r.Seconds+1000)
	stored := make([]int64, 0, r.Rate*r.Seconds+1000)
	commits := make([]int64, 0, r.Rate*r.Seconds+1000)
	bad := 0
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now().UnixMicro()
		ct, ok := commitTime(m.Data())
		meta, err := m.Metadata()
		mu.Lock()
		if ok && err == nil {
			lat = append(lat, now-ct)
			stored = append(stored, meta.Timestamp.UnixMicro()-ct)
			commits = append(commits, ct)
		} else {
			bad++
		}
		mu.Unlock()
	})
	if err != nil {
		return r, err
	}
	defer cc.Stop()
	// The raw records' store times split the latency between collector and router.
	raws, err := js.Stream(ctx, rawStream)
	if err != nil {
		return r, err
	}
	rawCons, err := raws.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return r, err
	}
	var rawLat, rawCommits []int64
	rc, err := rawCons.Consume(func(m jetstream.Msg) {
		var rawMsg wire.Message
		meta, err := m.Metadata()
		if err != nil || wire.Unmarshal(m.Data(), &rawMsg) != nil {
			return
		}
		at := meta.Timestamp.UnixMicro()
		mu.Lock()
		for i := range rawMsg.Txs {
			rawLat = append(rawLat, at-rawMsg.Txs[i].CommitTime)
			rawCommits = append(rawCommits, rawMsg.Txs[i].CommitTime)
		}
		mu.Unlock()
	})
	if err != nil {
		return r, err
	}
	defer rc.Stop()

	cpu := func() (c, rtr, ns float64) {
		c, _ = cpuSeconds(col.pid())
		rtr, _ = cpuSeconds(rt.pid())
		ns, _ = cpuSeconds(n.proc.pid())
		return
	}
	c0, r0, n0 := cpu()
	t0 := time.Now()
	logf("end-to-end (%s): %d tx/s for %ds", r.label(), r.Rate, r.Seconds)
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		b.sampleLag(sctx, name, &r)
	}()
	logPrefix := filepath.Join(b.dir, "pgbench-"+name)
	txs, err := b.pgbench(ctx, name, oltpScript(name), "-R", strconv.Itoa(r.Rate), "-T", strconv.Itoa(r.Seconds), "--log", "--log-prefix", logPrefix)
	stopSampling()
	<-sampled
	if err != nil {
		return r, err
	}
	r.Txs = txs
	r.Pgbench = pgbenchSummary(b.lastPgbench)
	// Let the tail arrive.
	for wait := time.Now(); time.Since(wait) < 60*time.Second; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := int64(len(lat) + bad)
		mu.Unlock()
		if got >= txs {
			break
		}
	}
	c1, r1, n1 := cpu()
	secs := time.Since(t0).Seconds()
	r.CollectorCPU, r.RouterCPU, r.NATS = 100*(c1-c0)/secs, 100*(r1-r0)/secs, 100*(n1-n0)/secs
	r.Load = loadavg1()
	cc.Stop()
	rc.Stop()

	mu.Lock()
	defer mu.Unlock()
	if bad > 0 {
		return r, fmt.Errorf("%d events without a readable commit_time", bad)
	}
	r.Events = len(lat)
	if r.Events == 0 {
		return r, errors.New("no events arrived")
	}
	r.Series = latencySeries(commits, lat, r.Seconds)
	b.saveLatencies("latency-"+strings.ReplaceAll(r.label(), " ", "-")+".tsv", commits, rawCommits, rawLat, stored, lat)
	// The first seconds carry start-up costs (new table, cold caches, fresh
	// WAL segments, young Go heaps): shown apart, never instead.
	var afterWarmUp []int64
	if len(commits) > 0 {
		from := slices.Min(commits) + warmUp.Microseconds()
		for i, c := range commits {
			if c >= from {
				afterWarmUp = append(afterWarmUp, lat[i])
			}
		}
	}
	all := newStage("received by a consumer", lat)
	r.P50, r.P90, r.P99, r.P999, r.Max = all.P50, all.P90, all.P99, all.P999, all.Max
	r.Stages = []stage{
		newStage("pgbench: its transaction (insert, commit with WAL fsync), schedule lag excluded", pgbenchLatencies(logPrefix)),
		newStage("raw record stored (collector)", rawLat),
		newStage("event stored in the output stream (router)", stored),
		all,
		newStage(fmt.Sprintf("received by a consumer, commits after the first %v", warmUp), afterWarmUp),
	}
	logf("end-to-end (%s): %d of %d events, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; CPU collector %.0f%%, router %.0f%%, nats %.0f%%",
		r.label(), r.Events, txs, r.P50, r.P99, r.Max, r.CollectorCPU, r.RouterCPU, r.NATS)
	_ = col.stop(30 * time.Second)
	_ = rt.stop(30 * time.Second)
	r.CollectorLags = progressLags(col.log())
	return r, nil
}

// label names a run: its output persistence and, but for native, envelope.
func (r e2eResult) label() string {
	if r.Envelope == "" || r.Envelope == "native" {
		return r.Persist
	}
	return r.Persist + " " + r.Envelope
}

// warmUp is the start of a latency run that its second summary leaves out.
const warmUp = 10 * time.Second

// progressLags picks the lag fields of the collector's progress lines.
func progressLags(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=progress") {
			continue
		}
		var f []string
		for _, kv := range strings.Fields(line) {
			if strings.HasPrefix(kv, "read_lag_") || strings.HasPrefix(kv, "stored_lag_") {
				f = append(f, kv)
			}
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

// sampleLag records, until ctx ends, how much WAL the walsender of slot has
// not sent yet and how much it sent that the collector has not confirmed.
func (b *bench) sampleLag(ctx context.Context, slot string, r *e2eResult) {
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	var n int
	var unsent, unconfirmed float64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if n > 0 {
				r.UnsentMeanKB, r.UnconfirmedMeanKB = unsent/float64(n), unconfirmed/float64(n)
			}
			return
		case <-t.C:
		}
		var a, c float64
		err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), r.sent_lsn) / 1024,
				pg_wal_lsn_diff(r.sent_lsn, r.flush_lsn) / 1024
			FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, slot).Scan(&a, &c)
		if err != nil {
			continue
		}
		n++
		unsent += a
		unconfirmed += c
		r.UnsentMaxKB, r.UnconfirmedMaxKB = max(r.UnsentMaxKB, a), max(r.UnconfirmedMaxKB, c)
	}
}

// pgbenchLatencies reads the per-transaction logs pgbench wrote with
// --log-prefix (one file per thread) and returns the time each transaction
// took in Postgres, in microseconds. With --rate, the logged time counts from
// the scheduled start; the schedule lag (the last field) is taken off: it is
// the client's delay, not Postgres's.
func pgbenchLatencies(prefix string) []int64 {
	files, _ := filepath.Glob(prefix + ".*")
	var out []int64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			// client_id transaction_no time script_no time_epoch time_us schedule_lag
			fields := strings.Fields(line)
			if len(fields) < 7 {
				continue
			}
			t, err1 := strconv.ParseInt(fields[2], 10, 64)
			lag, err2 := strconv.ParseInt(fields[6], 10, 64)
			if err1 == nil && err2 == nil {
				out = append(out, t-lag)
			}
		}
	}
	return out
}

// saveLatencies writes, per tenth of a second of commit time, the worst
// latency (ms) of each stage: to find what periodic stalls line up with.
func (b *bench) saveLatencies(name string, commits, rawCommits, rawLat, stored, lat []int64) {
	if len(commits) == 0 {
		return
	}
	first := slices.Min(commits)
	type row struct{ raw, stored, recv int64 }
	rows := map[int64]*row{}
	at := func(c int64) *row {
		k := (c - first) / 100_000
		if rows[k] == nil {
			rows[k] = &row{}
		}
		return rows[k]
	}
	for i, c := range rawCommits {
		r := at(c)
		r.raw = max(r.raw, rawLat[i])
	}
	for i, c := range commits {
		r := at(c)
		r.stored, r.recv = max(r.stored, stored[i]), max(r.recv, lat[i])
	}
	keys := slices.Sorted(maps.Keys(rows))
	var out strings.Builder
	out.WriteString("second\traw_stored_ms\tevent_stored_ms\treceived_ms\n")
	for _, k := range keys {
		r := rows[k]
		fmt.Fprintf(&out, "%.1f\t%.1f\t%.1f\t%.1f\n", float64(k)/10, float64(r.raw)/1000, float64(r.stored)/1000, float64(r.recv)/1000)
	}
	_ = os.WriteFile(filepath.Join(b.cfg.outDir, name), []byte(out.String()), 0o644)
}

// latencySeries is the worst latency (ms) of the events committed in each
// tenth of the run: it shows whether latency is steady or a backlog grows.
func latencySeries(commits, lat []int64, seconds int) []float64 {
	if len(commits) == 0 {
		return nil
	}
	first := slices.Min(commits)
	span := int64(seconds) * 1e6 / 10
	out := make([]float64, 10)
	for i, c := range commits {
		k := min(int((c-first)/span), 9)
		out[k] = max(out[k], float64(lat[i])/1000)
	}
	return out
}

var (
	commitTimeKey = []byte(`"commit_time":"`)
	ceTimeKey     = []byte(`"time":"`)
	tsUsKey       = []byte(`"ts_us":`)
)

// commitTime reads the commit_time field (RFC 3339, UTC, microseconds) of a
// native event, in microseconds since the epoch.
func commitTime(ev []byte) (int64, bool) {
	i := bytes.Index(ev, commitTimeKey)
	key := commitTimeKey
	if i < 0 {
		// A CloudEvent's time attribute, or Debezium's source.ts_us (the
		// first ts_us: the top-level one is the time of rendering).
		if i, key = bytes.Index(ev, ceTimeKey), ceTimeKey; i < 0 {
			if j := bytes.Index(ev, tsUsKey); j >= 0 {
				rest := ev[j+len(tsUsKey):]
				end := bytes.IndexAny(rest, ",}")
				if us, err := strconv.ParseInt(string(rest[:max(end, 0)]), 10, 64); err == nil {
					return us, true
				}
			}
			return 0, false
		}
	}
	rest := ev[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// pgbenchSummary keeps pgbench's latency and rate lines.
func pgbenchSummary(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "latency") || strings.HasPrefix(l, "tps") || strings.HasPrefix(l, "rate limit") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "; ")
}
