package session

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/backfill"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// snapEnv is a collector session running in-process against a real
// Postgres and JetStream, with the table t(id, v) published.
type snapEnv struct {
	pg   *pgtest.Cluster
	conn *pgx.Conn
	js   jetstream.JetStream
	url  string
	stop func()
}

func newSnapEnv(t *testing.T, setup string) *snapEnv {
	t.Helper()
	pg := pgtest.Run(t)
	ctx := context.Background()
	if err := pg.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t)
	srv, _, js := natstest.Start(t)
	return &snapEnv{pg: pg, conn: conn, js: js, url: srv.ClientURL()}
}

// start runs a session with snapshot settings sc; tables are published.
// mods change the rest of its configuration.
func (e *snapEnv) start(t *testing.T, tables []string, sc SnapshotConfig, mods ...func(*Config)) {
	t.Helper()
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg := Config{
		DSN: e.pg.DSN(""), Slot: "snap", Publication: "snap", Tables: tables, Source: "app",
		NATS: natsconn.Config{URL: e.url}, RawStream: wire.DefaultRawStream, RawMaxAge: time.Hour, RawDupes: time.Minute,
		RawReplicas: 1, AckTimeout: 10 * time.Second, MaxQueue: 8 << 20, MaxMessage: 1 << 20,
		Snapshot: sc, Log: log,
	}
	for _, m := range mods {
		m(&cfg)
	}
	go func() { done <- Run(runCtx, cfg) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				// Seen once under heavy load and not since: the goroutines
				// say where it hangs when it happens again.
				var stacks strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("Run did not stop within 30 s of cancel; goroutines:\n%s", stacks.String())
			}
		})
	}
	e.stop = stop
	t.Cleanup(stop)
}

// raw returns every raw record of the source, decoded, in stream order.
func (e *snapEnv) raw(t *testing.T) []*wire.Message {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, wire.DefaultRawStream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	var out []*wire.Message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("raw record %d: %v", seq, err)
		}
		var msg wire.Message
		if err := wire.Unmarshal(m.Data, &msg); err != nil {
			t.Fatalf("raw record %d: %v", seq, err)
		}
		out = append(out, &msg)
	}
	return out
}

// settledRaw is raw once the stream stops growing: publishes a stopped
// session made may still land after Run returns (the next session, taking
// over the subject, is guarded against them by their expected sequence).
func (e *snapEnv) settledRaw(t *testing.T) []*wire.Message {
	t.Helper()
	msgs := e.raw(t)
	waitUntil(t, "the raw stream to stop growing", func() bool {
		time.Sleep(300 * time.Millisecond) // the interval the stream must stay unchanged
		again := e.raw(t)
		same := len(again) == len(msgs)
		msgs = again
		return same
	})
	return msgs
}

// job waits until job id of source app has ended, and returns it.
func (e *snapEnv) job(t *testing.T, id string) *snapshot.Job {
	t.Helper()
	store, err := snapshot.OpenStore(context.Background(), e.js, snapshot.DefaultBucket, "app", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	var j *snapshot.Job
	waitUntil(t, "job "+id+" to end", func() bool {
		j, _, err = store.Get(context.Background(), id)
		return err == nil && j.Final()
	})
	if j.State != snapshot.StateDone {
		t.Fatalf("job %s: %s (%s)", id, j.State, j.Error)
	}
	return j
}

// state rebuilds a table's rows from the raw stream, as a consumer keeping
// the last event per key does: reads, inserts and updates set the row,
// deletes remove it. Rows are "id|v" text, keyed by id.
func state(msgs []*wire.Message, table string) map[string]string {
	rows := map[string]string{}
	for _, m := range msgs {
		for _, tx := range m.Txs {
			for _, c := range tx.Changes {
				switch c.Op {
				case wire.OpInsert, wire.OpUpdate, wire.OpDelete, wire.OpRead:
				default:
					continue
				}
				if m.Relations[c.Rel].Table != table {
					continue
				}
				if c.Op == wire.OpDelete || c.Op == wire.OpUpdate && c.Old != nil {
					delete(rows, string(c.Old[0].Data))
				}
				if c.Op != wire.OpDelete {
					rows[string(c.New[0].Data)] = string(c.New[0].Data) + "|" + string(c.New[1].Data)
				}
			}
		}
	}
	return rows
}

// tableState reads the table's rows as state renders them.
func (e *snapEnv) tableState(t *testing.T, table string) map[string]string {
	t.Helper()
	rows, err := e.conn.Query(context.Background(), "SELECT id::text, v FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = id + "|" + v
	}
	return out
}

func diffStates(want, got map[string]string) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, fmt.Sprintf("key %s: table %q, stream %q", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("key %s: not in the table, stream %q", k, v))
		}
	}
	sort.Strings(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "\n")
}

