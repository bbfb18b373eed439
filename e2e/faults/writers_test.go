package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
)

// writer is one collector's slot and publication.
type writer struct {
	slot, tables string
}

// startWriter starts a collector reading w for source, with the env's
// NATS and message size, and returns at once.
func (e *env) startWriter(w writer, source string, extra ...string) *harness.Proc {
	args := []string{"--dsn", e.colDSN, "--slot", w.slot, "--publication", w.slot, "--tables", w.tables,
		"--source", source, "--nats", e.colNATS}
	args = append(append(args, e.colFlags...), extra...)
	return harness.StartProcess(e.t, "pgjet-collector", args, nil)
}

// streams waits until p streams, failing the test if it does not.
func streams(t *testing.T, p *harness.Proc, what string) {
	t.Helper()
	if !p.WaitForLog("msg=streaming", 60*time.Second) {
		t.Fatalf("%s did not start streaming:\n%s", what, tail(p.Log(), 30))
	}
}

// assertRefused checks that p ended with the one-writer refusal naming the
// other writer's slot and the ways through.
func assertRefused(t *testing.T, p *harness.Proc, other writer, what string) {
	t.Helper()
	err := waitExit(t, p, 60*time.Second, what)
	if err == nil {
		t.Errorf("%s: exit status 0, want a refusal", what)
	}
	last := tail(p.Log(), 1)
	for _, want := range []string{"written by another collector", fmt.Sprintf("slot %q", other.slot), "--source", "--take-over-source"} {
		if !strings.Contains(last, want) {
			t.Errorf("%s: the last line does not say %q:\n%s", what, want, tail(p.Log(), 5))
		}
	}
	if strings.Count(strings.TrimSpace(last), "\n") > 0 || strings.Contains(p.Log(), "goroutine ") {
		t.Errorf("%s: not one line:\n%s", what, tail(p.Log(), 10))
	}
	t.Logf("%s: %s", what, last)
}

// Invariant (issue 20, "Lost: two collectors, one source id"): a source id
// has exactly one writer. Two collectors on different slots and
// publications given the same --source: when both run at once, a
// transaction touching tables of both makes one of them stop with one line
// naming the other's slot (before, JetStream took its record for a
// duplicate of the other's and the slot moved on: rows lost); restarted
// while the other writes, it refuses at once (before, it skipped its own
// changes committed while it was down). Given a source id of its own (the
// legitimate configuration), it streams everything its slot kept, and with
// both collectors killed and restarted while the other writes, nothing is
// lost and nothing doubled.
func TestOneWriterPerSource(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	a := writer{slot: "writer_a", tables: "public.accounts,public.journal"}
	b := writer{slot: "writer_b", tables: "public.transfers,public.bulk"}
	const shared = "shop"

	// Both at once, on an empty raw stream: neither has anything to refuse.
	pa, pb := e.startWriter(a, shared), e.startWriter(b, shared)
	streams(t, pa, "collector A")
	streams(t, pb, "collector B")
	e.router()
	e.exec(`BEGIN;
		INSERT INTO accounts (owner, balance) VALUES ('both publications', 1);
		INSERT INTO transfers (src, dst, amount, note) VALUES (1, 2, 1, 'both publications');
		COMMIT`)
	var survivor, loser *harness.Proc
	var sw, lw writer
	if !eventually(60*time.Second, func() bool { return pa.Exited() || pb.Exited() }) {
		t.Fatalf("two collectors wrote source %q, neither stopped:\nA:\n%s\nB:\n%s", shared, tail(pa.Log(), 10), tail(pb.Log(), 10))
	}
	survivor, loser, sw, lw = pb, pa, b, a
	if pb.Exited() {
		survivor, loser, sw, lw = pa, pb, a, b
	}
	assertRefused(t, loser, sw, "the second writer of a source, both running")
	alive(t, survivor, "the first writer")

	// Restarted while the other writes: refused before it takes its slot.
	w := e.startWorkload(defaultWorkload())
	time.Sleep(time.Second)
	assertRefused(t, e.startWriter(lw, shared), sw, "the second writer restarted while the first writes")
	// check says the same before anything is started.
	chk := harness.StartProcess(t, "pgjet-collector", append([]string{"check", "--dsn", e.colDSN, "--slot", lw.slot, "--publication", lw.slot,
		"--tables", lw.tables, "--source", shared, "--nats", e.colNATS}, e.colFlags...), nil)
	if err := waitExit(t, chk, 60*time.Second, "check of the second writer"); err == nil ||
		!strings.Contains(chk.Log(), "FAIL source shop is written by another collector") || !strings.Contains(chk.Log(), fmt.Sprintf("slot %q", sw.slot)) {
		t.Errorf("check of the second writer: exit %v, want FAIL naming slot %s:\n%s", err, sw.slot, chk.Log())
	}

	// The legitimate configuration: a source id of its own. Its slot kept
	// everything since the refused record.
	own := shared + "_" + lw.slot
	loser = e.startWriter(lw, own)
	streams(t, loser, "the second collector with its own source id")
	// Each restarted by kill -9 while the other writes.
	for _, c := range []struct {
		p      **harness.Proc
		w      writer
		source string
	}{{&survivor, sw, shared}, {&loser, lw, own}} {
		time.Sleep(pick(2*time.Second, 5*time.Second))
		w.bigNow()
		time.Sleep(300 * time.Millisecond)
		(*c.p).Kill()
		time.Sleep(500 * time.Millisecond)
		for attempt := 0; ; attempt++ {
			*c.p = e.startWriter(c.w, c.source)
			if (*c.p).WaitForLog("msg=streaming", 60*time.Second) {
				break
			}
			// Right after a kill, Postgres may not have released the slot.
			if attempt == 20 || !strings.Contains((*c.p).Log(), "in use by another process") {
				t.Fatalf("collector of %s did not stream again after kill -9:\n%s", c.source, tail((*c.p).Log(), 20))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	time.Sleep(pick(2*time.Second, 5*time.Second))
	w.Stop()
	alive(t, survivor, "collector of "+shared)
	alive(t, loser, "collector of "+own)
	alive(t, e.rt, "router")

	// Both slots caught up, then the output: every change exactly once.
	for _, s := range []struct {
		p      *harness.Proc
		slot   string
		source string
	}{{survivor, sw.slot, shared}, {loser, lw.slot, own}} {
		e.col, e.slot, e.source = s.p, s.slot, s.source
		if !e.settle(pick(4*time.Minute, 10*time.Minute)) {
			t.Fatalf("slot %s did not catch up", s.slot)
		}
		if raw := e.rawCheck(); !raw.ok() || raw.changes == 0 {
			t.Errorf("raw stream of %s: %s", s.source, raw)
		}
	}
	r := e.verify("two sources, one per slot, each collector killed while the other writes")
	if r.Committed == 0 {
		t.Fatal("nothing was committed")
	}
}
