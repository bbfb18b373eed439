package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariant: the collector decodes from a standby where the server can
// (PostgreSQL 16+, detected from the server, not assumed), with its
// heartbeats written on the primary (--heartbeat-dsn): every change
// committed on the primary arrives exactly once, in commit order. A
// heartbeat aimed at the standby, and a standby that cannot decode, each
// end the collector with one line saying what to do.
func TestDecodingFromAStandby(t *testing.T) {
	primary := pgtest.Run(t, "hot_standby_feedback = on")
	standby, err := primary.StartStandby("pgjet_standby", "hot_standby_feedback = on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Stop)
	e := newEnvWith(t, primary, harness.StartNATS(t, ""), mixedSchema, "public.users", "public.orders")
	e.exec(`CREATE PUBLICATION pgjet_e2e FOR TABLE users, orders`)
	sconn, err := pgx.Connect(context.Background(), standby.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(context.Background())
	waitUntil(t, "the standby has replayed the publication", func() bool {
		var n int
		return sconn.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication WHERE pubname = 'pgjet_e2e'`).Scan(&n) == nil && n == 1
	})
	var decodes bool
	var version string
	if err := e.conn.QueryRow(context.Background(), `SELECT to_regproc('pg_catalog.pg_log_standby_snapshot') IS NOT NULL, current_setting('server_version')`).Scan(&decodes, &version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s: logical decoding on a standby: %v", version, decodes)
	args := []string{"--dsn", standby.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e", "--tables", e.tables,
		"--nats", e.nats.URL(), "--source", "e2e"}

	if !decodes {
		col := harness.StartProcess(t, "pgjet-collector", args, nil)
		stopsWith(t, col, "which cannot decode logical replication (standbys can from PostgreSQL 16): point --dsn at the primary", nil)
		return
	}
	col := harness.StartProcess(t, "pgjet-collector", append(args, "--heartbeat", "1s"), nil)
	stopsWith(t, col, "is a standby, which cannot write: give --heartbeat-dsn (spec.source.config.heartbeat.dsn) naming the primary", nil)

	col = harness.StartProcess(t, "pgjet-collector", append(args, "--heartbeat", "1s", "--heartbeat-dsn", primary.DSN("")), nil)
	// A slot on a standby waits for the primary to log its running
	// transactions, every 15 s while it writes (the heartbeats do).
	if !col.WaitForLog("msg=streaming", 2*time.Minute) {
		t.Fatal("the collector did not stream from the standby")
	}
	if !strings.Contains(col.Log(), "standby=true") {
		t.Error("the collector does not say it decodes from a standby")
	}
	e.router()
	e.mixed(1)
	e.verify(2 * time.Minute)
}
