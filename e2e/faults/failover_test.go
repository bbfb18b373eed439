package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// failoverDSN names both hosts, asking for the writable one: after a
// promotion the collector and the workload find the new primary.
func failoverDSN(hosts ...*pgtest.Cluster) string {
	var hp []string
	for _, h := range hosts {
		hp = append(hp, fmt.Sprintf("127.0.0.1:%d", h.Port))
	}
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&target_session_attrs=read-write", strings.Join(hp, ","))
}

// Invariant (issue 21, failover; the lean variant `make test` runs on
// PostgreSQL 15): after a failover to a standby that lags (it never
// received the old primary's last seconds, and its copy of the slot is far
// behind), nothing the new primary commits is lost, nothing is doubled,
// and the records the collector stored of the old primary beyond the fork
// are reported as phantoms: an ERROR line, a metric and a notice event,
// whose range holds exactly the changes only the old primary had. The
// standby is promoted 6 s after the crash (a late promotion): the
// collector follows within seconds.
//
// PostgreSQL 15 has no failover slots; a standby made from a copy of the
// stopped primary's data directory keeps the logical slot, replays the
// primary's WAL as a physical standby and, promoted, has the slot behind:
// a timeline fork with a lagging slot, as a PG17 failover slot without
// synchronized_standby_slots gives.
func TestFailoverLaggingStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := workEnv(t)
	old := e.pg
	metricsPort, err := pgtest.FreePort()
	must(t, err)
	e.colFlags = append(e.colFlags, "--metrics", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	// Publication and slot before the copy: the standby has both.
	e.exec(`CREATE PUBLICATION pgjet_faults FOR TABLE accounts, transfers, bulk, journal`)
	e.exec(`SELECT pg_create_logical_replication_slot('pgjet_faults', 'pgoutput')`)
	e.exec(`SELECT pg_create_physical_replication_slot('standby')`)
	must(t, old.StopMode("fast"))
	standby := old.RunStandbyCopy(t, "standby")
	must(t, old.Restart())
	e.reconnect()
	must(t, standby.Restart())
	if !eventually(60*time.Second, func() bool {
		var n int64
		_ = e.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'`).Scan(&n)
		return n == 1
	}) {
		t.Fatalf("the standby does not stream from the primary:\n%s", tail(standby.Log(), 20))
	}

	e.colDSN = failoverDSN(old, standby)
	e.workDSN = e.colDSN
	e.collector()
	e.router()
	w := e.startWorkload(workloadConfig{workers: 2, pause: 10 * time.Millisecond})
	time.Sleep(2 * time.Second)
	// The standby stops receiving: what the primary commits from now on,
	// the collector stores and the standby never has.
	must(t, standby.StopMode("fast"))
	time.Sleep(3 * time.Second)
	streamed := strings.Count(e.col.Log(), "msg=streaming")
	must(t, old.Kill9()) // the primary crashes
	crashed := time.Now()
	must(t, standby.Restart()) // replays what it received; its primary is gone
	time.Sleep(6 * time.Second)
	must(t, standby.Promote())
	promoted := time.Now()
	if !eventually(60*time.Second, func() bool { return strings.Count(e.col.Log(), "msg=streaming") > streamed || e.col.Exited() }) || e.col.Exited() {
		t.Fatalf("the collector did not follow the promotion:\n%s", tail(e.col.Log(), 30))
	}
	takeover := time.Since(promoted)
	t.Logf("TAKEOVER: the collector streams from the new primary %s after the promotion (%s after the crash)", takeover.Round(10*time.Millisecond), time.Since(crashed).Round(10*time.Millisecond))
	// The connect retry is capped at 2 s: a promotion is followed within
	// a few seconds however long it took (before: backoff doubling to 30 s).
	if takeover > 10*time.Second {
		t.Errorf("the collector took %s to follow a promotion", takeover)
	}
	time.Sleep(3 * time.Second) // the new primary's own transactions
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")

	// The new primary is the truth now.
	e.pg = standby
	e.reconnect()
	if !e.settle(pick(4*time.Minute, 10*time.Minute)) {
		t.Fatal("the pipeline did not catch up with the new primary")
	}
	// Where the timelines forked, from the new primary's own history file
	// (not from the collector's report, which is under test).
	fork := historyFork(t, standby, 2, 1)
	_, js := e.nats.Connect(t)
	oldID := ""
	log := e.col.Log()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "phantoms") {
		t.Errorf("the collector did not report phantoms at ERROR:\n%s", tail(log, 20))
	}
	if m := scrape(t, metricsPort); !strings.Contains(m, "\npgjet_collector_phantom_ranges_total 1\n") {
		t.Errorf("metrics do not count the phantom range:\n%s", grepLines(m, "phantom"))
	}
	last := uint64(1<<64 - 1)
	notices := readNotices(t, js, "PGJET_EVENTS", "postgres._notices.>")
	if len(notices) != 1 || notices[0].Kind != wire.NoticePhantoms {
		t.Errorf("notices %+v, want one of phantoms", notices)
	} else {
		n := notices[0]
		t.Logf("PHANTOMS notice: %s", n.Message)
		if from, err := check.ParseLSN(n.FromLSN); err != nil || from != fork {
			t.Errorf("notice from_lsn %s, the history's fork is %X", n.FromLSN, fork)
		}
		var err error
		if last, err = check.ParseLSN(n.ToLSN); err != nil {
			t.Errorf("notice to_lsn %q: %v", n.ToLSN, err)
		}
		oldID = n.SourceID
	}
	if want := fmt.Sprintf("%s.%d.1", e.source, systemID(t, e.conn)); oldID != want {
		t.Errorf("notice source_id %q, want %q", oldID, want)
		oldID = want
	}

	changes, err := check.ReadAudit(ctx, e.conn)
	must(t, err)
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	events, err := check.Drain(dctx, js, "PGJET_EVENTS", "postgres.>", 0, 3*time.Second)
	must(t, err)
	var phantoms, rest []check.Event
	newBelow := 0 // the new primary's changes below the last stored position: skipped before
	var lastPhantom uint64
	for _, ev := range events {
		lsn, _ := check.ParseLSN(ev.LSN)
		switch {
		case strings.HasPrefix(ev.MsgID, oldID+":") && lsn >= fork:
			phantoms = append(phantoms, ev)
			lastPhantom = max(lastPhantom, lsn)
			if lsn > last {
				t.Errorf("phantom event beyond the notice's range: %+v", ev)
			}
		default:
			rest = append(rest, ev)
		}
	}
	for _, ev := range rest {
		if lsn, _ := check.ParseLSN(ev.LSN); !strings.HasPrefix(ev.MsgID, oldID+":") && lsn <= lastPhantom {
			newBelow++
		}
	}
	r := check.Check(changes, rest)
	t.Logf("SUMMARY failover to a lagging standby, the new primary's history: %s", r)
	if !r.OK() || r.Committed == 0 {
		t.Errorf("the new primary's history: nothing lost, nothing doubled, in order: %s", r)
	}
	if len(phantoms) == 0 || newBelow == 0 {
		t.Errorf("%d phantom events, %d events of the new primary below the last stored position: the scenario did not fork as intended", len(phantoms), newBelow)
	}
	t.Logf("%d phantom events from the fork %X to %X; %d events of the new primary at positions up to the last phantom", len(phantoms), fork, lastPhantom, newBelow)
	rawTimelineCheck(t, js, e.raw(), e.source, map[int32]uint64{1: fork}, 1)

	// The phantoms are exactly what only the old primary committed: read
	// its audit (with nothing connected to it any more).
	must(t, e.col.Stop())
	must(t, e.rt.Stop())
	must(t, old.Restart())
	oc, err := pgx.Connect(ctx, old.DSN(""))
	must(t, err)
	defer oc.Close(ctx)
	oldChanges, err := check.ReadAudit(ctx, oc)
	must(t, err)
	// The walsender may not have sent the last commits before the crash:
	// those transactions are nowhere, whole. Every transaction with a
	// phantom event is there whole, with nothing else.
	stored := map[uint32]bool{}
	for _, ev := range phantoms {
		stored[ev.Xid] = true
	}
	var ownStored []check.Change
	unsent := map[uint32]bool{}
	for _, c := range onlyIn(oldChanges, changes) {
		if stored[uint32(c.Xid)] {
			ownStored = append(ownStored, c)
		} else {
			unsent[uint32(c.Xid)] = true
		}
	}
	pr := check.Check(ownStored, phantoms)
	t.Logf("SUMMARY phantoms vs the changes only the old primary committed: %s (%d transactions of the old primary never reached the collector)", pr, len(unsent))
	if !pr.OK() {
		t.Errorf("phantom events are not exactly the old primary's own changes: %s", pr)
	}
}

