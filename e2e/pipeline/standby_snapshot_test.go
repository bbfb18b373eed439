package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariant: snapshots work where the collector decodes from a standby
// (PostgreSQL 16+): the initial snapshot is read from the slot the standby
// exports, and a backfill reads its chunks on the standby with its
// watermarks written on the primary (--heartbeat-dsn), the standby applying
// commits late (recovery_min_apply_delay). Under inserts, updates and
// deletes of the rows being backfilled, on the primary, the output rebuilt
// (last event per key) is the table, and its changes are each delivered
// once, in order.
func TestSnapshotAndBackfillFromAStandby(t *testing.T) {
	primary := pgtest.Run(t, "hot_standby_feedback = on")
	// Commits applied late on the standby: chunks are read there at once,
	// not after it caught up with the primary where the watermarks go.
	standby, err := primary.StartStandby("pgjet_standby", "hot_standby_feedback = on", "recovery_min_apply_delay = '200ms'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Stop)
	e := newEnvWith(t, primary, harness.StartNATS(t, ""),
		`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;`, "public.t")
	var decodes bool
	if err := e.conn.QueryRow(context.Background(), `SELECT to_regproc('pg_catalog.pg_log_standby_snapshot') IS NOT NULL`).Scan(&decodes); err != nil {
		t.Fatal(err)
	}
	if !decodes {
		t.Skip("this PostgreSQL cannot decode on a standby (16+ can): PGJET_PG_VERSION=17 runs this test")
	}
	e.exec(`CREATE PUBLICATION pgjet_e2e FOR TABLE t`)
	sconn, err := pgx.Connect(context.Background(), standby.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(context.Background())
	waitUntil(t, "the standby has replayed the publication", func() bool {
		var n int
		return sconn.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication WHERE pubname = 'pgjet_e2e'`).Scan(&n) == nil && n == 1
	})
	args := []string{"--dsn", standby.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e", "--tables", "public.t",
		"--nats", e.nats.URL(), "--source", "e2e", "--heartbeat", "1s", "--heartbeat-dsn", primary.DSN(""), "--snapshot-chunk-rows", "100"}
	col := harness.StartProcess(t, "pgjet-collector", args, nil)
	if !col.WaitForLog("msg=streaming", 2*time.Minute) || !strings.Contains(col.Log(), "initial snapshot done") {
		t.Fatalf("the collector did not snapshot and stream from the standby:\n%s", col.Log())
	}
	e.router()

	// Writes on the primary while a backfill of the same rows runs.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wctx, stopWrites := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, primary.DSN(""))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.Background())
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for n := 0; wctx.Err() == nil; n++ {
				id := 1 + r.IntN(3200)
				var q string
				switch r.IntN(3) {
				case 0:
					q = fmt.Sprintf(`INSERT INTO t VALUES (%d, 'ins %d-%d') ON CONFLICT (id) DO UPDATE SET v = excluded.v`, id, w, n)
				case 1:
					q = fmt.Sprintf(`UPDATE t SET v = 'upd %d-%d' WHERE id = %d`, w, n, id)
				default:
					q = fmt.Sprintf(`DELETE FROM t WHERE id = %d`, id)
				}
				// Not cancelled midway: a statement cut off by its context
				// may still commit after the audit is read.
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	bf := harness.StartProcess(t, "pgjet-collector", []string{"backfill", "--nats", e.nats.URL(), "--source", "e2e", "--table", "public.t"}, nil)
	select {
	case <-bf.Done():
	case <-time.After(3 * time.Minute):
		t.Fatalf("pgjet-collector backfill did not end:\n%s\ncollector:\n%s", bf.Log(), tailLines(col.Log(), 20))
	}
	stopWrites()
	wg.Wait()
	if err := bf.Wait(); err != nil || !strings.Contains(bf.Log(), " done ") {
		t.Fatalf("pgjet-collector backfill: %v\n%s\ncollector:\n%s", err, bf.Log(), tailLines(col.Log(), 20))
	}
	t.Logf("%d writes during the backfill; pgjet-collector backfill printed:\n%s", writes.Load(), bf.Log())
	_, js := e.nats.Connect(t)
	checkRebuilt(ctx, t, e, js, "PGJET_EVENTS", "postgres.>")
}
