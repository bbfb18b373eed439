// Package faults is pgjet's fault suite: the built binaries (collector,
// router, nats-server) against a throwaway Postgres, under kill -9 at named
// crash points and at random moments, NATS and Postgres restarts and outages,
// network cuts, latency and resets through an in-process TCP proxy, restarts
// past the duplicate windows, a standby collector, a dropped slot, expired
// raw records, huge transactions and values, and hostile names and content.
//
// After each scenario the output stream is drained and compared with the
// audit that Postgres itself recorded (e2e/check), and one summary line is
// logged: committed, delivered, lost, duplicated.
//
// `make test` runs every scenario in a short form (fewer kills, shorter
// outages, smaller transactions); PGJET_FAULTS=full (`make test-faults`)
// runs the full one. PGJET_FAULTS_SEED fixes the random moments.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// full is set by PGJET_FAULTS=full: more kills, longer outages, larger
// transactions. The short mode runs the same scenarios, smaller.
var full = os.Getenv("PGJET_FAULTS") == "full"

// pick returns the short or the full value.
func pick[T any](short, long T) T {
	if full {
		return long
	}
	return short
}

var (
	seedOnce sync.Once
	seed     uint64
)

// newRand returns a random source for t, seeded from PGJET_FAULTS_SEED or
// the clock; the seed is logged so that a failure can be replayed.
func newRand(t *testing.T, salt string) *rand.Rand {
	seedOnce.Do(func() {
		if s := os.Getenv("PGJET_FAULTS_SEED"); s != "" {
			seed, _ = strconv.ParseUint(s, 10, 64)
		} else {
			seed = uint64(time.Now().UnixNano())
		}
	})
	var h uint64 = 14695981039346656037
	for _, c := range []byte(t.Name() + "/" + salt) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	if salt == "test" {
		t.Logf("random seed %d (PGJET_FAULTS_SEED=%d replays it)", seed, seed)
	}
	return rand.New(rand.NewPCG(seed, h))
}

// env is one pipeline under test: Postgres, nats-server, and the collector
// and router processes started so far.
type env struct {
	t    *testing.T
	pg   *pgtest.Cluster
	nats *harness.NATS
	conn *pgx.Conn // the test's own connection, straight to Postgres

	slot        string
	publication string
	source      string
	tables      []string // --tables; empty when the test made the publication

	// Where the processes connect: Postgres and NATS directly, unless a
	// test puts a proxy in between.
	colDSN  string
	colNATS string
	rtNATS  string

	// colFlags are given to every collector this env starts.
	colFlags []string
	// workDSN is where workloads write ("": the env's Postgres), e.g. every
	// host of a failover pair.
	workDSN string

	col *harness.Proc // the current collector
	rt  *harness.Proc // the current router

	// deadLetters, when not zero, is how many changes a test expects on the
	// dead-letter subject, which it checks itself: reports leave it out.
	deadLetters int

	// rawStream is the raw stream the router reads on nats ("": PGJET_RAW),
	// e.g. a hub's stream sourcing an edge's.
	rawStream string
}

// raw is the name of the raw stream the router reads.
func (e *env) raw() string {
	if e.rawStream != "" {
		return e.rawStream
	}
	return "PGJET_RAW"
}

type envConfig struct {
	schema string   // SQL run before the audit is installed
	tables []string // audited and published (--tables); none: the test creates the publication
	pgConf []string // extra postgresql.conf lines
	// cluster, when set, holds the streams instead of a server of the env's
	// own; the collector and router are given every node's URL.
	cluster *harness.Cluster
	// nats, when set, is the server holding the router's streams (e.g. a hub);
	// the env starts none of its own.
	nats *harness.NATS
}

func newEnv(t *testing.T, c envConfig) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, pg: pgtest.Run(t, c.pgConf...), slot: "pgjet_faults", publication: "pgjet_faults", source: "faults", tables: c.tables}
	e.conn = e.connect(ctx, "")
	if c.schema != "" {
		e.exec(c.schema)
	}
	if err := check.InstallAudit(ctx, e.conn, c.tables...); err != nil {
		t.Fatal(err)
	}
	e.colDSN = e.pg.DSN("")
	if c.cluster != nil {
		e.nats = c.cluster.Nodes[0] // its Connect reaches whichever node is up
		e.colNATS = c.cluster.URLs()
	} else if c.nats != nil {
		e.nats = c.nats
		e.colNATS = c.nats.URL()
	} else {
		e.nats = harness.StartNATS(t, "")
		e.colNATS = e.nats.URL()
	}
	e.rtNATS = e.colNATS
	return e
}