// historyFork reads where timeline from ended in the history file of
// timeline tli in c's data directory.
func historyFork(t *testing.T, c *pgtest.Cluster, tli, from int32) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, "data", "pg_wal", fmt.Sprintf("%08X.history", tli)))
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == fmt.Sprint(from) {
			lsn, err := check.ParseLSN(f[1])
			must(t, err)
			return lsn
		}
	}
	t.Fatalf("timeline %d is not in the history of timeline %d:\n%s", from, tli, b)
	return 0
}

func systemID(t *testing.T, conn *pgx.Conn) uint64 {
	t.Helper()
	var id uint64
	must(t, conn.QueryRow(context.Background(), "SELECT system_identifier FROM pg_control_system()").Scan(&id))
	return id
}

// onlyIn returns the changes of a that b does not have (the same row of
// the same audit id and transaction).
func onlyIn(a, b []check.Change) []check.Change {
	key := func(c check.Change) string {
		return fmt.Sprintf("%d|%d|%s|%s.%s|%s|%s", c.ID, c.Xid, c.Op, c.Schema, c.Table, c.Before, c.After)
	}
	in := map[string]bool{}
	for _, c := range b {
		in[key(c)] = true
	}
	var out []check.Change
	for _, c := range a {
		if !in[key(c)] {
			out = append(out, c)
		}
	}
	return out
}

