package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// runTool runs a pgjet subcommand (check, status) to its end: its output
// and exit code.
func (e *env) runTool(sub string, extra ...string) (string, int) {
	e.t.Helper()
	p := harness.StartProcess(e.t, "pgjet-collector", append([]string{sub}, e.collectorArgs(extra...)...), nil)
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute):
		e.t.Fatalf("pgjet-collector %s did not exit:\n%s", sub, tail(p.Log(), 20))
	}
	var ee *exec.ExitError
	if err := p.Wait(); errors.As(err, &ee) {
		return p.Log(), ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return p.Log(), 0
}

// httpBody is the status and body of a GET.
func httpBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wantSaid(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, tail(out, 15))
		}
	}
}

// insertOwners commits one accounts row per owner named prefix-1..n.
func (e *env) insertOwners(prefix string, n int) {
	e.t.Helper()
	e.exec(`INSERT INTO accounts (owner) SELECT $1 || '-' || g FROM generate_series(1, $2::int) g`, prefix, n)
}

// gapReport checks the output stream against the audit, leaving out the
// changes to accounts rows whose owner starts with one of lost: those the
// test changed in a gap it made. Everything else must arrive exactly
// once, in order, with Postgres's values; the lost ones must not arrive.
// It returns the gap notices the router published.
func (e *env) gapReport(scenario string, lost ...string) []wire.Notice {
	e.t.Helper()
	if !e.settle(2 * time.Minute) {
		e.t.Fatalf("%s: the pipeline did not catch up", scenario)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	named := func(after, before []byte) bool {
		for _, b := range [][]byte{after, before} {
			var row struct {
				Owner string `json:"owner"`
			}
			_ = json.Unmarshal(b, &row)
			for _, p := range lost {
				if strings.HasPrefix(row.Owner, p+"-") {
					return true
				}
			}
		}
		return false
	}
	var kept []check.Change
	gone := 0
	for _, c := range changes {
		if named(c.After, c.Before) {
			gone++
			continue
		}
		kept = append(kept, c)
	}
	_, js := e.nats.Connect(e.t)
	all, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.public.>", len(kept), 2*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	// The rows the test changed in the gap are left out on both sides:
	// their changes before it arrived, those in it did not.
	var events []check.Event
	for _, ev := range all {
		if !named(ev.After, ev.Before) {
			events = append(events, ev)
		}
	}
	r := check.Check(kept, events)
	e.t.Logf("SUMMARY %s: %s; %d changes committed in the gap, left out", scenario, r.String(), gone)
	if !r.OK() || r.Committed == 0 || gone == 0 {
		e.t.Errorf("%s: want every change outside the gap exactly once and some in it: %s (gap: %d)", scenario, r.String(), gone)
	}
	if raw := e.rawCheck(); !raw.ok() {
		e.t.Errorf("%s: raw stream: %s", scenario, raw)
	}
	// The notices, as consumers see them: native message events.
	cons, err := js.OrderedConsumer(ctx, "PGJET_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"postgres._notices.>"}})
	if err != nil {
		e.t.Fatal(err)
	}
	var notices []wire.Notice
	var noticeSeq uint64
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			break
		}
		md, err := msg.Metadata()
		if err != nil {
			e.t.Fatal(err)
		}
		var ev struct {
			Op      string          `json:"op"`
			Prefix  string          `json:"prefix"`
			LSN     string          `json:"lsn"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			e.t.Fatalf("message event: %v: %s", err, msg.Data())
		}
		if ev.Prefix != wire.NoticePrefix+wire.NoticeGap {
			continue
		}
		var content string
		if err := json.Unmarshal(ev.Content, &content); err != nil {
			e.t.Fatalf("gap notice content: %v: %s", err, ev.Content)
		}
		var n wire.Notice
		if err := json.Unmarshal([]byte(content), &n); err != nil {
			e.t.Fatalf("gap notice content: %v: %s", err, content)
		}
		notices = append(notices, n)
		noticeSeq = md.Sequence.Stream
	}
	e.gapBackfilled(scenario, noticeSeq)
	return notices
}

// gapBackfilled waits until the backfill the collector requested after
// the gap has brought accounts back, as docs/pipeline.md tells consumers:
// the rows rebuilt from the events after the gap notice (at output
// sequence noticeSeq; the consumer clears its copy there) are the table,
// those changed or deleted in the gap included. A consumer that keeps its
// copy instead holds the table plus the rows deleted in the gap (the
// owners doomed-1: a backfill reads rows, it cannot send a delete for a
// row that is gone), and nothing else differs.
func (e *env) gapBackfilled(scenario string, noticeSeq uint64) {
	e.t.Helper()
	if noticeSeq == 0 {
		e.t.Fatalf("%s: no gap notice in the output", scenario)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, js := e.nats.Connect(e.t)
	var diff []string
	var all []check.Event
	var reads int
	ok := eventually(2*time.Minute, func() bool {
		var err error
		all, err = check.Drain(ctx, js, "PGJET_EVENTS", "postgres.public.accounts.>", 0, 2*time.Second)
		if err != nil {
			e.t.Fatal(err)
		}
		var after []check.Event
		for _, ev := range all {
			if ev.Seq > noticeSeq {
				after = append(after, ev)
			}
		}
		_, r := check.SplitReads(after)
		reads = len(r)
		s, err := check.Rebuild(after)
		if err != nil {
			e.t.Fatal(err)
		}
		want, err := check.TableState(ctx, e.conn, "public.accounts", "id")
		if err != nil {
			e.t.Fatal(err)
		}
		diff = check.CompareState(want, s["public.accounts"], 5)
		return len(diff) == 0
	})
	e.t.Logf("SUMMARY %s: %d reads from the backfill after the gap", scenario, reads)
	if !ok {
		e.t.Errorf("%s: the rows rebuilt from the events after the gap notice are not the table once backfilled:\n%s\ncollector's last lines:\n%s",
			scenario, strings.Join(diff, "\n"), tail(e.col.Log(), 10))
	}
	if reads == 0 {
		e.t.Errorf("%s: no reads: the gap was not backfilled", scenario)
	}
	// Kept across the notice: only the rows deleted in the gap differ.
	s, err := check.Rebuild(all)
	if err != nil {
		e.t.Fatal(err)
	}
	want, err := check.TableState(ctx, e.conn, "public.accounts", "id")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range check.CompareState(want, s["public.accounts"], 1000) {
		if !strings.Contains(d, "in the output, not in the table") || !strings.Contains(d, `doomed-1`) {
			e.t.Errorf("%s: a copy kept across the gap differs from the table by more than the rows deleted in the gap: %s", scenario, d)
		}
	}
}

// invalidateSlot freezes the collector (it can neither read nor confirm)
// and writes WAL that no publication streams until Postgres invalidates
// the slot (max_slot_wal_keep_size), commits n accounts rows named
// prefix-i that no slot will ever decode, and lets the collector go on. It
// returns the slot's confirmed position: the changes after it are lost.
func (e *env) invalidateSlot(prefix string, n int) string {
	e.t.Helper()
	ctx := context.Background()
	must(e.t, e.col.Signal(syscall.SIGSTOP))
	lost := eventually(pick(60*time.Second, 120*time.Second), func() bool {
		e.exec(`INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g`)
		e.exec(`CHECKPOINT`)
		var status *string
		_ = e.conn.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&status)
		return status != nil && *status == "lost"
	})
	// Committed once the slot lost its WAL. (What was committed during the
	// freeze may have reached the frozen collector's socket and be stored:
	// the gap starts after what is.)
	e.insertOwners(prefix, n)
	e.exec(`DELETE FROM accounts WHERE owner = 'doomed-1'`)
	e.exec(`UPDATE accounts SET bio = 'changed in the gap' WHERE owner = 'doomed-2'`)
	must(e.t, e.col.Signal(syscall.SIGCONT))
	if !lost {
		e.t.Fatalf("slot %s did not become lost", e.slot)
	}
	var from string
	must(e.t, e.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&from))
	return from
}

// waitNotReady waits until the collector's /readyz says it is not ready
// for want, and returns what it says.
func (e *env) waitNotReady(metricsURL, want string) string {
	e.t.Helper()
	var code int
	var body string
	if !eventually(90*time.Second, func() bool {
		code, body = httpBody(metricsURL + "/readyz")
		return code == 503 && strings.Contains(body, want)
	}) {
		e.t.Fatalf("/readyz: %d %q; collector's last lines:\n%s", code, body, tail(e.col.Log(), 10))
	}
	return body
}

// slotEnv is a workload env whose slot max_slot_wal_keep_size invalidates
// after about 32 MB of WAL, with a collector serving --metrics.
func slotEnv(t *testing.T, colFlags ...string) (*env, string) {
	e := workEnv(t, "max_slot_wal_keep_size = 32MB", "max_wal_size = 64MB", "min_wal_size = 32MB")
	e.exec(`CREATE TABLE filler (id int, v text)`) // not published: WAL, no records
	port, err := pgtest.FreePort()
	must(t, err)
	e.startCollector(append([]string{"--metrics", fmt.Sprintf("127.0.0.1:%d", port)}, colFlags...))
	e.router()
	e.insertOwners("before", 10)
	e.insertOwners("doomed", 2) // deleted and updated in the gap
	if !e.settle(time.Minute) {
		t.Fatal("the pipeline did not catch up before the slot was invalidated")
	}
	return e, fmt.Sprintf("http://127.0.0.1:%d", port)
}

// Invariant: a slot invalidated by max_slot_wal_keep_size (wal_status lost)
// while its collector is frozen is named with its reason and the changes
// lost: the collector, serving --metrics, stays up and not ready with that
// line on /readyz, pgjet_collector_slot_invalidated{reason="wal_removed"}
// and the lost position in its metrics; status shows it and check FAILs it;
// it never creates the slot again by itself. Restarted with
// --recreate-slot it says the exact range it accepts, stores a gap notice
// that routers publish, and streams again: every change but those
// committed while no valid slot existed arrives exactly once.
func TestSlotInvalidated(t *testing.T) {
	t.Parallel()
	e, metricsURL := slotEnv(t)
	from := e.invalidateSlot("lost", 5)
	e.insertOwners("lost-later", 5)

	// Up, not ready, saying why.
	body := e.waitNotReady(metricsURL, "invalidated")
	alive(t, e.col, "collector with an invalidated slot (it serves --metrics)")
	wantSaid(t, "/readyz", body, `slot "pgjet_faults" was invalidated (wal_removed`, "max_slot_wal_keep_size", "after "+from, "--recreate-slot", "backfill")
	wantSaid(t, "the collector's log", e.col.Log(), "level=ERROR", "waiting for an operator", "after "+from)
	_, metricsText := httpBody(metricsURL + "/metrics")
	wantSaid(t, "/metrics", metricsText, `pgjet_collector_slot_invalidated{reason="wal_removed"} 1`, "pgjet_collector_slot_lost_from_lsn ")
	out, _ := e.runTool("status")
	wantSaid(t, "status", out, "invalidated", "wal_removed", "after "+from)
	out, exit := e.runTool("check")
	if exit != 1 {
		t.Errorf("check exit code %d, want 1", exit)
	}
	wantSaid(t, "check", out, "FAIL slot pgjet_faults was invalidated (wal_removed", "after "+from, "--recreate-slot")
	if n := e.queryInt(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status IS DISTINCT FROM 'lost'`, e.slot); n != 0 {
		t.Fatalf("slot %s was recreated without --recreate-slot", e.slot)
	}
	t.Logf("invalidated: /readyz says %q", body)

	// The operator's way out.
	_ = e.col.Stop()
	e.startCollector([]string{"--recreate-slot"})
	wantSaid(t, "the collector's log", e.col.Log(), "created again: the changes committed from "+from+" to ", "pgjet.notice.gap")
	e.insertOwners("after", 10)
	notices := e.gapReport("slot invalidated, then --recreate-slot", "lost", "lost-later", "doomed")
	if len(notices) != 1 || notices[0].FromLSN != from || notices[0].ToLSN == "" || !strings.Contains(notices[0].Message, "invalidated (wal_removed)") {
		t.Errorf("gap notices published: %+v; want one from %s", notices, from)
	}
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
}

// Invariant: with --auto-recreate-slot 1 the collector replaces an
// invalidated slot by itself, once: the range in an ERROR and a WARN line,
// a gap notice consumers see, pgjet_collector_gaps_total, and streaming
// again with nothing but the gap missing. The second invalidation finds
// the budget spent: it waits for an operator, not ready, as without it.
func TestSlotInvalidatedAutoRecreate(t *testing.T) {
	t.Parallel()
	e, metricsURL := slotEnv(t, "--auto-recreate-slot", "1")
	from := e.invalidateSlot("lost", 5)
	if !e.col.WaitForLog("created again: the changes committed from "+from+" to ", 90*time.Second) {
		t.Fatalf("the collector did not create the slot again by itself:\n%s", tail(e.col.Log(), 10))
	}
	wantSaid(t, "the collector's log", e.col.Log(), "level=ERROR", "re-creating it (--auto-recreate-slot, 1 of 1)")
	if !eventually(60*time.Second, func() bool { code, _ := httpBody(metricsURL + "/readyz"); return code == 200 }) {
		t.Fatal("not ready after the slot was created again")
	}
	_, metricsText := httpBody(metricsURL + "/metrics")
	wantSaid(t, "/metrics", metricsText, `pgjet_collector_gaps_total{reason="wal_removed"} 1`, `pgjet_collector_slot_invalidated{reason="none"} 0`)
	e.insertOwners("after", 10)
	notices := e.gapReport("slot invalidated, replaced by --auto-recreate-slot", "lost", "doomed")
	if len(notices) != 1 || notices[0].FromLSN != from {
		t.Errorf("gap notices published: %+v; want one from %s", notices, from)
	}

	// Bounded: the second time, an operator decides.
	again := e.invalidateSlot("lost-again", 5)
	body := e.waitNotReady(metricsURL, "invalidated")
	wantSaid(t, "/readyz", body, "after "+again, "--recreate-slot")
	alive(t, e.col, "collector whose recreate budget is spent")
	if n := e.queryInt(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status IS DISTINCT FROM 'lost'`, e.slot); n != 0 {
		t.Fatalf("slot %s was recreated a second time", e.slot)
	}
}

// Invariant: a publication dropped and created again under a running
// collector stops it with what happened and the way out (not only
// Postgres's "publication does not exist"), every restart says the same,
// and check FAILs it with the fix. Dropping the slot and starting with
// --recreate-slot streams again, behind a gap notice.
func TestPublicationRecreated(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	e.collector()
	e.router()
	e.insertOwners("before", 10)
	if !e.settle(time.Minute) {
		t.Fatal("the pipeline did not catch up")
	}
	e.exec(`DROP PUBLICATION ` + e.publication)
	e.insertOwners("lost", 5)
	e.exec(`CREATE PUBLICATION ` + e.publication + ` FOR TABLE accounts, transfers, bulk, journal`)
	e.insertOwners("lost-later", 5)

	explained := []string{"cannot decode past a change at ", "publication \"pgjet_faults\" did not exist when it was made", "dropped, and perhaps created again",
		"pg_drop_replication_slot('pgjet_faults')", "--recreate-slot", "backfill"}
	err := waitExit(t, e.col, 60*time.Second, "publication dropped under a running collector")
	if err == nil {
		t.Errorf("collector exited with status 0")
	}
	wantSaid(t, "the collector's last lines", tail(e.col.Log(), 3), explained...)
	p := e.startCollectorNoWait(nil)
	if err := waitExit(t, p, 60*time.Second, "collector restarted"); err == nil {
		t.Errorf("restarted collector exited with status 0")
	}
	wantSaid(t, "the restarted collector's last lines", tail(p.Log(), 3), explained...)
	t.Logf("collector after the publication was dropped and created again:\n%s", tail(p.Log(), 2))

	out, code := e.runTool("check")
	if code != 1 {
		t.Errorf("check exit code %d, want 1", code)
	}
	wantSaid(t, "check", out, "FAIL slot pgjet_faults cannot decode past a change at ", "publication pgjet_faults did not exist when it was made",
		"pg_drop_replication_slot('pgjet_faults')", "--recreate-slot", "backfill")

	// The way out, as the line says.
	e.exec(`SELECT pg_drop_replication_slot($1)`, e.slot)
	e.startCollector([]string{"--recreate-slot"})
	e.insertOwners("after", 10)
	notices := e.gapReport("publication dropped and created again, then --recreate-slot", "lost", "lost-later")
	if len(notices) != 1 || !strings.Contains(notices[0].Message, "dropped") {
		t.Errorf("gap notices published: %+v; want one", notices)
	}
}

// Invariant: a raw stream that discards old records under a limit is
// warned about when the collector starts; one that is full (discard new)
// makes the collector hold the slot and say so: the retry line and
// /readyz name the raw stream full and the fix, and once the stream has
// room everything arrives exactly once.
func TestRawStreamFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := workEnv(t)
	_, js := e.nats.Connect(t)
	cfg := jetstream.StreamConfig{
		Name: "PGJET_RAW", Subjects: []string{"pgjet.raw.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxMsgs: 1000, Duplicates: time.Minute,
	}
	_, err := js.CreateStream(ctx, cfg)
	must(t, err)
	col := e.collector()
	wantSaid(t, "the collector's start", col.Log(), "level=WARN", "raw stream PGJET_RAW discards old records when full", "--discard new")
	must(t, col.Stop())

	// Full: room for one more record, which the first transaction takes
	// (however the collector batches); the next ones find no room.
	raw, err := js.Stream(ctx, "PGJET_RAW")
	must(t, err)
	msgs := func() uint64 {
		st, err := raw.Info(ctx)
		must(t, err)
		return st.State.Msgs
	}
	cfg.Discard, cfg.MaxMsgs = jetstream.DiscardNew, int64(msgs())+1
	_, err = js.UpdateStream(ctx, cfg)
	must(t, err)
	port, err := pgtest.FreePort()
	must(t, err)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	e.startCollector([]string{"--metrics", fmt.Sprintf("127.0.0.1:%d", port), "--linger", "0"})
	e.router()
	e.insertOwners("fits", 3)
	if !eventually(30*time.Second, func() bool { return msgs() == uint64(cfg.MaxMsgs) }) {
		t.Fatalf("the raw stream did not fill: %d records of %d", msgs(), cfg.MaxMsgs)
	}
	for i := range 5 {
		e.insertOwners(fmt.Sprintf("full%d", i), 3)
	}
	body := e.waitNotReady(metricsURL, "is full")
	wantSaid(t, "/readyz", body, "raw publishes failing for", "raw stream PGJET_RAW is full (maximum messages exceeded) and discards new records", "holds the slot", "nats stream edit PGJET_RAW")
	wantSaid(t, "the collector's log", e.col.Log(), "raw publish failed, retrying", "PGJET_RAW is full (maximum messages exceeded)")
	alive(t, e.col, "collector with the raw stream full")

	cfg.MaxMsgs = -1
	_, err = js.UpdateStream(ctx, cfg)
	must(t, err)
	if !eventually(60*time.Second, func() bool { code, _ := httpBody(metricsURL + "/readyz"); return code == 200 }) {
		t.Fatalf("not ready once the raw stream has room:\n%s", tail(e.col.Log(), 10))
	}
	e.verify("raw stream full (discard new), then given room")
}