func (e *env) connect(ctx context.Context, db string) *pgx.Conn {
	e.t.Helper()
	conn, err := pgx.Connect(ctx, e.pg.DSN(db))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.conn.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", firstLine(sql), err)
	}
}

func (e *env) queryInt(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", firstLine(sql), err)
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

func (e *env) collectorArgs(extra ...string) []string {
	args := []string{
		"--dsn", e.colDSN, "--slot", e.slot, "--publication", e.publication, "--source", e.source,
	}
	if e.colNATS != "" { // "": the collector runs an embedded server (colFlags)
		args = append(args, "--nats", e.colNATS)
	}
	if len(e.tables) > 0 {
		args = append(args, "--tables", strings.Join(e.tables, ","))
	}
	args = append(args, e.colFlags...)
	return append(args, extra...)
}

// startCollector starts a collector (with extra flags and PGJET_* variables)
// and, unless it is a standby, waits until it streams. Right after a kill,
// Postgres may not have released the slot yet; a collector that exits
// because the slot is busy is started again, as a supervisor would.
func (e *env) startCollector(extra []string, envv ...string) *harness.Proc {
	e.t.Helper()
	standby := false
	for _, a := range extra {
		standby = standby || a == "--standby"
	}
	for attempt := 1; ; attempt++ {
		p := harness.StartProcess(e.t, "pgjet-collector", e.collectorArgs(extra...), envv)
		if standby {
			return p
		}
		if p.WaitForLog("msg=streaming", 60*time.Second) {
			e.col = p
			return p
		}
		if p.Exited() && strings.Contains(p.Log(), "in use by another process") && attempt < 20 {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		e.t.Fatalf("collector did not start streaming:\n%s", tail(p.Log(), 30))
	}
}

// startCollectorNoWait starts a collector and returns at once.
func (e *env) startCollectorNoWait(extra []string, envv ...string) *harness.Proc {
	return harness.StartProcess(e.t, "pgjet-collector", e.collectorArgs(extra...), envv)
}

// collector starts the collector with default flags.
func (e *env) collector() *harness.Proc { return e.startCollector(nil) }

func (e *env) startRouter(extra []string, envv ...string) *harness.Proc {
	e.t.Helper()
	p := harness.StartProcess(e.t, "pgjet-router", append([]string{"--nats", e.rtNATS}, extra...), envv)
	// Relaying, or waiting for a collector to create the raw stream.
	if !eventually(60*time.Second, func() bool {
		l := p.Log()
		return strings.Contains(l, "msg=relaying") || strings.Contains(l, "does not exist yet") || p.Exited()
	}) || p.Exited() {
		e.t.Fatalf("router did not start relaying:\n%s", tail(p.Log(), 30))
	}
	e.rt = p
	return p
}

func (e *env) router() *harness.Proc { return e.startRouter(nil) }

// alive fails the test when a process that should run has exited.
func alive(t *testing.T, p *harness.Proc, what string) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited (%v):\n%s", what, p.Wait(), tail(p.Log(), 40))
	}
}

// verify drains the output stream and checks it against the audit: every
// committed change exactly once, in order, with Postgres's values. It logs
// the scenario's summary line and fails the test when the invariant does
// not hold. It also checks the raw stream: no change twice, commit order.
func (e *env) verify(scenario string) check.Report {
	e.t.Helper()
	r := e.report(scenario)
	if !r.OK() {
		e.t.Errorf("%s: invariant violated: %s", scenario, r.String())
	}
	if raw := e.rawCheck(); !raw.ok() {
		e.t.Errorf("%s: raw stream: %s", scenario, raw)
	}
	return r
}

// rawReport describes the raw stream of the env's source.
type rawReport struct {
	records, changes, duplicated, outOfOrder int
	pieced                                   int // changes that travelled in pieces
	problems                                 []string
}

