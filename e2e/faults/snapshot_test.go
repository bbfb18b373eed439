package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// itemsSchema is a table loaded with rows before the collector starts;
// the audit, installed after the load, records only what follows.
const itemsSchema = `CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL, at timestamptz NOT NULL DEFAULT now());`

// snapEnv is an env whose items table holds rows rows before anything
// runs.
func snapEnv(t *testing.T, rows int) *env {
	t.Helper()
	e := newEnv(t, envConfig{schema: itemsSchema + fmt.Sprintf(
		`INSERT INTO items (id, v, n) SELECT g, 'row ' || g || repeat(' x', g %% 7), g %% 1000 FROM generate_series(1, %d) g; ANALYZE items;`, rows)})
	e.tables = []string{"public.items"}
	if err := check.InstallAudit(context.Background(), e.conn, "public.items"); err != nil {
		t.Fatal(err)
	}
	return e
}

// itemWriters insert, update and delete rows of items (also the ones a
// snapshot reads) from workers connections until stopped.
type itemWriters struct {
	stop      chan struct{}
	wg        sync.WaitGroup
	committed atomic.Int64
	mu        sync.Mutex
	err       error
}

func startItemWriters(t *testing.T, e *env, workers, maxID int, pause time.Duration) *itemWriters {
	w := &itemWriters{stop: make(chan struct{})}
	rng := newRand(t, "writers")
	for i := range workers {
		conn := e.connect(context.Background(), "")
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				id := 1 + r.IntN(maxID)
				var sql string
				switch p := r.IntN(10); {
				case p < 3:
					sql = fmt.Sprintf(`INSERT INTO items (id, v, n) VALUES (%d, 'ins w%d-%d', %d) ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = items.n + 1`, id, i, n, n)
				case p < 7:
					sql = fmt.Sprintf(`UPDATE items SET v = 'upd w%d-%d', n = n + 1, at = now() WHERE id = %d`, i, n, id)
				case p < 9:
					sql = fmt.Sprintf(`DELETE FROM items WHERE id = %d`, id)
				default:
					// A transaction over a range: many rows of one chunk at once.
					sql = fmt.Sprintf(`UPDATE items SET n = n + 1 WHERE id BETWEEN %d AND %d`, id, id+50)
				}
				if _, err := conn.Exec(context.Background(), sql); err != nil {
					w.mu.Lock()
					if w.err == nil {
						w.err = err
					}
					w.mu.Unlock()
					return
				}
				w.committed.Add(1)
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *itemWriters) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *itemWriters) Stop(t *testing.T) {
	t.Helper()
	w.halt()
	t.Logf("writers: %d statements committed", w.committed.Load())
	if w.err != nil {
		t.Fatalf("writers: %v", w.err)
	}
}

// checkState drains the output stream: the changes must be every audited
// change exactly once in commit order (check.Check), and the rows rebuilt
// from reads and changes together (the last event per key) must be the
// table. snap, when set, is the initial snapshot's pg_current_snapshot():
// the changes of the transactions it sees are in its reads, not in the
// stream. It returns the reads.
func (e *env) checkState(scenario, snap string) []check.Event {
	e.t.Helper()
	if !e.settle(pick(4*time.Minute, 20*time.Minute)) {
		e.t.Fatalf("%s: the pipeline did not catch up", scenario)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pick(2*time.Minute, 15*time.Minute))
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	if snap != "" {
		seen, err := visibility(snap)
		if err != nil {
			e.t.Fatal(err)
		}
		var after []check.Change
		for _, c := range changes {
			if !seen(c.Xid) {
				after = append(after, c)
			}
		}
		e.t.Logf("%d of %d audited changes committed before the snapshot (in its reads), %d after", len(changes)-len(after), len(changes), len(after))
		changes = after
	}
	rows := e.queryInt(`SELECT count(*) FROM items`)
	_, js := e.nats.Connect(e.t)
	start := time.Now()
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", len(changes), 3*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	r := check.Check(changes, events)
	_, reads := check.SplitReads(events)
	e.t.Logf("SUMMARY %s: %s reads=%d table_rows=%d (drained in %s)", scenario, r.String(), len(reads), rows, time.Since(start).Round(100*time.Millisecond))
	if !r.OK() {
		e.t.Errorf("%s: changes: invariant violated: %s", scenario, r.String())
	}
	s, err := check.Rebuild(events)
	if err != nil {
		e.t.Fatal(err)
	}
	want, err := check.TableState(ctx, e.conn, "public.items", "id")
	if err != nil {
		e.t.Fatal(err)
	}
	if d := check.CompareState(want, s["public.items"], 10); len(d) > 0 {
		e.t.Errorf("%s: the rows rebuilt from the output (last event per key) are not the table:\n%s", scenario, strings.Join(d, "\n"))
	}
	if raw := e.rawCheck(); !raw.ok() {
		e.t.Errorf("%s: raw stream: %s", scenario, raw)
	}
	return reads
}

