package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Invariant: a Postgres restart (-m immediate: a crash, the slot rewinds to
// its last checkpointed position and Postgres resends transactions already
// confirmed; -m fast: a clean shutdown) loses nothing, and everything
// resent is skipped or deduplicated. The collector either reconnects by
// itself or exits, and is then restarted as a supervisor would; the test
// logs which.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"immediate", "fast"} {
		t.Run(mode, func(t *testing.T) {
			restarts := pick(1, 3)
			e := workEnv(t)
			rng := newRand(t, "test")
			e.collector()
			e.router()
			w := e.startWorkload(defaultWorkload())
			var behaviors []string
			for i := range restarts {
				if i%2 == 0 {
					w.bigNow()
				}
				time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
				// Counted before the outage: a collector may stream again
				// before Restart returns.
				streamed := strings.Count(e.col.Log(), "msg=streaming")
				must(t, e.pg.StopMode(mode))
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
				must(t, e.pg.Restart())
				e.reconnect()
				behaviors = append(behaviors, e.collectorAfterOutage(fmt.Sprintf("Postgres restart -m %s", mode), streamed))
			}
			time.Sleep(3 * time.Second)
			w.Stop()
			alive(t, e.col, "collector")
			alive(t, e.rt, "router")
			t.Logf("collector after Postgres restart -m %s: %s", mode, strings.Join(behaviors, "; "))
			e.verify(fmt.Sprintf("Postgres restart -m %s, %s", mode, plural(restarts, "time")))
		})
	}
}

// collectorAfterOutage waits until the current collector streams again after
// its Postgres connection broke: by reconnecting, or, if it exited, by a
// restart (what systemd would do). It returns what happened.
// before is how many times it had logged "streaming" before the outage.
func (e *env) collectorAfterOutage(what string, before int) string {
	e.t.Helper()
	p := e.col
	// A collector that reconnects logs "streaming" again; one that exits, exits.
	ok := eventually(60*time.Second, func() bool {
		return p.Exited() || strings.Count(p.Log(), "msg=streaming") > before
	})
	if !ok {
		e.t.Fatalf("%s: the collector neither streamed again nor exited within 60 s:\n%s", what, tail(p.Log(), 30))
	}
	if !p.Exited() {
		return "reconnected by itself"
	}
	err := p.Wait()
	e.t.Logf("%s: the collector exited (%v); restarting it, as a supervisor would. Its last lines:\n%s", what, err, tail(p.Log(), 5))
	e.collector()
	return fmt.Sprintf("exited (%v) and was restarted", err)
}

// Invariant: a slot dropped under a running collector stops it with a clear
// error, and a restarted collector refuses to create the slot again while
// the raw stream holds records of it (which would silently skip everything
// committed in between): it exits non-zero and says the slot is missing.
func TestSlotDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := workEnv(t)
	e.collector()
	e.router()
	w := e.startWorkload(defaultWorkload())
	time.Sleep(pick(2*time.Second, 5*time.Second))
	w.Stop()
	e.verify("before the slot is dropped")

	// Terminate the walsender and drop the slot before the collector gets
	// it again.
	dropped := eventually(30*time.Second, func() bool {
		_, _ = e.conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, e.slot)
		_, err := e.conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, e.slot)
		return err == nil
	})
	if !dropped {
		t.Fatalf("could not drop slot %s", e.slot)
	}
	e.exec(`INSERT INTO accounts (owner) VALUES ('after the drop')`)
	err := waitExit(t, e.col, 60*time.Second, "slot dropped under a running collector")
	if err == nil {
		t.Errorf("collector exited with status 0 after its slot was dropped")
	}
	t.Logf("collector after its slot was dropped: exit %v, last lines:\n%s", err, tail(e.col.Log(), 4))
	assertSlotMissingError(t, e.col.Log(), e.slot)
	if n := e.queryInt(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot); n != 0 {
		t.Errorf("the collector recreated slot %s after it was dropped", e.slot)
	}

	// Restarted, it refuses too.
	p := e.startCollectorNoWait(nil)
	err = waitExit(t, p, 60*time.Second, "collector restarted without its slot")
	if err == nil {
		t.Errorf("restarted collector exited with status 0 although its slot is missing")
	}
	assertSlotMissingError(t, p.Log(), e.slot)
	if n := e.queryInt(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.slot); n != 0 {
		t.Errorf("a restarted collector recreated slot %s silently", e.slot)
	}
	for _, bad := range []string{"goroutine ", "panic:"} {
		if strings.Contains(p.Log(), bad) {
			t.Errorf("collector output contains %q:\n%s", bad, p.Log())
		}
	}
}

func assertSlotMissingError(t *testing.T, log, slot string) {
	t.Helper()
	last := strings.ToLower(tail(log, 5))
	if !strings.Contains(last, slot) || !(strings.Contains(last, "does not exist") || strings.Contains(last, "missing") || strings.Contains(last, "dropped")) {
		t.Errorf("collector does not say clearly that slot %s is missing; its last lines:\n%s", slot, tail(log, 5))
	}
}
