package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/harness"
)

// shortWindow is the duplicate window of the streams these tests create;
// they wait past it before restarting.
const shortWindow = 2 * time.Second

// createRaw creates the raw stream as the collector would, with the given
// duplicate window and max age; the collector leaves an existing stream as
// it is.
func (e *env) createRaw(dupes, maxAge time.Duration) {
	e.t.Helper()
	_, js := e.nats.Connect(e.t)
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "PGJET_RAW", Subjects: []string{"pgjet.raw.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew, Duplicates: dupes, MaxAge: maxAge,
	})
	must(e.t, err)
}

// createEvents creates the output stream as the router would, with a short
// duplicate window.
func (e *env) createEvents(dupes time.Duration) {
	e.t.Helper()
	_, js := e.nats.Connect(e.t)
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "PGJET_EVENTS", Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Duplicates: dupes,
	})
	must(e.t, err)
}

// Invariant: a collector killed between a publish and its ack and restarted
// long after the raw stream's duplicate window (2 s here) republishes
// nothing: the start-up skip, not the window, keeps the raw stream free of
// duplicates.
func TestCollectorRestartPastDuplicateWindow(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	rng := newRand(t, "test")
	e.createRaw(shortWindow, 0)
	must(t, e.collector().Stop())
	e.router()
	w := e.startWorkload(defaultWorkload())
	for i := range pick(1, 3) {
		point := []string{"publish-before-ack", "ack-before-confirm", "mid-fragment"}[i%3]
		after := 3 + rng.IntN(15)
		if point == "mid-fragment" {
			w.bigNow()
			after = 1 + rng.IntN(3)
		}
		if e.col != nil {
			must(t, e.col.Stop())
		}
		crashAt(t, func(envv ...string) *harness.Proc { return e.startCollector(nil, envv...) }, point, after, 90*time.Second)
		time.Sleep(shortWindow + time.Second + time.Duration(rng.IntN(2000))*time.Millisecond)
		e.collector()
		time.Sleep(2 * time.Second)
	}
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	// The output stream dedupes within 10 minutes, so the raw stream is
	// where a duplicate would show: verify checks both.
	e.verify(fmt.Sprintf("collector restarted %s after its raw duplicate window", shortWindow+time.Second))
}

// Invariant: a router killed with a raw record's events stored (all of them,
// or part of a large one) and restarted after the output stream's duplicate
// window (2 s here) stores no event twice. (Within the window the stream's
// Nats-Msg-Id dedupe would hide a republish; past it, only the router can.)
func TestRouterRestartPastDuplicateWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"publish-before-ack", "half published"} {
		t.Run(tc, func(t *testing.T) {
			ctx := context.Background()
			e := workEnv(t)
			rng := newRand(t, "test")
			e.createEvents(shortWindow)
			e.collector()
			_, js := e.nats.Connect(t)
			events, err := js.Stream(ctx, "PGJET_EVENTS")
			must(t, err)
			if tc == "publish-before-ack" {
				w := e.startWorkload(defaultWorkload())
				crashAt(t, func(envv ...string) *harness.Proc { return e.startRouter(nil, envv...) }, "publish-before-ack", 5+rng.IntN(20), 90*time.Second)
				time.Sleep(shortWindow + time.Second)
				e.router()
				time.Sleep(2 * time.Second)
				w.Stop()
			} else {
				// One large transaction, many raw records of many events; the
				// router dies once some of a record's events are stored.
				e.router()
				rows := pick(3000, 20000)
				before := streamMsgs(t, events)
				e.exec(`INSERT INTO bulk (batch, payload) SELECT -1, repeat(md5(g::text), 9) FROM generate_series(1, $1) g`, rows)
				target := before + uint64(100+rng.IntN(rows/2))
				if !eventually(60*time.Second, func() bool { return streamMsgs(t, events) >= target }) {
					t.Fatalf("the router did not store %d events", target)
				}
				e.rt.Kill()
				killed := streamMsgs(t, events) - before
				time.Sleep(shortWindow + time.Second)
				// What the restarted router finds: publishes the killed one had
				// in flight have landed by now.
				stored := streamMsgs(t, events) - before
				t.Logf("router killed with %d of the %d events stored (%d when it was killed)", stored, rows, killed)
				if stored == 0 || stored >= uint64(rows) {
					t.Fatalf("the kill did not land inside the transaction: %d of its %d events stored; the scenario needs some but not all", stored, rows)
				}
				e.router()
				e.exec(`INSERT INTO accounts (owner) VALUES ('after the restart')`)
			}
			alive(t, e.col, "collector")
			alive(t, e.rt, "router")
			e.verify(fmt.Sprintf("router restarted %s after its output duplicate window (%s)", shortWindow+time.Second, tc))
		})
	}
}

func streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	must(t, err)
	return info.State.Msgs
}

// Invariant: raw records that expired (max age) before a router read them
// stop the router with a non-zero exit and an error naming the missing
// sequence range; nothing is skipped silently.
func TestRawRecordsExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const maxAge = 2 * time.Second
	e := workEnv(t)
	e.createRaw(time.Second, maxAge)
	// No initial snapshot: its record would be the first one acknowledged,
	// and the router could be stopped holding the insert's unacknowledged.
	e.startCollector([]string{"--snapshot-mode", "never"})
	rt := e.router()
	e.exec(`INSERT INTO accounts (owner) SELECT 'read in time ' || g FROM generate_series(1, 10) g`)
	_, js := e.nats.Connect(t)
	ackFloor := func() uint64 {
		c, err := js.Consumer(ctx, "PGJET_RAW", "pgjet-router")
		if err != nil {
			return 0
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return 0
		}
		return ci.AckFloor.Stream
	}
	if !eventually(30*time.Second, func() bool { return ackFloor() > 0 }) {
		t.Fatal("the router did not acknowledge the first records")
	}
	must(t, rt.Stop())
	floor := ackFloor()

	// Published while no router runs, then expired.
	for i := range 5 {
		e.exec(`INSERT INTO accounts (owner) SELECT 'expired ' || $1::int || '.' || g FROM generate_series(1, 10) g`, i)
		time.Sleep(50 * time.Millisecond)
	}
	raw, err := js.Stream(ctx, "PGJET_RAW")
	must(t, err)
	var last uint64
	if !eventually(30*time.Second, func() bool {
		info, err := raw.Info(ctx)
		if err != nil {
			return false
		}
		last = info.State.LastSeq
		return last >= floor+5
	}) {
		t.Fatalf("the collector did not publish the records (last seq %d, floor %d)", last, floor)
	}
	// Stop the collector so that nothing newer arrives, and wait past the max age.
	must(t, e.col.Stop())
	if !eventually(maxAge+30*time.Second, func() bool {
		info, err := raw.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}) {
		t.Fatal("raw records did not expire")
	}

	p := harness.StartProcess(t, "pgjet-router", []string{"--nats", e.rtNATS}, nil)
	err = waitExit(t, p, 60*time.Second, "router after raw records expired")
	t.Logf("router with raw records %d-%d expired: exit %v, last lines:\n%s", floor+1, last, err, tail(p.Log(), 3))
	if err == nil {
		t.Errorf("router exited with status 0")
	}
	want := fmt.Sprintf("records %d-%d", floor+1, last)
	if !strings.Contains(p.Log(), want) {
		t.Errorf("router does not name the missing sequence range %q; its last lines:\n%s", want, tail(p.Log(), 5))
	}
}
