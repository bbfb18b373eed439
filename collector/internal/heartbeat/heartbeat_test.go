package heartbeat

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Heartbeats reach the WAL of the database as transactional
// pgjet.heartbeat messages carrying the source's name, one per interval; an
// action query runs instead when given; a mistake the user must fix (a
// broken query; a standby, in e2e/postgres) is one line at the first
// heartbeat, and an unreachable server is retried.
func TestHeartbeat(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	conn := pg.Connect(t)
	for _, sql := range []string{`CREATE TABLE hb (n int)`, `INSERT INTO hb VALUES (0)`, `SELECT pg_create_logical_replication_slot('hbtest', 'test_decoding')`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("message", func(t *testing.T) {
		var stats Stats
		hb := New(Config{Interval: 100 * time.Millisecond, DSN: pg.DSN(""), Source: "src-a"}, &stats, quiet)
		if err := hb.Check(ctx); err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { hb.Run(runCtx); close(done) }()
		deadline := time.Now().Add(30 * time.Second)
		for stats.Written.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		<-done
		written := stats.Written.Load()
		if written < 3 || stats.Failed.Load() != 0 {
			t.Fatalf("written %d, failed %d", written, stats.Failed.Load())
		}
		rows, err := conn.Query(ctx, `SELECT data FROM pg_logical_slot_get_changes('hbtest', NULL, NULL) WHERE data LIKE 'message:%'`)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		want := "message: transactional: 1 prefix: " + wire.HeartbeatPrefix + ", sz: 5 content:src-a"
		if uint64(len(msgs)) != written {
			t.Fatalf("%d heartbeats counted, %d messages in the WAL: %q", written, len(msgs), msgs)
		}
		for _, m := range msgs {
			if m != want {
				t.Fatalf("message %q, want %q", m, want)
			}
		}
	})

	t.Run("query", func(t *testing.T) {
		hb := New(Config{Interval: time.Hour, DSN: pg.DSN(""), Query: "UPDATE hb SET n = n + 1"}, nil, quiet)
		if err := hb.Check(ctx); err != nil {
			t.Fatal(err)
		}
		hb.close()
		var n int
		if err := conn.QueryRow(ctx, `SELECT n FROM hb`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("hb.n = %d (%v), want 1: the action query did not run", n, err)
		}
	})

	for _, tt := range []struct {
		name, dsn, query, want string
	}{
		{"broken query", pg.DSN(""), "UPDATE no_such_table SET x = 1", `relation "no_such_table" does not exist`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stats Stats
			hb := New(Config{Interval: time.Hour, DSN: tt.dsn, Query: tt.query}, &stats, quiet)
			err := hb.Check(ctx)
			hb.close()
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("first heartbeat: %v, want one line saying %q", err, tt.want)
			}
			if stats.Failed.Load() != 1 {
				t.Errorf("failed %d, want 1", stats.Failed.Load())
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		port, err := pgtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		hb := New(Config{Interval: time.Hour, DSN: strings.Replace(pg.DSN(""), ":"+strconv.Itoa(pg.Port), ":"+strconv.Itoa(port), 1)}, nil, quiet)
		if err := hb.Check(ctx); err != nil {
			t.Fatalf("an unreachable server ends the collector (%v): it must be retried", err)
		}
	})
}
