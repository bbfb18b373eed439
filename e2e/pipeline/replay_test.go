package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// replay runs `pgjet-router replay` and returns its output once it exits,
// failing the test if it does not within a minute or its exit status is
// not as wanted.
func (e *env) replay(wantOK bool, args ...string) string {
	e.t.Helper()
	p := harness.StartProcess(e.t, "pgjet-router", append([]string{"replay", "--nats", e.nats.URL(), "--output-persist", "async"}, args...), nil)
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		e.t.Fatalf("replay %v did not exit", args)
	}
	if err := p.Wait(); (err == nil) != wantOK {
		e.t.Fatalf("replay %v: exit %v, want success %v:\n%s", args, err, wantOK, p.Log())
	}
	return p.Log()
}

// Invariants of `pgjet-router replay`: an output rebuilt from the raw stream
// into a new stream holds every change exactly once, in commit order, the
// same as the live output; from a commit LSN or time, and to one, it holds
// exactly the transactions in those bounds; it stops by itself; it refuses
// an existing stream that holds events unless told to purge (and then
// rebuilds it exactly), and a start older than the raw stream's first
// record, naming the oldest one.
func TestReplayRebuildsOutputs(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events")
	e.collector()
	e.router()
	e.mixed(1)
	live := e.verify(time.Minute) // every change in PGJET_EVENTS
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", live.Committed, time.Second)
	if err != nil {
		t.Fatal(err)
	}

	// The whole history into a new stream: the same events.
	out := e.replay(true, "--from-seq", "1", "--into", "REBUILT", "--stream", "REBUILT", "--subject-prefix", "rebuilt", "--durable", "unused")
	if !strings.Contains(out, "replay done") {
		t.Errorf("replay did not say it was done:\n%s", out)
	}
	rebuilt, err := check.Drain(ctx, js, "REBUILT", "", len(changes), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "rebuilt", changes, rebuilt)

	// Into a stream that holds events: refused, then purged and rebuilt.
	refused := e.replay(false, "--from-seq", "1", "--stream", "REBUILT", "--subject-prefix", "rebuilt")
	if !strings.Contains(refused, "REBUILT holds") || !strings.Contains(refused, "--purge") {
		t.Errorf("refusal does not explain itself:\n%s", refused)
	}
	e.replay(true, "--from-seq", "1", "--stream", "REBUILT", "--subject-prefix", "rebuilt", "--purge")
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	rebuilt, err = check.Drain(dctx, js, "REBUILT", "", len(changes), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "rebuilt after --purge", changes, rebuilt)

	// Bounds by commit LSN and by commit time: a middle third.
	var lsns []string
	var times []string
	for _, ev := range events {
		if len(lsns) == 0 || lsns[len(lsns)-1] != ev.LSN {
			lsns, times = append(lsns, ev.LSN), append(times, ev.CommitTime)
		}
	}
	from, to := len(lsns)/3, 2*len(lsns)/3
	inBounds := func(ev check.Event) bool {
		i := slices.Index(lsns, ev.LSN)
		return i >= from && i <= to
	}
	var want []check.Event
	for _, ev := range events {
		if inBounds(ev) {
			want = append(want, ev)
		}
	}
	for _, b := range []struct {
		name, stream string
		args         []string
	}{
		{"lsn", "BYLSN", []string{"--from-lsn", lsns[from], "--to-lsn", lsns[to]}},
		{"time", "BYTIME", []string{"--from-time", times[from], "--to-time", times[to]}},
	} {
		e.replay(true, append([]string{"--stream", b.stream, "--subject-prefix", strings.ToLower(b.stream)}, b.args...)...)
		bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
		got, err := check.Drain(bctx, js, b.stream, "", len(want), time.Second)
		bcancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("by %s: %d events, want %d", b.name, len(got), len(want))
			continue
		}
		for i := range want {
			if got[i].MsgID != want[i].MsgID {
				t.Errorf("by %s: event %d is %s, want %s", b.name, i, got[i].MsgID, want[i].MsgID)
				break
			}
		}
	}

	// History gone: a start before the first record is refused by name.
	raw, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	info, err := raw.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Purge(ctx, jetstream.WithPurgeKeep(info.State.Msgs/2)); err != nil {
		t.Fatal(err)
	}
	gone := e.replay(false, "--from-seq", "1", "--stream", "GONE", "--subject-prefix", "gone")
	if !strings.Contains(gone, "older than the raw stream's first record: raw stream PGJET_RAW starts at seq") {
		t.Errorf("refusal does not name the oldest record:\n%s", gone)
	}
}