func (r rawReport) ok() bool { return r.duplicated == 0 && r.outOfOrder == 0 }

func (r rawReport) String() string {
	s := fmt.Sprintf("records=%d changes=%d (in pieces %d) duplicated=%d out_of_order=%d", r.records, r.changes, r.pieced, r.duplicated, r.outOfOrder)
	for i, p := range r.problems {
		if i == 5 {
			break
		}
		s += "\n  - " + p
	}
	return s
}

// rawCheck reads the whole raw stream and checks guarantee 2 of the design:
// no change is stored twice (whatever the duplicate window), and records are
// in commit order.
func (e *env) rawCheck() rawReport {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, js := e.nats.Connect(e.t)
	cons, err := js.OrderedConsumer(ctx, e.raw(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{"pgjet.raw." + e.source}})
	if err != nil {
		e.t.Fatalf("raw stream: %v", err)
	}
	s, err := js.Stream(ctx, e.raw())
	if err != nil {
		e.t.Fatalf("raw stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatalf("raw stream: %v", err)
	}
	var r rawReport
	type pos struct{ lsn, change uint64 }
	seen := map[pos]uint64{}    // change -> raw sequence
	pieceAt := map[pos]uint64{} // change in pieces -> bytes seen
	var last pos
	for info.State.Msgs > 0 {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		for tries := 0; errors.Is(err, nats.ErrNoResponders) && tries < 50; tries++ {
			// On a cluster the ordered consumer is created on its node a
			// moment after the request returns: nobody answers a pull yet.
			time.Sleep(100 * time.Millisecond)
			msg, err = cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		}
		if err != nil {
			e.t.Fatalf("raw stream: %v", err)
		}
		md, _ := msg.Metadata()
		var m wire.Message
		if err := wire.Unmarshal(msg.Data(), &m); err != nil {
			e.t.Fatalf("raw record %d: %v", md.Sequence.Stream, err)
		}
		r.records++
		for _, tx := range m.Txs {
			if tx.IsPiece() {
				// A change in pieces counts once, with its last piece; the
				// pieces must follow each other.
				p := pos{tx.CommitLSN, tx.FirstChange}
				if tx.PieceOffset != pieceAt[p] {
					r.outOfOrder++
					r.problems = append(r.problems, fmt.Sprintf("change %X:%d: piece at byte %d in raw record %d, expected byte %d",
						p.lsn, p.change, tx.PieceOffset, md.Sequence.Stream, pieceAt[p]))
				}
				pieceAt[p] = tx.PieceOffset + uint64(len(tx.Changes[0].Content))
				if !tx.LastPiece() {
					continue
				}
				r.pieced++
			}
			for i := range tx.Changes {
				p := pos{tx.CommitLSN, tx.FirstChange + uint64(i)}
				r.changes++
				if first, dup := seen[p]; dup {
					r.duplicated++
					r.problems = append(r.problems, fmt.Sprintf("change %X:%d (xid %d) in raw record %d and again in %d", p.lsn, p.change, tx.Xid, first, md.Sequence.Stream))
					continue
				}
				seen[p] = md.Sequence.Stream
				if p.lsn < last.lsn || p.lsn == last.lsn && p.change < last.change {
					r.outOfOrder++
					r.problems = append(r.problems, fmt.Sprintf("change %X:%d (xid %d) in raw record %d after %X:%d", p.lsn, p.change, tx.Xid, md.Sequence.Stream, last.lsn, last.change))
				}
				last = p
			}
		}
		if md.NumPending == 0 {
			break
		}
	}
	e.t.Logf("raw stream: %s", r)
	return r
}

// reconnect replaces the test's Postgres connection, e.g. after a restart.
func (e *env) reconnect() {
	e.t.Helper()
	e.conn.Close(context.Background())
	for i := 0; ; i++ {
		conn, err := pgx.Connect(context.Background(), e.pg.DSN(""))
		if err == nil {
			e.conn = conn
			e.t.Cleanup(func() { conn.Close(context.Background()) })
			return
		}
		if i == 100 {
			e.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// report is verify without failing.
func (e *env) report(scenario string) check.Report {
	e.t.Helper()
	return e.reportSource(scenario, "")
}

// reportSource is report on the events of one source ("" for all).
func (e *env) reportSource(scenario, source string) check.Report {
	e.t.Helper()
	settled := e.settle(pick(4*time.Minute, 10*time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	_, js := e.nats.Connect(e.t)
	start := time.Now()
	if !settled {
		// Whatever is missing now stays missing: do not wait long for it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	filter := "postgres.>"
	if e.deadLetters > 0 {
		filter = "postgres.*.>" // events have 3 or more tokens, postgres._deadletter 2
	}
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", filter, len(changes)-e.deadLetters, 2*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	if source != "" {
		var mine []check.Event
		for _, ev := range events {
			if ev.Source == source {
				mine = append(mine, ev)
			}
		}
		events = mine
	}
	r := check.Check(changes, events)
	e.t.Logf("SUMMARY %s: %s", scenario, r.String())
	e.t.Logf("(drained in %s)", time.Since(start).Round(100*time.Millisecond))
	return r
}

// settle waits until the pipeline has caught up with Postgres: the slot is
// confirmed past the WAL written so far and the router's consumer has
// acknowledged the last raw record. It reports whether that happened; it
// gives up after stall without progress (longer than the router's 60 s ack
// wait, after which a raw record lost in flight is redelivered), or after
// timeout. A collector or router that is dead or stuck never settles.
func (e *env) settle(timeout time.Duration) bool {
	e.t.Helper()
	const stall = 90 * time.Second
	began := time.Now()
	settled := false
	defer func() {
		if d := time.Since(began); settled && d > 20*time.Second {
			e.t.Logf("NOTE: the pipeline took %s to catch up after the workload stopped", d.Round(time.Second))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var target string
	if err := e.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		e.t.Fatal(err)
	}
	_, js := e.nats.Connect(e.t)
	var why, was string
	since := time.Now()
	for {
		if why = e.unsettled(ctx, js, target); why == "" {
			settled = true
			return true
		}
		for _, p := range []*harness.Proc{e.col, e.rt} {
			if p != nil && p.Exited() {
				e.t.Logf("pipeline cannot settle, %s exited (%v): %s; its last lines:\n%s", p.Name, p.Wait(), why, tail(p.Log(), 5))
				return false
			}
		}
		if why != was {
			was, since = why, time.Now()
		}
		if time.Since(since) > stall {
			e.t.Logf("pipeline stalled for %s: %s", stall, why)
			return false
		}
		select {
		case <-ctx.Done():
			e.t.Logf("pipeline did not settle within %s: %s", timeout, why)
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// unsettled says what the pipeline still has to do, "" when nothing.
func (e *env) unsettled(ctx context.Context, js jetstream.JetStream, target string) string {
	var confirmed bool
	var pos string
	err := e.conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false), coalesce(confirmed_flush_lsn::text, '')
		FROM pg_replication_slots WHERE slot_name = $1`, e.slot, target).Scan(&confirmed, &pos)
	if err != nil {
		return fmt.Sprintf("slot %s: %v", e.slot, err)
	}
	if !confirmed {
		return fmt.Sprintf("slot %s confirmed up to %s, WAL at %s", e.slot, pos, target)
	}
	raw, err := js.Stream(ctx, e.raw())
	if err != nil {
		return fmt.Sprintf("raw stream: %v", err)
	}
	info, err := raw.Info(ctx)
	if err != nil {
		return fmt.Sprintf("raw stream: %v", err)
	}
	cons, err := js.Consumer(ctx, e.raw(), "pgjet-router")
	if err != nil {
		return fmt.Sprintf("router consumer: %v", err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Sprintf("router consumer: %v", err)
	}
	if ci.AckFloor.Stream < info.State.LastSeq {
		return fmt.Sprintf("router acknowledged raw records up to %d of %d", ci.AckFloor.Stream, info.State.LastSeq)
	}
	return ""
}

func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitExit waits for p to exit and returns its exit error, failing the test
// after timeout.
func waitExit(t *testing.T, p *harness.Proc, timeout time.Duration, what string) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(timeout):
		t.Fatalf("%s: %s still runs after %s:\n%s", what, p.Name, timeout, tail(p.Log(), 30))
		return nil
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