// The initial snapshot: every row of every published table, read from the
// slot's exported snapshot, lands in the raw stream as one transaction of
// reads at the consistent point - 1, before any change the slot streams,
// with consecutive indexes and Debezium's first and last marks; a change
// written meanwhile follows it, and the table is what the stream rebuilds.
func TestInitialSnapshot(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2500) g;
		CREATE TABLE u (id int PRIMARY KEY, v text);
		CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w VALUES (1, 'one');`)
	e.start(t, []string{"public.t", "public.u", "public.w"}, SnapshotConfig{Mode: snapshot.ModeInitial, ChunkRows: 300, Parallel: 2})
	e.job(t, snapshot.InitialID)
	ctx := context.Background()
	if _, err := e.conn.Exec(ctx, `UPDATE t SET v = 'new' WHERE id = 7; INSERT INTO w VALUES (2, 'two'); DELETE FROM t WHERE id = 8`); err != nil {
		t.Fatal(err)
	}
	var msgs []*wire.Message
	waitUntil(t, "the changes after the snapshot", func() bool {
		msgs = e.raw(t)
		return len(state(msgs, "w")) == 2 && len(state(msgs, "t")) == 2499
	})
	var reads, firsts, lasts, tableFirsts, tableLasts int
	var pos uint64
	changesSeen, final := false, false
	next := uint64(0)
	for _, m := range msgs {
		for _, tx := range m.Txs {
			if tx.Snapshot == nil {
				changesSeen = true
				if tx.CommitLSN <= pos {
					t.Fatalf("change at %X not after the snapshot's position %X", tx.CommitLSN, pos)
				}
				continue
			}
			if changesSeen || final {
				t.Fatal("a read after a change or after the snapshot's final fragment")
			}
			if pos == 0 {
				pos = tx.CommitLSN
			}
			if tx.CommitLSN != pos || tx.CommitLSN%8 != 7 || tx.Snapshot.Kind != wire.SnapshotInitial {
				t.Fatalf("read fragment at %X kind %v, want %X, initial", tx.CommitLSN, tx.Snapshot.Kind, pos)
			}
			if tx.FirstChange != next {
				t.Fatalf("fragment %d starts at index %d, want %d", tx.Fragment, tx.FirstChange, next)
			}
			next += uint64(len(tx.Changes))
			reads += len(tx.Changes)
			final = tx.Final
			mk := tx.Snapshot.Marks
			for _, b := range []struct {
				bit uint8
				n   *int
			}{{wire.SnapshotFirst, &firsts}, {wire.SnapshotLast, &lasts}, {wire.SnapshotFirstInTable, &tableFirsts}, {wire.SnapshotLastInTable, &tableLasts}} {
				if mk&b.bit != 0 {
					*b.n++
				}
			}
		}
	}
	if reads != 2501 || !final || firsts != 1 || lasts != 1 || tableFirsts != 2 || tableLasts != 2 {
		t.Fatalf("reads %d final %v marks: first %d last %d first in table %d last in table %d; want 2501, true, 1 1 2 2",
			reads, final, firsts, lasts, tableFirsts, tableLasts)
	}
	for _, table := range []string{"t", "w"} {
		if d := diffStates(e.tableState(t, table), state(msgs, table)); d != "" {
			t.Fatalf("%s rebuilt from the stream differs from the table:\n%s", table, d)
		}
	}
}

// A backfill under concurrent inserts, updates and deletes of the rows it
// reads: what the stream rebuilds is the table, whatever the interleaving.
func TestBackfillUnderWrites(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 4000) g;`)
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever, ChunkRows: 100})
	waitUntil(t, "streaming", func() bool {
		var active bool
		_ = e.conn.QueryRow(context.Background(), `SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 'snap'`).Scan(&active)
		return active
	})
	ctx, stopWrites := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(context.Background(), e.pg.DSN(""))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.Background())
			r := rand.New(rand.NewPCG(uint64(w), 7))
			// Paced: unpaced writers outran a collector slowed by the race
			// detector, and every chunk's watermarks waited behind a growing
			// backlog (a 4,000-row backfill took over a minute).
			pace := time.NewTicker(2 * time.Millisecond)
			defer pace.Stop()
			for i := 0; ctx.Err() == nil; i++ {
				<-pace.C
				id := r.IntN(5000) + 1
				var sql string
				switch r.IntN(3) {
				case 0:
					sql = fmt.Sprintf("INSERT INTO t VALUES (%d, 'i%d-%d') ON CONFLICT (id) DO UPDATE SET v = excluded.v", id, w, i)
				case 1:
					sql = fmt.Sprintf("UPDATE t SET v = 'u%d-%d' WHERE id = %d", w, i, id)
				default:
					sql = fmt.Sprintf("DELETE FROM t WHERE id = %d", id)
				}
				if _, err := conn.Exec(context.Background(), sql); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	store, err := snapshot.OpenStore(context.Background(), e.js, snapshot.DefaultBucket, "app", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	j, err := backfill.Request(context.Background(), store, []string{"public.t"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	done := e.job(t, j.ID)
	stopWrites()
	wg.Wait()
	// Past every write: a marker row's insert.
	if _, err := e.conn.Exec(context.Background(), `INSERT INTO t VALUES (100000, 'end')`); err != nil {
		t.Fatal(err)
	}
	var msgs []*wire.Message
	waitUntil(t, "the last write in the stream", func() bool {
		msgs = e.raw(t)
		_, ok := state(msgs, "t")["100000"]
		return ok
	})
	if d := diffStates(e.tableState(t, "t"), state(msgs, "t")); d != "" {
		t.Fatalf("table rebuilt from the stream differs from the table:\n%s", d)
	}
	var reads, chunks int
	for _, m := range msgs {
		for _, tx := range m.Txs {
			if tx.Snapshot != nil {
				chunks++
				reads += len(tx.Changes)
				if tx.CommitLSN%8 != 1 || tx.Snapshot.Kind != wire.SnapshotIncremental || tx.Snapshot.ID != j.ID {
					t.Fatalf("chunk at %X: %+v", tx.CommitLSN, tx.Snapshot)
				}
			}
		}
	}
	t.Logf("backfill: %d reads in %d chunk fragments, %d rows recorded", reads, chunks, done.Tables[0].Rows)
	if reads == 0 {
		t.Fatal("no reads in the raw stream")
	}
}

// store opens the snapshot bucket of source app.
func (e *snapEnv) store(t *testing.T) *snapshot.Store {
	t.Helper()
	s, err := snapshot.OpenStore(context.Background(), e.js, snapshot.DefaultBucket, "app", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ended waits until job id has ended, whatever its state.
func (e *snapEnv) ended(t *testing.T, id string) *snapshot.Job {
	t.Helper()
	store := e.store(t)
	var j *snapshot.Job
	waitUntil(t, "job "+id+" to end", func() bool {
		var err error
		j, _, err = store.Get(context.Background(), id)
		return err == nil && j.Final()
	})
	return j
}

func (e *snapEnv) streaming(t *testing.T) {
	t.Helper()
	waitUntil(t, "streaming", func() bool {
		var active bool
		_ = e.conn.QueryRow(context.Background(), `SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 'snap'`).Scan(&active)
		return active
	})
}

// A partitioned table published through its root is read through the root
// (its rows of every partition, under the root's name), by the initial
// snapshot and by a backfill; a table without a key is read by the initial
// snapshot and refused by a backfill, by name, while the other tables of
// the job are backfilled; a table added to the publication is backfilled by
// itself with auto backfill on.
func TestSnapshotTablesOfEveryKind(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE m (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
		CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
		CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
		INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g FROM generate_series(1, 300) g;
		CREATE TABLE nokey (v text); INSERT INTO nokey SELECT 'n' || g FROM generate_series(1, 50) g;
		CREATE TABLE later (id int PRIMARY KEY, v text); INSERT INTO later SELECT g, 'l' || g FROM generate_series(1, 40) g;
		CREATE PUBLICATION snap FOR TABLE m, nokey WITH (publish_via_partition_root = true);`)
	e.start(t, nil, SnapshotConfig{Mode: snapshot.ModeInitial, ChunkRows: 64, Auto: true, AutoEvery: 200 * time.Millisecond})
	e.job(t, snapshot.InitialID)
	e.streaming(t)
	count := func(table string, kind wire.SnapshotKind) int {
		n := 0
		for _, m := range e.raw(t) {
			for _, tx := range m.Txs {
				if tx.Snapshot == nil || tx.Snapshot.Kind != kind {
					continue
				}
				for _, c := range tx.Changes {
					if m.Relations[c.Rel].Table == table {
						n++
					}
				}
			}
		}
		return n
	}
	if n, k := count("m", wire.SnapshotInitial), count("nokey", wire.SnapshotInitial); n != 300 || k != 50 {
		t.Fatalf("initial snapshot: %d rows of m through its root, %d of nokey; want 300, 50", n, k)
	}
	if n := count("m_eu", wire.SnapshotInitial) + count("m_us", wire.SnapshotInitial); n != 0 {
		t.Fatalf("%d rows read under a partition's name", n)
	}

	store := e.store(t)
	ctx := context.Background()
	j, err := backfill.Request(ctx, store, []string{"public.nokey", "public.m", "public.absent"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	j = e.ended(t, j.ID)
	if j.State != snapshot.StateFailed || !strings.Contains(j.Table("public.nokey").Error, "public.nokey has no primary key") ||
		!strings.Contains(j.Table("public.absent").Error, "not in publication snap") || j.Table("public.m").State != snapshot.StateDone {
		t.Fatalf("backfill of a keyless, a missing and a partitioned table: %s %q; tables %+v", j.State, j.Error, j.Tables)
	}
	if n := count("m", wire.SnapshotIncremental); n != 300 {
		t.Fatalf("backfill of m: %d rows, want 300", n)
	}

	if _, err := e.conn.Exec(ctx, `ALTER PUBLICATION snap ADD TABLE later`); err != nil {
		t.Fatal(err)
	}
	var auto *snapshot.Job
	waitUntil(t, "the auto backfill of the added table", func() bool {
		jobs, err := store.List(ctx)
		if err != nil {
			return false
		}
		for _, j := range jobs {
			if j.By == "auto" && j.Final() {
				auto = j
				return true
			}
		}
		return false
	})
	if auto.State != snapshot.StateDone || len(auto.Tables) != 1 || auto.Tables[0].Table != "public.later" || count("later", wire.SnapshotIncremental) != 40 {
		t.Fatalf("auto backfill: %+v, %d rows", auto, count("later", wire.SnapshotIncremental))
	}
}

// A running backfill stops at a cancel, after its current chunk, and ends
// cancelled; one cancelled before it was taken up never runs.
func TestBackfillCancel(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g;`)
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever, ChunkRows: 10})
	e.streaming(t)
	store := e.store(t)
	ctx := context.Background()
	j, err := backfill.Request(ctx, store, []string{"public.t"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the backfill to run", func() bool {
		got, _, err := store.Get(ctx, j.ID)
		return err == nil && len(got.Tables) == 1 && got.Tables[0].Rows > 0
	})
	if _, err := backfill.Cancel(ctx, store, j.ID); err != nil {
		t.Fatal(err)
	}
	done := e.ended(t, j.ID)
	if done.State != snapshot.StateCancelled || done.Tables[0].Rows >= 20000 {
		t.Fatalf("cancelled backfill: %s with %d rows", done.State, done.Tables[0].Rows)
	}
	if _, err := backfill.Cancel(ctx, store, j.ID); err == nil {
		t.Fatal("cancelling an ended job: no error")
	}

	// Asked while no collector runs, cancelled before one takes it up.
	e.stop()
	j2, err := backfill.Request(ctx, store, []string{"public.t"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := backfill.Cancel(ctx, store, j2.ID); err != nil || c.State != snapshot.StateCancelled {
		t.Fatalf("cancel a request not taken up: %v, %+v", err, c)
	}
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever, ChunkRows: 10})
	e.streaming(t)
	time.Sleep(2 * time.Second) // time to (wrongly) take it up
	for _, m := range e.raw(t) {
		for _, tx := range m.Txs {
			if tx.Snapshot != nil && tx.Snapshot.ID == j2.ID {
				t.Fatal("a cancelled request ran")
			}
		}
	}
}

// A collector restarted right after a backfill chunk (the raw stream's last
// record) knows what the next transaction follows: the chunk's watermark
// commit, not nothing (Debezium's source.sequence starts with it).
func TestRestartAfterBackfillChunk(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g;`)
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever})
	e.streaming(t)
	ctx := context.Background()
	j, err := backfill.Request(ctx, e.store(t), []string{"public.t"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if done := e.ended(t, j.ID); done.State != snapshot.StateDone {
		t.Fatalf("backfill ended %s", done.State)
	}
	e.stop()
	msgs := e.raw(t)
	if len(msgs) == 0 {
		t.Fatal("no raw records")
	}
	chunk := msgs[len(msgs)-1].Txs[len(msgs[len(msgs)-1].Txs)-1]
	if chunk.Snapshot == nil || chunk.PrevCommitLSN == 0 {
		t.Fatalf("last raw record: %+v, want a backfill chunk following its watermark commit", chunk)
	}
	// The slot is advanced past the chunk, so that Postgres sends no commit
	// before the next transaction: what it follows comes from the raw stream.
	// Its walsender may outlive the collector for a moment.
	waitUntil(t, "the slot to be released", func() bool {
		var active bool
		_ = e.conn.QueryRow(ctx, `SELECT coalesce(bool_or(active), true) FROM pg_replication_slots WHERE slot_name = 'snap'`).Scan(&active)
		return !active
	})
	if _, err := e.conn.Exec(ctx, `SELECT pg_replication_slot_advance('snap', pg_current_wal_lsn())`); err != nil {
		t.Fatal(err)
	}
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever})
	e.streaming(t)
	if _, err := e.conn.Exec(ctx, `INSERT INTO t VALUES (6, 'after')`); err != nil {
		t.Fatal(err)
	}
	var next *wire.Tx
	waitUntil(t, "the insert after the restart", func() bool {
		for _, m := range e.raw(t) {
			for i := range m.Txs {
				if tx := &m.Txs[i]; tx.Snapshot == nil && len(tx.Changes) == 1 && tx.Changes[0].Op == wire.OpInsert {
					next = tx
				}
			}
		}
		return next != nil
	})
	if next.PrevCommitLSN == 0 || next.PrevCommitLSN < chunk.PrevCommitLSN || next.PrevCommitLSN >= next.CommitLSN {
		t.Errorf("the insert after the restart follows %X, want the watermark commit's end %X or a later commit before its own %X",
			next.PrevCommitLSN, chunk.PrevCommitLSN, next.CommitLSN)
	}
}

// Invariant: an initial snapshot interrupted, then a gap (the slot dropped
// and created again with --recreate-slot): the transaction of reads the
// stopped collector left open is closed at its own position before the
// gap notice, so that routers end it (after the notice they would skip
// the closing fragment as going backwards), once, also when an earlier
// attempt stored the closing fragment and stopped; the gap starts after
// the reads' position.
func TestInterruptedSnapshotClosedBeforeGap(t *testing.T) {
	for _, closedBefore := range []bool{false, true} {
		t.Run(fmt.Sprintf("closed by an earlier attempt %v", closedBefore), func(t *testing.T) {
			e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300000) g;`)
			sc := SnapshotConfig{Mode: snapshot.ModeInitial, ChunkRows: 100}
			e.start(t, []string{"public.t"}, sc)
			waitUntil(t, "the first reads stored", func() bool { return len(e.raw(t)) >= 2 })
			e.stop()
			msgs := e.settledRaw(t)
			last := msgs[len(msgs)-1]
			open, ok := openInitialReads(last)
			if !ok {
				t.Fatalf("the stopped snapshot left no open transaction of reads: last record %+v", last.Txs)
			}
			ctx := context.Background()
			if closedBefore {
				s, err := e.js.Stream(ctx, wire.DefaultRawStream)
				if err != nil {
					t.Fatal(err)
				}
				info, err := s.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := rawstream.PublishAlone(ctx, e.js, wire.DefaultRawStream, last.Source, closingFragment(open), info.State.LastSeq,
					10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "the slot dropped", func() bool {
				_, err := e.conn.Exec(ctx, `SELECT pg_drop_replication_slot('snap')`)
				return err == nil
			})

			e.start(t, []string{"public.t"}, sc, func(c *Config) { c.RecreateSlot = true })
			var at int
			var notice wire.Notice
			waitUntil(t, "the gap notice", func() bool {
				msgs = e.raw(t)
				for i, m := range msgs {
					if n, ok := rawstream.LastNotice(m); ok && n.Kind == wire.NoticeGap {
						at, notice = i, n
						return true
					}
				}
				return false
			})
			e.stop()
			closing := msgs[at-1].Txs[len(msgs[at-1].Txs)-1]
			if closing.CommitLSN != open.CommitLSN || !closing.Final || closing.Fragment != open.Fragment+1 || closing.FirstChange != open.Change ||
				len(closing.Changes) != 0 || closing.Snapshot == nil || closing.Snapshot.Kind != wire.SnapshotInitial {
				t.Fatalf("the record before the gap notice: fragment %d at %X, final %v, %d changes from %d; want the final fragment %d of the reads at %X, from change %d, with none",
					closing.Fragment, closing.CommitLSN, closing.Final, len(closing.Changes), closing.FirstChange, open.Fragment+1, open.CommitLSN, open.Change)
			}
			if prev := msgs[at-2].Txs[len(msgs[at-2].Txs)-1]; prev.CommitLSN == open.CommitLSN && prev.Final {
				t.Fatalf("the reads at %X closed twice", open.CommitLSN)
			}
			for _, m := range msgs[at+1:] {
				for _, tx := range m.Txs {
					if tx.CommitLSN == open.CommitLSN {
						t.Fatalf("fragment %d of the interrupted reads after the gap notice", tx.Fragment)
					}
				}
			}
			if want := wire.LSN(open.CommitLSN).String(); notice.FromLSN != want {
				t.Errorf("gap notice from %s, want after the reads' position %s", notice.FromLSN, want)
			}
		})
	}
}

