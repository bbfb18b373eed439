package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/check"
)

// maxCollectorRSSMiB bounds the collector's peak resident memory whatever
// the size of a transaction or a value.
const maxCollectorRSSMiB = 200

// Invariant: memory stays bounded on a 1,000,000-row transaction, a 50 MB
// text value and a transaction touching 10,000 tables (short mode: 200,000
// rows, 5 MB, 1,000 tables), and every change still arrives exactly once.
// The collector's peak RSS stays under 200 MB; both peaks are logged.
//
// The output streams are created with async persistence: these cases are
// about memory, and an fsync per event would make them take many minutes.
func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	rows := pick(200_000, 1_000_000)
	valueMB := pick(5, 50)
	tables := pick(1_000, 10_000)
	for _, tc := range []struct {
		name   string
		schema string
		tables []string // published and audited; none: setup makes them
		conf   []string
		setup  func(e *env)
		load   func(e *env)
	}{
		{
			name:   fmt.Sprintf("%d-row transaction", rows),
			schema: `CREATE TABLE big (id int PRIMARY KEY, v text, n numeric, at timestamptz DEFAULT now())`,
			tables: []string{"public.big"},
			load: func(e *env) {
				e.exec(`INSERT INTO big SELECT g, 'row ' || g || ' ' || md5(g::text), g * 1.5 FROM generate_series(1, $1) g`, rows)
			},
		},
		{
			name:   fmt.Sprintf("%d MB text value", valueMB),
			schema: `CREATE TABLE blob (id int PRIMARY KEY, v text)`,
			tables: []string{"public.blob"},
			load: func(e *env) {
				// md5 chunks: little for TOAST to compress, so the WAL and
				// the decoded value are both large.
				e.exec(`INSERT INTO blob SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, $1::int * 1024 * 1024 / 32) g`, valueMB)
				e.exec(`INSERT INTO blob VALUES (2, 'small, after the large one')`)
			},
		},
		{
			name:  fmt.Sprintf("%d tables in one transaction", tables),
			conf:  []string{"max_locks_per_transaction = 2048"},
			setup: func(e *env) { e.createWideTables(tables) },
			load: func(e *env) {
				e.exec(`DO $$ BEGIN FOR i IN 1..` + fmt.Sprint(tables) + ` LOOP
					EXECUTE format('INSERT INTO wide.%I VALUES (1, %L)', 't' || i, 'row of table ' || i);
				END LOOP; END $$`)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envConfig{schema: tc.schema, tables: tc.tables, pgConf: tc.conf})
			if tc.setup != nil {
				tc.setup(e)
			}
			e.collector()
			e.startRouter([]string{"--output-persist", "async"})
			start := time.Now()
			tc.load(e)
			t.Logf("committed in %s", time.Since(start).Round(100*time.Millisecond))
			e.verify(tc.name)
			col, rt := e.col.PeakRSSKiB()>>10, e.rt.PeakRSSKiB()>>10
			t.Logf("PEAK RSS %s: collector %d MiB, router %d MiB (%s end to end)", tc.name, col, rt, time.Since(start).Round(time.Second))
			if col >= maxCollectorRSSMiB {
				t.Errorf("%s: collector peak RSS %d MiB, want < %d MiB", tc.name, col, maxCollectorRSSMiB)
			}
		})
	}
}

// createWideTables creates n tables wide.t1 ... wide.tn with audit triggers
// and a publication for the schema.
func (e *env) createWideTables(n int) {
	e.t.Helper()
	ctx := context.Background()
	if err := check.InstallAudit(ctx, e.conn); err != nil {
		e.t.Fatal(err)
	}
	e.exec(`CREATE SCHEMA wide`)
	// In batches: each batch is one transaction and takes a lock per table.
	for lo := 1; lo <= n; lo += 1000 {
		hi := min(lo+999, n)
		e.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
			EXECUTE format('CREATE TABLE wide.%%I (id int PRIMARY KEY, v text)', 't' || i);
			EXECUTE format('CREATE TRIGGER pgjet_audit_row AFTER INSERT OR UPDATE OR DELETE ON wide.%%I
				FOR EACH ROW EXECUTE FUNCTION public.pgjet_audit_row()', 't' || i);
		END LOOP; END $$`, lo, hi))
	}
	e.exec(`CREATE PUBLICATION ` + e.publication + ` FOR TABLES IN SCHEMA wide`)
}
