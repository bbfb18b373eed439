package faults

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/shared/wire"
)

// largeTxSizes are the transaction sizes measured, in MiB of row data:
// PGJET_LARGE_TX_MB (comma-separated) or the mode's default.
func largeTxSizes(t *testing.T) []int {
	spec := os.Getenv("PGJET_LARGE_TX_MB")
	if spec == "" {
		return pick([]int{16, 64}, []int{128, 512, 2048})
	}
	var out []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("PGJET_LARGE_TX_MB=%q: want sizes in MiB, e.g. 128,512,2048", spec)
		}
		out = append(out, n)
	}
	return out
}

// Invariant: a large transaction costs the collector bounded memory,
// whatever its size, and reaches consumers whole: for each size, one
// transaction of 1 KiB rows is committed, and the test measures the time
// from its commit to its first raw record and to its first output event,
// and to all of it stored; the collector's peak RSS stays under the bound,
// and the output holds exactly one event per row. One line per size is
// logged (LARGE TX), the figures docs/postgres.md quotes.
func TestLargeTransactionSeries(t *testing.T) {
	for _, mb := range largeTxSizes(t) {
		t.Run(fmt.Sprintf("%dMiB", mb), func(t *testing.T) {
			rows := mb << 10 // 1 KiB each
			e := newEnv(t, envConfig{schema: `CREATE TABLE big (id int PRIMARY KEY, v text);
				ALTER TABLE big ALTER COLUMN v SET STORAGE EXTERNAL`})
			// No audit trigger: it would double the transaction.
			e.exec(`CREATE PUBLICATION pgjet_faults FOR TABLE big`)
			e.collector()
			e.startRouter([]string{"--output-persist", "async"})
			ctx := context.Background()
			_, js := e.nats.Connect(t)

			began := time.Now()
			// 1 KiB of md5 text per row: little for TOAST to compress.
			e.exec(`INSERT INTO big SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, $1) g`, rows)
			committed := time.Now()
			var endText string
			if err := e.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endText); err != nil {
				t.Fatal(err)
			}
			end, err := wire.ParseLSN(endText)
			if err != nil {
				t.Fatal(err)
			}
			first := func(stream string) time.Duration {
				t.Helper()
				var d time.Duration
				if !eventually(30*time.Minute, func() bool {
					s, err := js.Stream(ctx, stream)
					if err == nil && s.CachedInfo().State.Msgs > 0 {
						d = time.Since(committed)
						return true
					}
					return false
				}) {
					t.Fatalf("nothing in %s 30 minutes after the commit", stream)
				}
				return d
			}
			firstRaw := first("PGJET_RAW")
			firstEvent := first("PGJET_EVENTS")
			if !eventually(30*time.Minute, func() bool {
				var c string
				if e.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'pgjet_faults'`).Scan(&c) != nil {
					return false
				}
				l, err := wire.ParseLSN(c)
				return err == nil && l >= end
			}) {
				t.Fatal("the transaction was not stored whole within 30 minutes")
			}
			stored := time.Since(committed)
			var events uint64
			if !eventually(30*time.Minute, func() bool {
				s, err := js.Stream(ctx, "PGJET_EVENTS")
				if err == nil {
					events = s.CachedInfo().State.Msgs
				}
				return events >= uint64(rows)
			}) {
				t.Fatalf("%d events of %d rows in the output", events, rows)
			}
			all := time.Since(committed)
			spill := "n/a"
			var spilled, spillTxns int64
			if err := e.conn.QueryRow(ctx, `SELECT spill_bytes, spill_txns FROM pg_stat_replication_slots WHERE slot_name = 'pgjet_faults'`).Scan(&spilled, &spillTxns); err == nil {
				spill = fmt.Sprintf("%d MiB in %d transactions", spilled>>20, spillTxns)
			}
			col := e.col.PeakRSSKiB() >> 10
			t.Logf("LARGE TX %d MiB (%d rows): insert %s; from commit: first raw record %s, first event %s, stored whole %s, all %d events %s; collector peak RSS %d MiB, router %d MiB; Postgres spilled %s",
				mb, rows, committed.Sub(began).Round(100*time.Millisecond), firstRaw.Round(10*time.Millisecond), firstEvent.Round(10*time.Millisecond),
				stored.Round(100*time.Millisecond), events, all.Round(100*time.Millisecond), col, e.rt.PeakRSSKiB()>>10, spill)
			if col >= maxCollectorRSSMiB {
				t.Errorf("collector peak RSS %d MiB on a %d MiB transaction, want < %d MiB", col, mb, maxCollectorRSSMiB)
			}
			if events != uint64(rows) {
				t.Errorf("output holds %d events, want exactly %d", events, rows)
			}
		})
	}
}