// closingFragment ends the reads after the last stored change, past a row
// stored only in part (pieces), which the router then drops.
func TestClosingFragment(t *testing.T) {
	for _, tt := range []struct {
		last      wire.Position
		wantFirst uint64
	}{
		{wire.Position{CommitLSN: 0x3FFF, Change: 5, Fragment: 3}, 5},
		{wire.Position{CommitLSN: 0x3FFF, Change: 5, Fragment: 3, Piece: 1000, PieceTotal: 5000}, 6},
	} {
		f := closingFragment(tt.last)
		if f.CommitLSN != tt.last.CommitLSN || f.Fragment != 4 || f.FirstChange != tt.wantFirst || !f.Final || len(f.Changes) != 0 ||
			f.Snapshot == nil || f.Snapshot.Kind != wire.SnapshotInitial {
			t.Errorf("after %+v: %+v, want the final fragment 4 from change %d", tt.last, f, tt.wantFirst)
		}
	}
}

// Invariant: a collector stopped while it starts (connecting, checking
// the raw stream, creating its slot) ends without an error: a shutdown is
// not a failure, whenever it comes.
func TestStopWhileStarting(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text);`)
	for i := range 6 {
		e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever})
		// Not waiting for a condition: the stop must come at another
		// point of the startup each time.
		time.Sleep(time.Duration(i) * 15 * time.Millisecond)
		e.stop() // fails the test if Run returns an error
	}
}

// Invariant: a backfill whose connection is cut (Postgres restarting or
// failing over, an operator's pg_terminate_backend) goes on from its last
// stored chunk, as after a crash, and ends done: no row of the table is
// left without a read or a change. A job marked failed for it would leave
// the rows not yet read missing (a gap backfill's, an interrupted initial
// snapshot's).
func TestBackfillSurvivesItsConnectionCut(t *testing.T) {
	e := newSnapEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;`)
	e.start(t, []string{"public.t"}, SnapshotConfig{Mode: snapshot.ModeNever, ChunkRows: 20})
	e.streaming(t)
	ctx := context.Background()
	store := e.store(t)
	j, err := backfill.Request(ctx, store, []string{"public.t"}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the backfill to store a chunk", func() bool {
		got, _, err := store.Get(ctx, j.ID)
		return err == nil && len(got.Tables) == 1 && got.Tables[0].Rows > 0
	})
	// The engine's connection: the one that writes watermarks and reads
	// chunks (its last statement is one of those).
	var pid int32
	waitUntil(t, "the backfill's connection", func() bool {
		err := e.conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
			AND (query ILIKE '%pg_logical_emit_message%' OR query ILIKE '%pg_current_snapshot%' OR query ILIKE 'COPY (%' OR query ILIKE 'begin isolation level repeatable read%')`).Scan(&pid)
		return err == nil
	})
	var cut bool
	if err := e.conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&cut); err != nil || !cut {
		t.Fatalf("terminate the backfill's connection %d: %v %v", pid, cut, err)
	}
	done := e.ended(t, j.ID)
	if done.State != snapshot.StateDone {
		t.Fatalf("backfill whose connection was cut ended %s: %s", done.State, done.Error)
	}
	if _, err := e.conn.Exec(ctx, `INSERT INTO t VALUES (100000, 'end')`); err != nil {
		t.Fatal(err)
	}
	var msgs []*wire.Message
	waitUntil(t, "the last write in the stream", func() bool {
		msgs = e.raw(t)
		_, ok := state(msgs, "t")["100000"]
		return ok
	})
	if d := diffStates(e.tableState(t, "t"), state(msgs, "t")); d != "" {
		t.Fatalf("table rebuilt from the stream differs from the table:\n%s", d)
	}
}