// Invariant: an initial snapshot taken while writers insert, update and
// delete rows of the very table it reads delivers, with the changes that
// follow it, the table: the rows rebuilt from the output (the last event
// per key) equal the table, and the changes are every committed change
// exactly once in commit order. 20,000 rows in make test, 1,000,000 in
// make test-faults.
func TestInitialSnapshotUnderWrites(t *testing.T) {
	t.Parallel()
	rows := pick(20_000, 1_000_000)
	e := snapEnv(t, rows)
	w := startItemWriters(t, e, 2, rows+rows/5, pick(2*time.Millisecond, 0))
	time.Sleep(300 * time.Millisecond) // writes before the slot exists, too
	col := e.startCollectorNoWait([]string{"--snapshot-chunk-rows", "2000"})
	e.col = col
	if !col.WaitForLog("msg=streaming", pick(3*time.Minute, 20*time.Minute)) {
		t.Fatalf("collector did not stream after its snapshot:\n%s", tail(col.Log(), 30))
	}
	if !strings.Contains(col.Log(), "initial snapshot done") {
		t.Fatalf("no initial snapshot:\n%s", tail(col.Log(), 30))
	}
	e.startRouter([]string{"--output-persist", "async"}) // the output need not survive a server crash here
	time.Sleep(pick(time.Second, 5*time.Second))         // changes after the snapshot
	w.Stop(t)
	m := snapshotXidsRE.FindStringSubmatch(col.Log())
	if m == nil {
		t.Fatalf("no snapshot_xids in the collector's log:\n%s", tail(col.Log(), 20))
	}
	reads := e.checkState("initial snapshot under writes", m[1])
	// Every read is the initial snapshot's, at one position before every
	// change, each row once, with the xid of the transaction that read it
	// (Debezium's snapshot txId): one the snapshot does not see, which
	// committed without writing anything.
	x := snapshotXidRE.FindStringSubmatch(col.Log())
	if x == nil {
		t.Fatalf("no xid in the collector's log:\n%s", tail(col.Log(), 20))
	}
	var xid8 int64
	fmt.Sscan(x[1], &xid8)
	seen, err := visibility(m[1])
	if err != nil {
		t.Fatal(err)
	}
	var status string
	if err := e.conn.QueryRow(context.Background(), `SELECT pg_xact_status($1::text::xid8)`, x[1]).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if xid8 == 0 || seen(xid8) || status != "committed" {
		t.Fatalf("the snapshot's transaction: xid %d (seen by its snapshot %s: %v), %s: want one the snapshot does not see, committed", xid8, m[1], seen(xid8), status)
	}
	read := map[string]bool{}
	for _, r := range reads {
		if read[string(r.Key)] {
			t.Fatalf("row %s read twice", r.Key)
		}
		read[string(r.Key)] = true
		if r.Xid != uint32(xid8) {
			t.Fatalf("read %s has xid %d, want the snapshot transaction's %d", r.Key, r.Xid, uint32(xid8))
		}
	}
	if len(reads) < rows/2 {
		t.Fatalf("%d reads of %d rows", len(reads), rows)
	}
	// Bounded by the chunks in hand, not by the table: the same bound for
	// 20,000 and 1,000,000 rows.
	peak := col.PeakRSSKiB() / 1024
	t.Logf("collector peak RSS %d MiB", peak)
	if peak > 200 {
		t.Errorf("collector peak RSS %d MiB while reading a table: want at most 200 MiB whatever its size", peak)
	}
}

// jobEntry is what the test reads of a job in the snapshot bucket.
type jobEntry struct {
	State   string `json:"state"`
	Resumed int    `json:"resumed"`
	Tables  []struct {
		Table   string   `json:"table"`
		State   string   `json:"state"`
		Rows    int64    `json:"rows"`
		Chunks  int64    `json:"chunks"`
		LastKey []string `json:"last_key"`
	} `json:"tables"`
}

