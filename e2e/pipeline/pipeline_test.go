// Package pipeline tests the built binaries end to end: a throwaway Postgres,
// a real nats-server process, pgjet-collector and pgjet-router.
package pipeline

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
)

// env is one pipeline under test.
type env struct {
	t      *testing.T
	pg     *pgtest.Cluster
	nats   *harness.NATS
	conn   *pgx.Conn
	tables string
}

func newEnv(t *testing.T, schema string, tables ...string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, pg: pgtest.Run(t), tables: strings.Join(tables, ",")}
	conn, err := pgx.Connect(ctx, e.pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	e.conn = conn
	e.exec(schema)
	if err := check.InstallAudit(ctx, conn, tables...); err != nil {
		t.Fatal(err)
	}
	e.nats = harness.StartNATS(t, "")
	return e
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.conn.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", firstLine(sql), err)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// collectorArgs are the flags of the env's collector, with extra ones.
func (e *env) collectorArgs(extra ...string) []string {
	return append([]string{
		"--dsn", e.pg.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e", "--tables", e.tables,
		"--nats", e.nats.URL(), "--source", "e2e",
	}, extra...)
}

func (e *env) collector(extra ...string) *harness.Proc {
	e.t.Helper()
	p := harness.StartProcess(e.t, "pgjet-collector", e.collectorArgs(extra...), nil)
	if !p.WaitForLog("msg=streaming", 30*time.Second) {
		e.t.Fatalf("collector did not start streaming")
	}
	return p
}

func (e *env) router(extra ...string) *harness.Proc {
	e.t.Helper()
	// No server crash here: async persistence of the output stream keeps a
	// 200,000-event drain short where the server fsyncs every write.
	args := append([]string{"--nats", e.nats.URL(), "--output-persist", "async"}, extra...)
	p := harness.StartProcess(e.t, "pgjet-router", args, nil)
	if !p.WaitForLog("msg=relaying", 30*time.Second) {
		e.t.Fatalf("router did not start relaying")
	}
	return p
}

// verify drains the output stream and checks it against the audit log.
func (e *env) verify(timeout time.Duration) check.Report {
	e.t.Helper()
	return e.verifyOn("postgres.>", timeout)
}

// verifyTables is verify for a stream that may also hold dead letters:
// the events of the tables only.
func (e *env) verifyTables(timeout time.Duration) {
	e.t.Helper()
	e.verifyOn("postgres.public.>", timeout)
}

// verifyOn is verify of the output stream's events on subjects filter.
func (e *env) verifyOn(filter string, timeout time.Duration) check.Report {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	_, js := e.nats.Connect(e.t)
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", filter, len(changes), 2*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	r := check.Check(changes, events)
	e.t.Logf("%s: %s", e.t.Name(), r.String())
	if !r.OK() {
		e.t.Fatalf("invariant violated: %s", r.String())
	}
	return r
}

const mixedSchema = `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text, bio text, prefs jsonb);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE, amount numeric(12,2), note text,
	created timestamptz DEFAULT now());
CREATE TABLE events (at timestamptz, kind text, payload jsonb);
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE bulk (id int PRIMARY KEY, v text);
`

// mixed runs one round of a mixed OLTP workload: single-row and multi-table
// transactions, updates (some leaving a TOASTed column unchanged), cascading
// deletes, rollbacks and a savepoint rollback.
func (e *env) mixed(round int) {
	e.t.Helper()
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		e.exec(`INSERT INTO users (name, email, prefs) VALUES ($1, $2, $3)`,
			fmt.Sprintf("user %d-%d ünïcødé ✓", round, i), fmt.Sprintf("u%d.%d@example.com", round, i), fmt.Sprintf(`{"round": %d, "i": %d}`, round, i))
	}
	for i := 0; i < 20; i++ {
		tx, err := e.conn.Begin(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		var id int
		if err := tx.QueryRow(ctx, `INSERT INTO users (name) VALUES ($1) RETURNING id`, fmt.Sprintf("buyer %d-%d", round, i)).Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		for k := 0; k < 3; k++ {
			if _, err := tx.Exec(ctx, `INSERT INTO orders (user_id, amount, note) VALUES ($1, $2, $3)`, id, fmt.Sprintf("%d.%02d", 10+k, i), "line\tone\nline \"two\""); err != nil {
				e.t.Fatal(err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events VALUES (now(), 'order', jsonb_build_object('user', $1::int))`, id); err != nil {
			e.t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	// A large bio is TOASTed; a later update of another column leaves it unchanged.
	e.exec(`UPDATE users SET bio = (SELECT string_agg(md5(g::text || $1::text), '') FROM generate_series(1, 400) g) WHERE id % 7 = 0`, fmt.Sprint(round))
	e.exec(`UPDATE users SET email = upper(email) WHERE id % 7 = 0`)
	e.exec(`UPDATE orders SET amount = amount * 2 WHERE id % 3 = 0`)
	e.exec(`UPDATE events SET kind = 'seen' WHERE kind = 'order' AND (payload->>'user')::int % 2 = 0`)
	e.exec(`DELETE FROM users WHERE id IN (SELECT id FROM users WHERE id % 11 = 0 ORDER BY id LIMIT 5)`) // cascades to orders
	e.exec(`DELETE FROM events WHERE (payload->>'user')::int % 5 = 0`)
	// Rolled back: must never appear.
	for i := 0; i < 5; i++ {
		tx, err := e.conn.Begin(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (name) VALUES ('rolled back')`); err != nil {
			e.t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET note = 'rolled back'`); err != nil {
			e.t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	e.exec(`BEGIN; INSERT INTO users (name) VALUES ('kept'); SAVEPOINT s; INSERT INTO users (name) VALUES ('savepoint rolled back');
		ROLLBACK TO SAVEPOINT s; UPDATE users SET name = name || ' (kept)' WHERE name = 'kept'; COMMIT`)
}

// Invariant: every committed change of a mixed workload (inserts, updates,
// deletes, truncate, multi-table transactions, a 200,000-row transaction,
// rollbacks) is delivered exactly once, in commit order, with values equal to
// Postgres's to_jsonb, across clean restarts of collector and router, and
// nothing from rolled-back transactions is.
func TestMixedWorkloadExactlyOnceInCommitOrder(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	col := e.collector()
	rt := e.router()

	e.mixed(1)

	// Clean restarts while changes keep coming.
	if err := col.Stop(); err != nil {
		t.Fatalf("collector stop: %v", err)
	}
	e.mixed(2)
	col = e.collector()
	if err := rt.Stop(); err != nil {
		t.Fatalf("router stop: %v", err)
	}
	e.mixed(3)
	rt = e.router()

	// One transaction of 200,000 rows, then a truncate.
	e.exec(`INSERT INTO bulk SELECT g, repeat('x', 40) || g FROM generate_series(1, 200000) g`)
	e.exec(`TRUNCATE events`)
	e.mixed(4)

	r := e.verify(8 * time.Minute)
	if r.Committed < 200000 {
		t.Fatalf("only %d changes committed: the workload did not run", r.Committed)
	}
	t.Logf("collector peak RSS %d MiB, router peak RSS %d MiB (200,000-row transaction included)",
		col.PeakRSSKiB()>>10, rt.PeakRSSKiB()>>10)
	if rss := col.PeakRSSKiB() >> 10; rss > 150 {
		t.Errorf("collector peak RSS %d MiB: memory is not bounded on a large transaction", rss)
	}
	for _, p := range []*harness.Proc{col, rt} {
		if strings.Contains(p.Log(), "level=ERROR") {
			t.Errorf("%s logged an error", p.Name)
		}
	}
}

const typesSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE typed (
	id serial PRIMARY KEY,
	c_int2 int2, c_int4 int4, c_int8 int8, c_numeric numeric, c_num_scale numeric(20,5),
	c_float4 float4, c_float8 float8, c_bool bool,
	c_text text, c_varchar varchar(50), c_bpchar char(5),
	c_json json, c_jsonb jsonb, c_uuid uuid,
	c_date date, c_time time, c_timetz timetz, c_ts timestamp, c_tstz timestamptz, c_interval interval,
	c_bytea bytea, c_int_arr int4[], c_text_arr text[], c_2d int4[][], c_jsonb_arr jsonb[],
	c_mood mood, c_mood_arr mood[], c_posint posint, c_inet inet, c_money money
);
`

// Invariant: every value in after/before equals what Postgres itself renders
// for the row (to_jsonb), type by type, NULLs and unicode included.
func TestValuesEqualPostgresRendering(t *testing.T) {
	e := newEnv(t, typesSchema, "public.typed")
	e.collector()
	e.router()

	typedWorkload(e)

	r := e.verify(time.Minute)
	if r.Committed != 8 {
		t.Fatalf("committed %d changes, want 8", r.Committed)
	}
}

// Invariant: user errors end the process with one clear line and a non-zero
// exit, never a stack trace.
func TestUserErrorsAreOneClearLine(t *testing.T) {
	pg := pgtest.Run(t, "wal_level = replica")
	nats := harness.StartNATS(t, "")
	tests := []struct {
		name string
		bin  string
		args []string
		want string
	}{
		{"wrong wal_level", "pgjet-collector", []string{"--dsn", pg.DSN(""), "--nats", nats.URL(), "--tables", "public.x"}, "wal_level is \"replica\""},
		{"unreachable postgres", "pgjet-collector", []string{"--dsn", "postgres://u:hunter2@127.0.0.1:1/db", "--nats", nats.URL()}, "cannot connect to PostgreSQL"},
		{"no nats choice", "pgjet-collector", []string{"--dsn", pg.DSN("")}, "give --nats URL"},
		{"bad flag", "pgjet-collector", []string{"--nope"}, "flag provided but not defined"},
		{"router bad stdout", "pgjet-router", []string{"--nats", nats.URL(), "--stdout", "xml"}, "xml"},
		{"router missing nats", "pgjet-router", nil, "--nats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := harness.StartProcess(t, tt.bin, tt.args, nil)
			select {
			case <-p.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("did not exit")
			}
			if p.Wait() == nil {
				t.Fatal("exit status 0, want non-zero")
			}
			out := p.Log()
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output does not say %q:\n%s", tt.want, out)
			}
			for _, bad := range []string{"goroutine ", "panic", "hunter2"} {
				if strings.Contains(out, bad) {
					t.Fatalf("output contains %q:\n%s", bad, out)
				}
			}
		})
	}
}

// Invariant: with nothing in flight, keepalives move the slot to the server's
// WAL end, so an idle database (or one busy with unpublished tables) does not
// keep WAL; and the embedded server serves a router over --listen.
func TestEmbeddedServerAndIdleSlotAdvance(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, `CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int)`, "public.published")
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	col := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", e.pg.DSN(""), "--slot", "idle", "--publication", "idle", "--tables", "public.published",
		"--embedded", t.TempDir(), "--listen", listen,
	}, nil)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", "nats://" + listen, "--stdout", "json"}, nil)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	e.exec(`INSERT INTO published VALUES (1), (2)`)
	if !rt.WaitForLog(`"op":"insert"`, 30*time.Second) {
		t.Fatal("router did not print the inserts")
	}

	// Changes to an unpublished table produce WAL but no records.
	e.exec(`INSERT INTO other SELECT generate_series(1, 10000)`)
	var target string
	if err := e.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var reached bool
		if err := e.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'idle'`, target).Scan(&reached); err != nil {
			t.Fatal(err)
		}
		if reached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot's confirmed_flush_lsn did not reach the WAL end %s within 30 s", target)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
