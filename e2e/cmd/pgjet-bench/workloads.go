package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// workload writes a backlog of changes into one table.
type workload struct {
	name  string // also the table, publication and source name
	title string
	// prepare creates the table and anything that must exist before the
	// slots (rows to update later): not part of the backlog.
	prepare func(ctx context.Context, b *bench) error
	// write writes the backlog and returns the number of row changes.
	write func(ctx context.Context, b *bench) (int64, error)
}

// sizes of the backlogs; quick mode shrinks them to a smoke test.
type sizes struct {
	oltpTx     int // single-row insert transactions
	bulkTxs    int // large transactions ...
	bulkRows   int // ... of this many rows each
	wideRows   int // single-row transactions of ~5 KB rows
	toastRows  int // rows with an 8 KB TOASTed column ...
	toastTx    int // ... updated by this many single-row transactions
	clients    int // pgbench clients
	e2eRate    int // commits per second in the latency run
	e2eSeconds int
	routerCap  time.Duration // longest a router throughput run may take
	runs       int           // rounds of ceiling/collector runs (and async router runs)
	// snapshotRows: the table of the snapshot benchmark.
	snapshotRows int
}

var fullSizes = sizes{
	oltpTx: 200000, bulkTxs: 10, bulkRows: 100000, wideRows: 50000, toastRows: 10000, toastTx: 100000,
	clients: 8, e2eRate: 2000, e2eSeconds: 60, routerCap: 90 * time.Second, runs: 3, snapshotRows: 1000000,
}

var quickSizes = sizes{
	oltpTx: 20000, bulkTxs: 1, bulkRows: 100000, wideRows: 4000, toastRows: 2000, toastTx: 10000,
	clients: 8, e2eRate: 2000, e2eSeconds: 8, routerCap: 10 * time.Second, runs: 1, snapshotRows: 100000,
}

// The OLTP and bulk rows: ~150 bytes of column data (int, md5 text, small
// jsonb), the shape of ../shared/bench's reference measurements.
const benchTableSQL = `DROP TABLE IF EXISTS %[1]s;
CREATE TABLE %[1]s (
  id      bigserial PRIMARY KEY,
  k       int,
  v       text,
  payload jsonb,
  ts      timestamptz DEFAULT now()
)`

func oltpScript(table string) string {
	return fmt.Sprintf(`\set k random(1, 1000000)
INSERT INTO %s (k, v, payload) VALUES (:k::int, md5(:k::text), jsonb_build_object('k', :k::int, 'tag', 'order-' || :k::text, 'items', jsonb_build_array(1, 2, 3), 'note', repeat('x', 40)));
`, table)
}

func workloads(s sizes) []workload {
	return []workload{
		{
			name:  "oltp",
			title: fmt.Sprintf("(a) OLTP: %d single-row INSERT transactions, %d clients", s.oltpTx/s.clients*s.clients, s.clients),
			prepare: func(ctx context.Context, b *bench) error {
				return b.exec(ctx, fmt.Sprintf(benchTableSQL, "oltp"))
			},
			write: func(ctx context.Context, b *bench) (int64, error) {
				return b.pgbench(ctx, "oltp", oltpScript("oltp"), "-t", strconv.Itoa(s.oltpTx/s.clients))
			},
		},
		{
			name:  "bulk",
			title: fmt.Sprintf("(b) bulk: %d transactions of %d rows (INSERT ... SELECT)", s.bulkTxs, s.bulkRows),
			prepare: func(ctx context.Context, b *bench) error {
				return b.exec(ctx, fmt.Sprintf(benchTableSQL, "bulk"))
			},
			write: func(ctx context.Context, b *bench) (int64, error) {
				for i := 0; i < s.bulkTxs; i++ {
					err := b.exec(ctx, fmt.Sprintf(`INSERT INTO bulk (k, v, payload)
SELECT g %% 1000000, md5(g::text), jsonb_build_object('k', g, 'tag', 'order-' || g, 'items', jsonb_build_array(1, 2, 3), 'note', repeat('x', 40))
FROM generate_series(1, %d) g`, s.bulkRows))
					if err != nil {
						return 0, err
					}
				}
				return int64(s.bulkTxs * s.bulkRows), nil
			},
		},
		{
			name:  "wide",
			title: fmt.Sprintf("(c) wide rows: %d single-row INSERT transactions, jsonb of ~2.9 KB + text of ~2 KB (TOASTed out of line)", s.wideRows/s.clients*s.clients),
			prepare: func(ctx context.Context, b *bench) error {
				return b.exec(ctx, `DROP TABLE IF EXISTS wide;
CREATE TABLE wide (id bigserial PRIMARY KEY, k bigint, doc jsonb, body text, ts timestamptz DEFAULT now())`)
			},
			write: func(ctx context.Context, b *bench) (int64, error) {
				// md5 hex barely compresses, so both values stay a few KB and
				// go to the TOAST table: decoding has to reassemble them.
				script := `\set k random(1, 1000000000)
INSERT INTO wide (k, doc, body) SELECT :k::bigint, jsonb_object_agg('field_' || i, md5((:k::bigint + i)::text)), string_agg(md5((:k::bigint - i)::text), ' ') FROM generate_series(1, 60) i;
`
				return b.pgbench(ctx, "wide", script, "-t", strconv.Itoa(s.wideRows/s.clients))
			},
		},
		{
			name:  "toast",
			title: fmt.Sprintf("(d) TOAST updates: %d single-row UPDATEs of a counter on %d rows whose 8 KB column stays unchanged", s.toastTx/s.clients*s.clients, s.toastRows),
			prepare: func(ctx context.Context, b *bench) error {
				// STORAGE EXTERNAL: the big value always lives in the TOAST
				// table, uncompressed; an update that does not touch it
				// leaves it out of the WAL and pgoutput sends 'u' for it.
				err := b.exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS toast;
CREATE TABLE toast (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0, note text, big text);
ALTER TABLE toast ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO toast SELECT g, 0, 'row ' || g, (SELECT string_agg(md5((g * 1000 + i)::text), '') FROM generate_series(1, 250) i) FROM generate_series(1, %d) g`, s.toastRows))
				if err != nil {
					return err
				}
				// Not in the same string: VACUUM cannot run in the implicit
				// transaction of a multi-statement query.
				return b.exec(ctx, "VACUUM ANALYZE toast")
			},
			write: func(ctx context.Context, b *bench) (int64, error) {
				script := fmt.Sprintf(`\set id random(1, %d)
UPDATE toast SET counter = counter + 1 WHERE id = :id;
`, s.toastRows)
				return b.pgbench(ctx, "toast", script, "-t", strconv.Itoa(s.toastTx/s.clients))
			},
		},
	}
}

var processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

// pgbench runs a custom script with the configured clients and returns the
// number of transactions it committed.
func (b *bench) pgbench(ctx context.Context, name, script string, args ...string) (int64, error) {
	path := filepath.Join(b.dir, name+".pgbench")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return 0, err
	}
	all := append([]string{"-n", "-M", "prepared", "-c", strconv.Itoa(b.sizes.clients), "-j", "2", "-f", path}, args...)
	all = append(all, b.dsn)
	cmd := exec.CommandContext(ctx, "pgbench", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench %s: %w\n%s", name, err, out)
	}
	b.lastPgbench = string(out)
	m := processedRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench %s: no transaction count in its output:\n%s", name, out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}