// job reads job id of the env's source from the snapshot bucket.
func (e *env) job(js jetstream.JetStream, id string) (*jobEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "PGJET_SNAPSHOTS")
	if err != nil {
		return nil, err
	}
	entry, err := kv.Get(ctx, e.source+".job."+id)
	if err != nil {
		return nil, err
	}
	var j jobEntry
	return &j, json.Unmarshal(entry.Value(), &j)
}

var (
	requestedRE    = regexp.MustCompile(`backfill (\S+) requested`)
	snapshotXidsRE = regexp.MustCompile(`snapshot_xids=(\S+)`)
	snapshotXidRE  = regexp.MustCompile(`snapshot_xids=\S+ xid=(\d+)`)
)

// visibility returns whether a transaction (64-bit txid) is visible to the
// snapshot snap ("xmin:xmax:xip,...", pg_current_snapshot()).
func visibility(snap string) (func(xid int64) bool, error) {
	parts := strings.Split(snap, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("snapshot %q", snap)
	}
	var xmin, xmax int64
	if _, err := fmt.Sscan(parts[0], &xmin); err != nil {
		return nil, err
	}
	if _, err := fmt.Sscan(parts[1], &xmax); err != nil {
		return nil, err
	}
	xip := map[int64]bool{}
	for _, x := range strings.Split(parts[2], ",") {
		if x == "" {
			continue
		}
		var v int64
		if _, err := fmt.Sscan(x, &v); err != nil {
			return nil, err
		}
		xip[v] = true
	}
	return func(xid int64) bool { return xid < xmin || xid < xmax && !xip[xid] }, nil
}

// requestBackfill runs pgjet-collector backfill --detach for table and
// returns the job's id.
func (e *env) requestBackfill(table string, extra ...string) string {
	e.t.Helper()
	args := append([]string{"backfill", "--nats", e.colNATS, "--source", e.source, "--table", table, "--detach"}, extra...)
	p := harness.StartProcess(e.t, "pgjet-collector", args, nil)
	if err := waitExit(e.t, p, 30*time.Second, "backfill request"); err != nil {
		e.t.Fatalf("pgjet-collector backfill: %v\n%s", err, p.Log())
	}
	m := requestedRE.FindStringSubmatch(p.Log())
	if m == nil {
		e.t.Fatalf("no job id in:\n%s", p.Log())
	}
	return m[1]
}

// Invariant: a backfill of a table under concurrent inserts, updates and
// deletes of the rows it reads delivers the table: the rows rebuilt from
// the output equal it, and the changes are exactly once in commit order.
// Then the same with kill -9 of the collector half way: it resumes from its
// last stored chunk (no row at or below the key it recorded is read again)
// and ends with the same result.
func TestBackfillUnderWrites(t *testing.T) {
	t.Parallel()
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "kill -9 half way"}[kill]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rows := pick(30_000, 300_000)
			e := snapEnv(t, rows)
			e.colFlags = []string{"--snapshot-mode", "never", "--snapshot-chunk-rows", pick("300", "2000")}
			e.collector()
			e.startRouter([]string{"--output-persist", "async"})
			w := startItemWriters(t, e, 2, rows+rows/5, pick(time.Millisecond, 0))
			id := e.requestBackfill("public.items")
			_, js := e.nats.Connect(t)
			var lastKey []string
			if kill {
				if !eventually(2*time.Minute, func() bool {
					j, err := e.job(js, id)
					return err == nil && len(j.Tables) == 1 && j.Tables[0].Rows >= int64(rows*2/5)
				}) {
					t.Fatal("the backfill did not get half way")
				}
				e.col.Kill()
				j, err := e.job(js, id)
				if err != nil {
					t.Fatal(err)
				}
				lastKey = j.Tables[0].LastKey
				t.Logf("collector killed with %d rows of %d stored (%d chunks), last key %v", j.Tables[0].Rows, rows, j.Tables[0].Chunks, lastKey)
				time.Sleep(500 * time.Millisecond)
				e.collector()
			}
			var j *jobEntry
			if !eventually(pick(3*time.Minute, 15*time.Minute), func() bool {
				var err error
				j, err = e.job(js, id)
				return err == nil && (j.State == "done" || j.State == "failed" || j.State == "cancelled")
			}) {
				t.Fatalf("backfill %s did not end:\n%s", id, tail(e.col.Log(), 20))
			}
			if j.State != "done" {
				t.Fatalf("backfill %s: %s:\n%s", id, j.State, tail(e.col.Log(), 20))
			}
			if kill && (j.Resumed != 1 || !strings.Contains(e.col.Log(), "resuming backfill from its last stored chunk")) {
				t.Fatalf("backfill resumed %d times; collector log:\n%s", j.Resumed, tail(e.col.Log(), 20))
			}
			w.Stop(t)
			reads := e.checkState("backfill under writes, "+name, "")
			if !kill {
				seen := map[string]bool{}
				for _, r := range reads {
					if seen[string(r.Key)] {
						t.Fatalf("row %s read twice by one backfill", r.Key)
					}
					seen[string(r.Key)] = true
				}
			}
			if lastKey != nil {
				// Resumed from its last chunk: a row at or below the key the
				// job had recorded when the collector died is read once.
				var below int
				seen := map[string]int{}
				var at int64
				fmt.Sscan(lastKey[0], &at)
				for _, r := range reads {
					var k struct{ ID int64 }
					if err := json.Unmarshal(r.Key, &k); err != nil {
						t.Fatal(err)
					}
					if k.ID <= at {
						below++
						if seen[string(r.Key)]++; seen[string(r.Key)] > 1 {
							t.Fatalf("row %s, at or below the recorded key %d, read again after the restart", r.Key, at)
						}
					}
				}
				t.Logf("%d reads, %d of them at or below key %d", len(reads), below, at)
			}
		})
	}
}

