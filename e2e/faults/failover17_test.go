package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// Failover with PostgreSQL 17's failover slots, as an operator runs it
// (docs/postgres.md, "Failover and standbys"): a streaming standby with
// sync_replication_slots, the collector's slot made with --failover, a DSN
// naming both hosts with target_session_attrs=read-write, a workload of
// about 150 transactions a second, kill -9 of the primary, promotion of
// the standby. `make test-faults` runs these with PGJET_PG_VERSION=17;
// on an older server they skip, saying so (the lean variant,
// TestFailoverLaggingStandby, runs on every version).

// failover is a primary (the env's Postgres) with a standby.
type failover struct {
	e                *env
	primary, standby *pgtest.Cluster
	metricsPort      int
	w                *workload
	slotSyncedAt     time.Duration // from the collector's start to the standby's copy being sync-ready
}

// newFailover makes the env's Postgres a primary with a standby that
// synchronizes failover slots (standbyConf: more of its settings), and
// starts the collector (--failover, both hosts) and the router. It skips
// the test before PostgreSQL 17.
func newFailover(t *testing.T, e *env, standbyConf ...string) *failover {
	t.Helper()
	ctx := context.Background()
	needFailoverSlots(t, e)
	conf := append([]string{"sync_replication_slots = on", "hot_standby_feedback = on"}, standbyConf...)
	s, err := e.pg.StartStandby("standby1", conf...)
	must(t, err)
	t.Cleanup(s.Stop)
	f := &failover{e: e, primary: e.pg, standby: s}
	f.metricsPort, err = pgtest.FreePort()
	must(t, err)
	e.colDSN = failoverDSN(e.pg, s)
	e.workDSN = e.colDSN
	e.colFlags = append(e.colFlags, "--failover", "--metrics", fmt.Sprintf("127.0.0.1:%d", f.metricsPort))
	began := time.Now()
	e.collector()
	e.router()
	// As many transactions a second as this machine's share allows, up to
	// about 300 (each worker pauses 20 ms between two).
	f.w = e.startWorkload(workloadConfig{workers: 6, pause: 20 * time.Millisecond})
	// A promotion before the standby's copy of the slot is sync-ready
	// would drop it. The copy becomes sync-ready once the primary's slot
	// moved past where the standby began the copy, which takes a
	// running-xacts record (written every 15 s by the background writer):
	// the test writes them more often, or it would wait a minute or two.
	sc := f.connect(t, s)
	snapshot := time.Now()
	if !eventually(3*time.Minute, func() bool {
		if time.Since(snapshot) > 2*time.Second {
			_, _ = e.conn.Exec(ctx, `SELECT pg_log_standby_snapshot()`)
			snapshot = time.Now()
		}
		var ready bool
		_ = sc.QueryRow(ctx, `SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&ready)
		return ready
	}) {
		t.Fatalf("the standby's copy of slot %s did not become sync-ready:\n%s", e.slot, tail(s.Log(), 20))
	}
	f.slotSyncedAt = time.Since(began)
	t.Logf("the standby's copy of slot %s is sync-ready %s after the collector started", e.slot, f.slotSyncedAt.Round(100*time.Millisecond))
	return f
}

// needFailoverSlots skips the test before PostgreSQL 17, saying why.
func needFailoverSlots(t *testing.T, e *env) {
	t.Helper()
	major, err := e.pg.Major(context.Background())
	must(t, err)
	if major < 17 {
		t.Skipf("PostgreSQL %d has no failover slots: `make test-faults` runs this with PGJET_PG_VERSION=17; TestFailoverLaggingStandby covers a fork on every version", major)
	}
}

func (f *failover) connect(t *testing.T, c *pgtest.Cluster) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.DSN(""))
	must(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// crash kills the primary with SIGKILL after the workload ran for d, and
// returns when.
func (f *failover) crash(t *testing.T, d time.Duration) time.Time {
	t.Helper()
	time.Sleep(d)
	must(t, f.primary.Kill9())
	return time.Now()
}

// promote promotes the standby and waits until the collector streams from
// it (timeline 2), returning how long that took.
func (f *failover) promote(t *testing.T) time.Duration {
	t.Helper()
	streamed := strings.Count(f.e.col.Log(), "timeline=2")
	must(t, f.standby.Promote())
	promoted := time.Now()
	if !eventually(60*time.Second, func() bool {
		return strings.Count(f.e.col.Log(), "timeline=2") > streamed && strings.Contains(f.e.col.Log(), "msg=streaming") || f.e.col.Exited()
	}) || f.e.col.Exited() {
		t.Fatalf("the collector did not follow the promotion:\n%s", tail(f.e.col.Log(), 30))
	}
	return time.Since(promoted)
}

// killAndPromote kills the primary after the workload ran for d more,
// promotes the standby at once, and reports the load and the takeover.
func (f *failover) killAndPromote(t *testing.T, d time.Duration) {
	t.Helper()
	l := measure(f.w)
	crashed := f.crash(t, d)
	t.Logf("load before the crash: %.0f transactions/s", l.rate())
	takeover := f.promote(t)
	t.Logf("TAKEOVER: the collector streams from the promoted standby %s after the promotion, %s after kill -9 of the primary",
		takeover.Round(10*time.Millisecond), time.Since(crashed).Round(10*time.Millisecond))
}

// finish stops the workload after d on the new primary, waits until the
// pipeline caught up with it, and checks the output against its audit:
// nothing lost, nothing doubled, in order. Events of the old timeline
// beyond its fork (phantoms) are returned, not checked.
func (f *failover) finish(t *testing.T, d time.Duration) (fork uint64, phantoms []check.Event) {
	t.Helper()
	e := f.e
	time.Sleep(d)
	f.w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	e.pg = f.standby
	e.reconnect()
	if !e.settle(pick(4*time.Minute, 10*time.Minute)) {
		t.Fatal("the pipeline did not catch up with the new primary")
	}
	fork = historyFork(t, f.standby, 2, 1)
	oldID := fmt.Sprintf("%s.%d.1", e.source, systemID(t, e.conn))
	// Tens of thousands of rows each, on a busy machine: minutes, not one.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	must(t, err)
	_, js := e.nats.Connect(t)
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer dcancel()
	events, err := check.Drain(dctx, js, "PGJET_EVENTS", "postgres.>", 0, 3*time.Second)
	must(t, err)
	var rest []check.Event
	for _, ev := range events {
		if lsn, _ := check.ParseLSN(ev.LSN); strings.HasPrefix(ev.MsgID, oldID+":") && lsn >= fork {
			phantoms = append(phantoms, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	r := check.Check(changes, rest)
	t.Logf("SUMMARY %s, the new primary's history: %s", t.Name(), r)
	if !r.OK() || r.Committed == 0 {
		t.Errorf("the new primary's history: nothing lost, nothing doubled, in order: %s", r)
	}
	return fork, phantoms
}

// load measures the workload's rate from now on.
type load struct {
	w     *workload
	at    time.Time
	count int64
}

func measure(w *workload) load { return load{w: w, at: time.Now(), count: w.committed.Load()} }

// rate is the transactions a second since the measure began.
func (l load) rate() float64 {
	return float64(l.w.committed.Load()-l.count) / time.Since(l.at).Seconds()
}

// Invariant: with synchronized_standby_slots naming the standby's slot,
// the collector never stores what the standby has not received: after
// kill -9 of the primary under load and the standby's promotion, it
// streams from the new primary, skips what that one sends again, and
// nothing is lost, doubled or out of order; no phantoms. The takeover
// time (promotion to streaming) is reported.
func TestFailoverKillPrimary(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	f := newFailover(t, e)
	// Set on the primary after the base backup: the promoted standby does
	// not inherit it.
	e.exec(`ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`)
	e.exec(`SELECT pg_reload_conf()`)
	f.killAndPromote(t, pick(4*time.Second, 10*time.Second))
	fork, phantoms := f.finish(t, 3*time.Second)
	if len(phantoms) > 0 || strings.Contains(e.col.Log(), "phantoms") {
		t.Errorf("%d phantom events despite synchronized_standby_slots (fork %X)", len(phantoms), fork)
	}
	_, js := e.nats.Connect(t)
	rawTimelineCheck(t, js, e.raw(), e.source, map[int32]uint64{1: fork}, 0)
	if !strings.Contains(e.col.Log(), "resuming after the last stored record") {
		t.Errorf("the collector did not resume after its last stored record on the new primary:\n%s", tail(e.col.Log(), 20))
	}
}

// Invariant: without synchronized_standby_slots and with a standby about
// 3 s behind (its WAL arrives through a link delaying it 3 s), the
// collector stores transactions the standby never receives; after kill -9
// of the primary and an immediate promotion, nothing the new primary
// commits is lost (before: its first commits were skipped, their positions
// being below the last stored one), and the stored range beyond the fork is
// reported: an ERROR line, the metric, and one phantoms notice whose range
// holds every phantom event.
func TestFailoverLaggingStandby17(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	link := newProxy(t, "standby-link", fmt.Sprintf("127.0.0.1:%d", e.pg.Port))
	f := newFailover(t, e, fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%s user=postgres dbname=postgres application_name=standby1'", link.Port()))
	link.toxic("latency", "downstream", `{"latency": 3000, "jitter": 0}`)
	// Promoted at once: what is still on its way to the standby never
	// arrives.
	f.killAndPromote(t, pick(6*time.Second, 12*time.Second))
	fork, phantoms := f.finish(t, 3*time.Second)
	var lastPhantom uint64
	for _, ev := range phantoms {
		lsn, _ := check.ParseLSN(ev.LSN)
		lastPhantom = max(lastPhantom, lsn)
	}
	t.Logf("PHANTOMS: %d phantom events, fork %X, last %X", len(phantoms), fork, lastPhantom)
	if len(phantoms) == 0 {
		t.Errorf("no phantoms: the standby was not behind (fork %X)", fork)
	}
	if log := e.col.Log(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "phantoms") {
		t.Errorf("the collector did not report phantoms at ERROR:\n%s", tail(log, 20))
	}
	if m := scrape(t, f.metricsPort); !strings.Contains(m, "\npgjet_collector_phantom_ranges_total 1\n") {
		t.Errorf("metrics do not count the phantom range:\n%s", grepLines(m, "phantom"))
	}
	_, js := e.nats.Connect(t)
	notices := readNotices(t, js, "PGJET_EVENTS", "postgres._notices.>")
	if len(notices) != 1 || notices[0].Kind != wire.NoticePhantoms {
		t.Fatalf("notices %+v, want one of phantoms", notices)
	}
	n := notices[0]
	t.Logf("PHANTOMS notice: %s", n.Message)
	from, _ := check.ParseLSN(n.FromLSN)
	to, _ := check.ParseLSN(n.ToLSN)
	if from != fork || to < lastPhantom {
		t.Errorf("notice range %s-%s, want from the fork %X to at least the last phantom %X", n.FromLSN, n.ToLSN, fork, lastPhantom)
	}
	rawTimelineCheck(t, js, e.raw(), e.source, map[int32]uint64{1: fork}, 1)
}

// Invariant: a promotion 15 s after the crash is followed within a few
// seconds (the collector retries every 2 s at most while no host accepts
// writes). And a promoted server that kept synchronized_standby_slots
// naming a slot it does not have (copied with the configuration by
// pg_basebackup) holds logical replication back: the collector logs the
// server's warning, /readyz says not ready with the reason, check FAILs
// with the fix; once it is cleared, everything streams, nothing lost or
// doubled.
func TestFailoverLatePromotion(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	needFailoverSlots(t, e)
	// Set before the base backup: the standby inherits it.
	e.exec(`ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`)
	e.exec(`SELECT pg_reload_conf()`)
	f := newFailover(t, e)
	f.crash(t, 3*time.Second)
	time.Sleep(15 * time.Second)
	takeover := f.promote(t)
	t.Logf("TAKEOVER: promoted 15 s after kill -9 of the primary, the collector streams from it %s after the promotion", takeover.Round(10*time.Millisecond))
	if takeover > 5*time.Second {
		t.Errorf("a late promotion was followed after %s, want a few seconds", takeover)
	}

	// Held back: the server says why on the replication connection, and
	// readiness says so after the stall limit.
	if !e.col.WaitForLog("PostgreSQL says on the replication connection", 30*time.Second) || !strings.Contains(e.col.Log(), "synchronized_standby_slots") {
		t.Errorf("the server's warning was not logged:\n%s", tail(e.col.Log(), 20))
	}
	var why string
	if !eventually(60*time.Second, func() bool {
		code, body := readyz(f.metricsPort)
		why = body
		return code == 503 && strings.Contains(body, "replication stalled")
	}) {
		t.Errorf("/readyz did not report the stall: %s", why)
	}
	t.Logf("/readyz while held back: %s", why)
	sc := f.connect(t, f.standby)
	out, code := runCollectorCheck(t, e, f.standby)
	if code != 1 || !strings.Contains(out, "FAIL synchronized_standby_slots names slot standby1, which does not exist") {
		t.Errorf("check on the held-back server: exit %d, want a FAIL for synchronized_standby_slots:\n%s", code, out)
	}
	// The recipe's fix on a promoted server without a standby.
	_, err := sc.Exec(context.Background(), `ALTER SYSTEM SET synchronized_standby_slots = ''`)
	must(t, err)
	_, err = sc.Exec(context.Background(), `SELECT pg_reload_conf()`)
	must(t, err)
	cleared := time.Now()
	if !eventually(60*time.Second, func() bool { code, _ := readyz(f.metricsPort); return code == 200 }) {
		t.Errorf("/readyz not ready after synchronized_standby_slots was cleared")
	}
	t.Logf("ready again %s after synchronized_standby_slots was cleared", time.Since(cleared).Round(100*time.Millisecond))
	f.finish(t, 2*time.Second)
}

// readyz is the collector's /readyz status and body.
func readyz(port int) (int, string) {
	resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0, err.Error()
	}
	return resp.code, resp.body
}

// runCollectorCheck runs `pgjet-collector check` with the env's flags
// against c.
func runCollectorCheck(t *testing.T, e *env, c *pgtest.Cluster) (string, int) {
	t.Helper()
	args := append([]string{"check"}, e.collectorArgs()...)
	for i, a := range args {
		if a == "--dsn" {
			args[i+1] = failoverDSN(c)
		}
	}
	p := harness.StartProcess(t, "pgjet-collector", args, nil)
	err := waitExit(t, p, time.Minute, "check")
	code := 0
	if err != nil {
		code = 1
		if !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("check: %v", err)
		}
	}
	return p.Log(), code
}
