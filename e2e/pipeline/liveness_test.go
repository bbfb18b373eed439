package pipeline

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/wire"
)

// slotPosition is the slot's confirmed_flush_lsn and the server's WAL
// position, read together.
func slotPosition(t *testing.T, conn *pgx.Conn, slot string) (confirmed, current wire.LSN) {
	t.Helper()
	var c, w string
	err := conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&c, &w)
	if err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	cl, err1 := wire.ParseLSN(c)
	wl, err2 := wire.ParseLSN(w)
	if err1 != nil || err2 != nil {
		t.Fatalf("slot positions %q %q", c, w)
	}
	return cl, wl
}

var heartbeatLSN = regexp.MustCompile(`component=heartbeat lsn=([0-9A-F]+/[0-9A-F]+)`)

// Invariant: with --heartbeat, a slot whose published tables are idle
// while another database of the cluster writes keeps its lag bounded: the
// heartbeats written into its database are confirmed (the slot moves past
// each), none of them reaches the raw stream, and the slot's lag stays a
// small part of the WAL the other database writes.
func TestHeartbeatKeepsAnIdleSlotMoving(t *testing.T) {
	e := newEnv(t, `CREATE TABLE idle (id int PRIMARY KEY)`, "public.idle")
	ctx := context.Background()
	e.exec(`CREATE DATABASE other`)
	other, err := pgx.Connect(ctx, e.pg.DSN("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `CREATE TABLE busy (id bigserial PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	col := e.collector("--heartbeat", "300ms", "--log-level", "debug")

	_, start := slotPosition(t, e.conn, "pgjet_e2e")
	var maxLag uint64
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := other.Exec(ctx, `INSERT INTO busy (v) SELECT repeat('x', 100) FROM generate_series(1, 1000)`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // a busy database, not a bulk load: spare the shared disk
		confirmed, current := slotPosition(t, e.conn, "pgjet_e2e")
		maxLag = max(maxLag, uint64(current-confirmed))
	}
	_, end := slotPosition(t, e.conn, "pgjet_e2e")
	written := uint64(end - start)

	// The last heartbeat logged so far is confirmed soon.
	beats := heartbeatLSN.FindAllStringSubmatch(col.Log(), -1)
	if len(beats) < 5 {
		t.Fatalf("%d heartbeats logged in 8 s at --heartbeat 300ms", len(beats))
	}
	last, err := wire.ParseLSN(beats[len(beats)-1][1])
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the slot confirmed past the last heartbeat", func() bool {
		confirmed, _ := slotPosition(t, e.conn, "pgjet_e2e")
		return confirmed >= last
	})
	t.Logf("other database wrote %d MiB of WAL; the idle slot's lag peaked at %d KiB; %d heartbeats", written>>20, maxLag>>10, len(beats))
	if maxLag > written/3 {
		t.Errorf("the idle slot's lag peaked at %d bytes of %d written: it is not bounded", maxLag, written)
	}
	_, js := e.nats.Connect(t)
	info, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("the raw stream holds %d records: heartbeats were stored", n)
	}
}

// Invariant: a walsender that stops sending (no data, no keepalive; here
// frozen with SIGSTOP) is detected within --replication-timeout, the
// session is made again (the frozen walsender, which still holds the slot,
// is terminated), and every committed change is still delivered exactly
// once, in order.
func TestSilentWalsenderIsReplaced(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events")
	const timeout = 5 * time.Second
	col := e.collector("--replication-timeout", timeout.String())
	e.router()
	e.mixed(1)

	var pid int
	if err := e.conn.QueryRow(context.Background(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'pgjet_e2e'`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze the walsender: %v", err)
	}
	frozen := time.Now()
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	e.mixed(2) // committed while the walsender is frozen

	// Bounded: the timeout, plus a receive loop turn and a loaded machine.
	if !col.WaitForLog("sent nothing, no data and no keepalive", timeout+20*time.Second) {
		t.Fatalf("the frozen walsender was not detected within %s", timeout+20*time.Second)
	}
	detected := time.Since(frozen)
	if !col.WaitForLog(fmt.Sprintf("terminating the silent walsender of the previous session, which still holds the slot\" pid=%d", pid), 30*time.Second) {
		t.Fatal("the frozen walsender, still holding the slot, was not terminated")
	}
	// It acts on the termination once it runs again.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a new session streaming", func() bool { return strings.Count(col.Log(), "msg=streaming") >= 2 })
	t.Logf("silent walsender detected after %s (--replication-timeout %s)", detected.Round(100*time.Millisecond), timeout)
	e.mixed(3)
	e.verify(2 * time.Minute)
	if col.Exited() {
		t.Fatalf("the collector exited: %v", col.Wait())
	}
}

// Invariant: creating the slot behind a long transaction does not hang
// silently: the collector says which session it waits for, and streams
// once that transaction ends.
func TestSlotCreationBehindALongTransaction(t *testing.T) {
	t.Parallel() // mostly waits for the first report
	e := newEnv(t, mixedSchema, "public.users")
	ctx := context.Background()
	long, err := pgx.Connect(ctx, e.pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close(ctx)
	tx, err := long.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO users (name) VALUES ('in a long transaction')`); err != nil {
		t.Fatal(err)
	}
	col := harness.StartProcess(t, "pgjet-collector", e.collectorArgs(), nil)
	want := fmt.Sprintf("a slot starts where no transaction is running, and pid %d ", long.PgConn().PID())
	if !col.WaitForLog(want, 30*time.Second) {
		t.Fatalf("the collector does not say what the slot waits for (%q)", want)
	}
	if !strings.Contains(col.Log(), "in a long transaction") {
		t.Error("the report does not show the waiting transaction's query")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("the collector did not stream after the transaction ended")
	}
	if !strings.Contains(col.Log(), "replication slot created after waiting") {
		t.Error("the creation's end is not logged")
	}
}