// Invariant: an initial snapshot interrupted by kill -9 (after its n-th
// stored chunk) goes on when the collector starts again, as a backfill from
// each table's last stored chunk, while writers keep changing the table:
// the rows rebuilt from the output are the table, the changes the
// interrupted snapshot does not see are exactly once in commit order, and
// no row at or below the key the job recorded is read again.
func TestInitialSnapshotKilled(t *testing.T) {
	t.Parallel()
	rows := pick(60_000, 1_000_000)
	e := snapEnv(t, rows)
	w := startItemWriters(t, e, 2, rows+rows/5, pick(2*time.Millisecond, 0))
	e.colFlags = []string{"--snapshot-chunk-rows", "1000"}
	after := 1 + newRand(t, "test").IntN(pick(20, 300))
	first := e.startCollectorNoWait(nil, "PGJET_CRASHPOINT=snapshot-chunk-stored", fmt.Sprintf("PGJET_CRASHPOINT_AFTER=%d", after))
	if err := waitExit(t, first, pick(3*time.Minute, 20*time.Minute), "crash point snapshot-chunk-stored"); err == nil || !strings.Contains(first.Log(), "crashpoint snapshot-chunk-stored") {
		t.Fatalf("collector did not die at its %d-th stored chunk (%v):\n%s", after, err, tail(first.Log(), 20))
	}
	m := snapshotXidsRE.FindStringSubmatch(first.Log())
	if m == nil {
		t.Fatalf("no snapshot_xids in the collector's log:\n%s", tail(first.Log(), 20))
	}
	_, js := e.nats.Connect(t)
	j, err := e.job(js, "initial")
	if err != nil {
		t.Fatal(err)
	}
	lastKey := j.Tables[0].LastKey
	t.Logf("killed after chunk %d: job %s, %d rows recorded, last key %v", after, j.State, j.Tables[0].Rows, lastKey)
	e.collector()
	e.startRouter([]string{"--output-persist", "async"}) // the output need not survive a server crash here
	if !eventually(pick(3*time.Minute, 20*time.Minute), func() bool {
		j, err = e.job(js, "initial")
		return err == nil && j.State == "done"
	}) {
		t.Fatalf("the initial snapshot did not go on to its end (%v):\n%s", j, tail(e.col.Log(), 20))
	}
	if !strings.Contains(e.col.Log(), "the initial snapshot was interrupted") {
		t.Fatalf("the collector did not say it goes on with the interrupted snapshot:\n%s", tail(e.col.Log(), 20))
	}
	w.Stop(t)
	reads := e.checkState("initial snapshot killed and resumed", m[1])
	if lastKey != nil {
		var at int64
		fmt.Sscan(lastKey[0], &at)
		seen := map[string]bool{}
		for _, r := range reads {
			var k struct{ ID int64 }
			if err := json.Unmarshal(r.Key, &k); err != nil {
				t.Fatal(err)
			}
			if k.ID <= at {
				if seen[string(r.Key)] {
					t.Fatalf("row %s, at or below the recorded key %d, read again after the restart", r.Key, at)
				}
				seen[string(r.Key)] = true
			}
		}
	}
}
