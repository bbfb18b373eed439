package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// Invariant: a route added to a running pipeline later (a new sink with
// start_position earliest) is filled from the raw stream's retained
// history and goes on with live changes, while Postgres keeps committing:
// its output holds every change exactly once and in commit order, with no
// gap and no duplicate where history meets live changes; the first route
// is not disturbed.
func TestRouteAddedLaterJoinsHistoryAndLive(t *testing.T) {
	e := newEnv(t, `CREATE TABLE ticks (id serial PRIMARY KEY, v text)`, "public.ticks")
	dir := t.TempDir()
	write := func(name string, sinks ...string) string {
		p := filepath.Join(dir, name)
		src := `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: join}
spec:
  source: {type: postgres, config: {id: ticks, dsn: "${POSTGRES_DSN}", slot: join, publication: join, tables: [public.ticks]}}
  raw_stream: {url: "${NATS_URL}"}
  sinks:
`
		for _, s := range sinks {
			src += s
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := "    - {type: nats, config: {id: first, url: '${NATS_URL}', prefix: first, stream: {name: FIRST, persist: async}}}\n"
	later := "    - {type: nats, config: {id: later, url: '${NATS_URL}', prefix: later, stream: {name: LATER, persist: async}, start_position: earliest}}\n"
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL()}
	one := write("one.yaml", first)
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", one}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", one}, env)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}

	// Postgres commits all along, from its own connection. The writer stops
	// between statements, not by cancelling one: a cancelled INSERT may still
	// commit after the audit below was read, and would look like an extra.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var committed atomic.Int64
	var stop atomic.Bool
	defer stop.Store(true)
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (v) VALUES ($1)`, fmt.Sprint("tick ", i)); err != nil {
				done <- err
				return
			}
			committed.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitUntil(t, "history before the new route", func() bool { return committed.Load() >= 300 })

	// The pipeline gets a second sink; the router restarts with it.
	if err := rt.Stop(); err != nil {
		t.Fatal(err)
	}
	two := write("two.yaml", first, later)
	rt = harness.StartProcess(t, "pgjet-router", []string{"--config", two}, env)
	if !rt.WaitForLog("msg=relaying route=later ", 30*time.Second) {
		t.Fatal("the new route did not start relaying")
	}
	at := committed.Load()
	waitUntil(t, "live changes after the join", func() bool { return committed.Load() >= at+300 })
	stop.Store(true)
	if err, ok := <-done; ok && err != nil {
		t.Fatal(err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
	defer dcancel()
	changes, err := check.ReadAudit(dctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)
	for _, stream := range []string{"FIRST", "LATER"} {
		events, err := check.Drain(dctx, js, stream, "", len(changes), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, stream, changes, events)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
