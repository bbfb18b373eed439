package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Invariant: kill -9 of nats-server (file storage, fsync on every write) and
// a restart on the same store, while Postgres keeps committing: collector
// and router reconnect by themselves, nothing acknowledged is lost, nothing
// is doubled.
func TestNATSKilledAndRestarted(t *testing.T) {
	t.Parallel()
	kills := pick(1, 4)
	e := workEnv(t)
	rng := newRand(t, "test")
	e.collector()
	e.router()
	w := e.startWorkload(defaultWorkload())
	for i := range kills {
		if i%2 == 1 {
			w.bigNow()
		}
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		e.nats.Kill()
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		e.nats.Restart()
		alive(t, e.col, "collector")
		alive(t, e.rt, "router")
	}
	time.Sleep(3 * time.Second)
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	e.verify(fmt.Sprintf("nats-server kill -9 and restart, %s", plural(kills, "time")))
}

// Invariant: while NATS is unreachable the collector keeps its replication
// connection (the same walsender, answering keepalives, the slot active),
// holds the slot where it is, and resumes by itself when NATS is back; so
// does the router. The outage outlasts wal_sender_timeout (short mode: 5 s
// against 2 s; full: 30 s against 10 s), and the collector's queue is small
// enough to fill at once, so the walsender would end a connection whose
// keepalives go unanswered while reading is held.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	outage := pick(5*time.Second, 30*time.Second)
	senderTimeout := pick(2*time.Second, 10*time.Second)
	e := workEnv(t, fmt.Sprintf("wal_sender_timeout = %dms", senderTimeout.Milliseconds()))
	e.colFlags = append(e.colFlags, "--max-queue-bytes", "262144")
	e.collector()
	e.router()
	w := e.startWorkload(defaultWorkload())
	time.Sleep(2 * time.Second)
	ctx := context.Background()

	pid := e.walsender(ctx)
	if pid == 0 {
		t.Fatal("no walsender of pgjet-collector in pg_stat_replication before the outage")
	}
	must(t, e.nats.Stop())
	start := time.Now()
	w.bigNow()
	for time.Since(start) < outage {
		time.Sleep(500 * time.Millisecond)
		alive(t, e.col, "collector during the NATS outage")
		alive(t, e.rt, "router during the NATS outage")
		if got := e.walsender(ctx); got != pid {
			t.Errorf("after %s of NATS outage the collector's walsender is %d, was %d: the replication connection was not kept",
				time.Since(start).Round(time.Second), got, pid)
			break
		}
	}
	var active bool
	must(t, e.conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&active))
	if !active {
		t.Errorf("slot %s inactive at the end of the NATS outage", e.slot)
	}
	if !strings.Contains(e.col.Log(), "holding replication") {
		t.Errorf("the collector did not hold replication (its queue did not fill in %s): the keepalives of a held reader are not tested", outage)
	}
	t.Logf("NATS down for %s (wal_sender_timeout %s): collector kept walsender %d, slot active %v", outage, senderTimeout, pid, active)
	e.nats.Restart()
	time.Sleep(3 * time.Second)
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	if got := e.walsender(ctx); got != pid {
		t.Errorf("after the outage the collector's walsender is %d, was %d", got, pid)
	}
	e.verify(fmt.Sprintf("NATS outage of %s", outage))
}

// walsender returns the pid of the collector's walsender, 0 if none.
func (e *env) walsender(ctx context.Context) int {
	e.t.Helper()
	var pid int
	err := e.conn.QueryRow(ctx, `SELECT coalesce((SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active), 0)`, e.slot).Scan(&pid)
	if err != nil {
		e.t.Fatal(err)
	}
	return pid
}