// readNotices reads the notices published on subjects matching filter.
func readNotices(t *testing.T, js jetstream.JetStream, stream, filter string) []wire.Notice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	must(t, err)
	var out []wire.Notice
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			return out
		}
		must(t, err)
		var ev struct {
			Prefix  string `json:"prefix"`
			Content string `json:"content"`
		}
		must(t, json.Unmarshal(msg.Data(), &ev))
		var n wire.Notice
		if err := json.Unmarshal([]byte(ev.Content), &n); err != nil {
			t.Fatalf("notice on %s: %v: %s", msg.Subject(), err, msg.Data())
		}
		if ev.Prefix != wire.NoticePrefix+n.Kind || msg.Subject() != "postgres._notices."+n.Kind {
			t.Errorf("notice of kind %s with prefix %q on %s", n.Kind, ev.Prefix, msg.Subject())
		}
		out = append(out, n)
	}
}

// rawTimelineCheck reads the source's raw records and checks them across
// timelines: within one timeline in commit order and no change twice; the
// timeline never goes back; a change of the common history (below the
// fork of the timeline it was first stored on, forks[timeline]) is never
// stored again on a later one. Changes beyond a fork on the old timeline
// are phantoms, the new timeline's are its own. It holds wantNotices
// notices.
func rawTimelineCheck(t *testing.T, js jetstream.JetStream, stream, source string, forks map[int32]uint64, wantNotices int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.RawSubject(source)}})
	must(t, err)
	type pos struct{ lsn, change uint64 }
	first := map[pos]int32{} // change -> timeline first stored on
	var tl int32
	var lastPos pos
	records, notices, problems := 0, 0, 0
	problem := func(format string, args ...any) {
		problems++
		if problems <= 5 {
			t.Errorf("raw stream: "+format, args...)
		}
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(3 * time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			break
		}
		must(t, err)
		var m wire.Message
		must(t, wire.Unmarshal(msg.Data(), &m))
		records++
		switch {
		case m.Source.Timeline < tl:
			problem("a record of timeline %d after one of timeline %d", m.Source.Timeline, tl)
		case m.Source.Timeline > tl:
			tl, lastPos = m.Source.Timeline, pos{}
		}
		for _, tx := range m.Txs {
			if tx.IsPiece() && !tx.LastPiece() {
				continue
			}
			for i := range tx.Changes {
				if wire.IsNotice(&tx.Changes[i]) {
					notices++
				}
				p := pos{tx.CommitLSN, tx.FirstChange + uint64(i)}
				if p.lsn < lastPos.lsn || p.lsn == lastPos.lsn && p.change < lastPos.change {
					problem("change %X:%d of timeline %d after %X:%d", p.lsn, p.change, tl, lastPos.lsn, lastPos.change)
				}
				lastPos = p
				was, seen := first[p]
				switch {
				case !seen:
					first[p] = tl
				case was == tl:
					problem("change %X:%d stored twice on timeline %d", p.lsn, p.change, tl)
				case p.lsn < forks[was]:
					problem("change %X:%d of the common history (below the fork %X of timeline %d) stored again on timeline %d", p.lsn, p.change, forks[was], was, tl)
				}
			}
		}
	}
	t.Logf("raw stream: %d records, %d changes, %d notices, %d problems", records, len(first), notices, problems)
	if notices != wantNotices {
		t.Errorf("raw stream holds %d notices, want %d", notices, wantNotices)
	}
}

// scrape reads the collector's /metrics.
func scrape(t *testing.T, port int) string {
	t.Helper()
	r, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	must(t, err)
	return r.body
}

type httpResponse struct {
	code int
	body string
}

func httpGet(url string) (httpResponse, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return httpResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpResponse{code: resp.StatusCode, body: string(b)}, err
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
