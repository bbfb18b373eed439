// Package backfill re-reads tables while changes stream (an online,
// incremental snapshot), following DBLog and Debezium's incremental
// snapshots: for each chunk, a low watermark is written into the WAL, the
// chunk is read in key order, a high watermark is written, and when the
// stream reaches the high watermark the chunk is emitted there, without the
// rows that a change in the stream already carries in a newer version. The
// raw stream stays one sequence in commit order, and no row is ever
// emitted with an older value after its newer change.
//
// Which rows are dropped is decided by transaction visibility, not only by
// the window between the watermarks: a row is dropped when a transaction
// the chunk's snapshot does not see changed it and the stream carried that
// change before the high watermark. That covers the window, and also a
// transaction whose commit record precedes the low watermark but which
// became visible only after the chunk was read (a commit waiting for a
// synchronous standby), which DBLog's window alone would miss.
//
// Progress is kept per chunk in the snapshot bucket (package snapshot): a
// backfill resumes after a crash from its last stored chunk.
package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/wire"
)

// Prefixes of the logical decoding messages the collector takes out of the
// stream: its watermarks, and requests for backfills written with SQL.
const (
	WatermarkPrefix = wire.WatermarkPrefix
	RequestPrefix   = wire.BackfillPrefix
)

// Tracker follows the stream for backfills (a pgoutput.Observer): it
// records which keys of the tables being backfilled change and in which
// transactions, and emits each chunk when the stream reaches its high
// watermark. Its Observer methods run on the stream's goroutine; the rest
// is safe for concurrent use.
type Tracker struct {
	emit        pgoutput.Emitter
	maxFragment int
	// requests receives the requests written with SQL (nil: ignored).
	requests func(ctx context.Context, commitLSN uint64, content []byte) error
	stats    *snapshot.Stats
	log      *slog.Logger

	// watching mirrors len(tables) > 0, so that the stream pays one atomic
	// load per change while nothing is backfilled.
	watching atomic.Int32

	mu     sync.Mutex
	tables map[tableKey]*watched
	// pending chunks by id, from their reading to their emission.
	pending map[string]*pendingChunk
	// ready is the chunk whose high watermark is in the transaction being
	// decoded: emitted when it commits.
	ready *pendingChunk
}

type tableKey struct{ schema, table string }

// watched is a table being backfilled: the changes of its keys by
// transaction, since it began being watched, pruned of what every later
// chunk's snapshot sees.
type watched struct {
	t *snapshot.Table
	// keys: transactions that changed each key (its text form).
	keys map[string][]uint32
	// truncates: transactions that truncated the table.
	truncates []uint32
	// unknown: transactions whose change left a key unknown (an unchanged
	// TOAST value in a key column): such a chunk is read again.
	unknown []uint32
	// keyCols are Key's positions in the relation the stream announced
	// (columns may have moved since the table was described).
	rel     *wire.Relation
	keyCols []int
}

// pendingChunk is a chunk read and waiting for its high watermark.
type pendingChunk struct {
	id    string
	chunk *snapshot.Chunk
	snap  *pgSnapshot
	job   *snapshot.Job
	read  time.Time
	hwAt  time.Time // when the high watermark was written
	low   bool      // the stream passed its low watermark
	done  chan chunkResult
	// stored runs once the emitted rows are stored.
	stored func(emitted int)
}

type chunkResult struct {
	emitted, dropped int
	// retry: the chunk cannot be trusted (a key changed that the stream
	// could not name); read it again.
	retry bool
	err   error
}

// NewTracker returns a Tracker emitting chunks through emit (the decoder's
// emitter) in fragments of at most about maxFragment bytes.
func NewTracker(emit pgoutput.Emitter, maxFragment int, stats *snapshot.Stats, log *slog.Logger) *Tracker {
	return &Tracker{emit: emit, maxFragment: maxFragment, stats: stats, log: log,
		tables: map[tableKey]*watched{}, pending: map[string]*pendingChunk{}}
}

// OnRequest makes the tracker hand requests written with SQL to f.
func (tr *Tracker) OnRequest(f func(ctx context.Context, commitLSN uint64, content []byte) error) {
	tr.requests = f
}

// Watch starts recording the changes of t's keys: before its first chunk's
// low watermark, so that no change the chunk's snapshot misses goes
// unrecorded.
func (tr *Tracker) Watch(t *snapshot.Table) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	k := tableKey{t.Schema, t.Name}
	if _, ok := tr.tables[k]; !ok {
		tr.tables[k] = &watched{t: t, keys: map[string][]uint32{}}
	}
	tr.watching.Store(int32(len(tr.tables)))
}

// Unwatch stops recording t's changes.
func (tr *Tracker) Unwatch(t *snapshot.Table) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	delete(tr.tables, tableKey{t.Schema, t.Name})
	tr.watching.Store(int32(len(tr.tables)))
}

// expect registers a chunk before its low watermark is written, so that the
// stream can tell its watermarks.
func (tr *Tracker) expect(p *pendingChunk) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.pending[p.id] = p
}

// read gives a registered chunk its rows, read under snapshot snap, before
// its high watermark is written.
func (tr *Tracker) read(p *pendingChunk, chunk *snapshot.Chunk, snap *pgSnapshot) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p.chunk, p.snap, p.read, p.hwAt = chunk, snap, time.Now(), time.Now()
}

// forget drops a chunk that will not be emitted (its reader gave up).
func (tr *Tracker) forget(id string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	delete(tr.pending, id)
	if tr.ready != nil && tr.ready.id == id {
		tr.ready = nil
	}
}

// Intercepts takes the watermarks and the SQL requests out of the stream.
func (tr *Tracker) Intercepts(prefix string) bool {
	return prefix == WatermarkPrefix || prefix == RequestPrefix
}

// Message handles an intercepted message.
func (tr *Tracker) Message(ctx context.Context, xid uint32, commitLSN uint64, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Prefix == RequestPrefix {
		if tr.requests == nil {
			tr.log.Warn("a backfill request written with SQL is ignored: requests from SQL are off (--backfill-sql)", "lsn", pglogrepl.LSN(commitLSN))
			return nil
		}
		if !m.Transactional {
			commitLSN = uint64(m.LSN)
		}
		return tr.requests(ctx, commitLSN, m.Content)
	}
	id, mark, ok := strings.Cut(string(m.Content), " ")
	if !ok {
		return nil
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p := tr.pending[id]
	if p == nil {
		// Another run's, or a chunk given up: nothing waits for it.
		return nil
	}
	switch mark {
	case "low":
		p.low = true
	case "high":
		if !p.low || p.chunk == nil {
			tr.log.Warn("backfill chunk's high watermark before its low one: reading the chunk again", "chunk", id)
			delete(tr.pending, id)
			p.done <- chunkResult{retry: true}
			return nil
		}
		tr.ready = p
	}
	return nil
}

// Row records which key of a watched table a change touches.
func (tr *Tracker) Row(xid uint32, rel *wire.Relation, c *wire.Change) {
	if tr.watching.Load() == 0 {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	w := tr.tables[tableKey{rel.Schema, rel.Table}]
	if w == nil {
		return
	}
	if w.rel != rel {
		w.rel, w.keyCols = rel, keyColumns(w.t, rel)
	}
	if w.keyCols == nil {
		w.unknown = append(w.unknown, xid)
		return
	}
	// Every key the change touches: the new row's, and the old row's when
	// it came (a changed key, a delete, REPLICA IDENTITY FULL).
	for i, tuple := range [][]wire.Value{c.New, c.Old} {
		if tuple == nil {
			continue
		}
		k, ok := keyString(tuple, w.keyCols)
		if !ok {
			if i == 0 && c.Old != nil {
				continue // an unchanged new key: the old one names it
			}
			w.unknown = append(w.unknown, xid)
			continue
		}
		w.keys[k] = append(w.keys[k], xid)
	}
}

// Truncate records a truncate of a watched table.
func (tr *Tracker) Truncate(xid uint32, rels []*wire.Relation) {
	if tr.watching.Load() == 0 {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, rel := range rels {
		if w := tr.tables[tableKey{rel.Schema, rel.Table}]; w != nil {
			w.truncates = append(w.truncates, xid)
		}
	}
}

// Committed emits the chunk whose high watermark the transaction held, just
// after it: at its commit LSN + 1, following its commit (endLSN), so that a
// collector restarted after the chunk knows what the next transaction
// follows (Debezium's source.sequence).
func (tr *Tracker) Committed(ctx context.Context, xid uint32, commitLSN, endLSN uint64) error {
	tr.mu.Lock()
	p := tr.ready
	tr.ready = nil
	if p == nil {
		tr.mu.Unlock()
		return nil
	}
	delete(tr.pending, p.id)
	rows, dropped, retry := tr.filter(p)
	tr.mu.Unlock()
	if retry {
		p.done <- chunkResult{retry: true}
		return nil
	}
	tr.stats.SetLag(time.Since(p.hwAt))
	if tr.stats != nil {
		tr.stats.Dropped.Add(uint64(dropped))
	}
	// Always written, even with every row dropped: its progress must be
	// recorded in stream order, after the chunks before it are stored.
	// No xid: the reads belong to no transaction (Debezium gives an
	// incremental snapshot record no txId either).
	w := snapshot.NewTxWriter(tr.emit, tr.maxFragment, commitLSN+1, 0,
		wire.Snapshot{Kind: wire.SnapshotIncremental, ID: p.job.ID, Sinks: p.job.Sinks})
	w.Follows(endLSN)
	n := len(rows)
	err := w.Write(ctx, p.chunk.Table.Rel, rows, p.read, 0, 0, true, func() { p.stored(n) })
	p.done <- chunkResult{emitted: n, dropped: dropped, err: err}
	if err != nil {
		return fmt.Errorf("emit backfill chunk of %s: %w", p.chunk.Table, err)
	}
	return nil
}

// filter returns the chunk's rows that no change the chunk's snapshot
// misses touched, and prunes the recorded changes its snapshot sees (every
// later chunk's snapshot sees them too). retry: a change left a key
// unknown (tr.mu held).
func (tr *Tracker) filter(p *pendingChunk) (rows [][]wire.Value, dropped int, retry bool) {
	t := p.chunk.Table
	w := tr.tables[tableKey{t.Schema, t.Name}]
	if w == nil {
		return p.chunk.Rows, 0, false
	}
	unseen := func(xids []uint32) bool {
		for _, x := range xids {
			if !p.snap.visible(x) {
				return true
			}
		}
		return false
	}
	retry = unseen(w.unknown)
	truncated := unseen(w.truncates)
	if !retry {
		rows = p.chunk.Rows[:0:0]
		for _, row := range p.chunk.Rows {
			k, _ := keyString(row, t.Key)
			if truncated || unseen(w.keys[k]) {
				dropped++
				continue
			}
			rows = append(rows, row)
		}
	}
	// Prune what this snapshot sees.
	keep := func(xids []uint32) []uint32 {
		out := xids[:0]
		for _, x := range xids {
			if !p.snap.visible(x) {
				out = append(out, x)
			}
		}
		return out
	}
	for k, xids := range w.keys {
		if xids = keep(xids); len(xids) == 0 {
			delete(w.keys, k)
		} else {
			w.keys[k] = xids
		}
	}
	w.truncates, w.unknown = keep(w.truncates), keep(w.unknown)
	return rows, dropped, retry
}

// keyColumns finds t's key columns in rel by name; nil when one is missing.
func keyColumns(t *snapshot.Table, rel *wire.Relation) []int {
	cols := make([]int, len(t.Key))
	for i, p := range t.Key {
		name := t.Rel.Columns[p].Name
		cols[i] = -1
		for j := range rel.Columns {
			if rel.Columns[j].Name == name {
				cols[i] = j
				break
			}
		}
		if cols[i] < 0 {
			return nil
		}
	}
	return cols
}

// keyString is the key of tuple at cols as one string (each value's length
// first, so no two keys read the same); false when a value is unknown
// (unchanged TOAST, or the tuple lacks the column).
func keyString(tuple []wire.Value, cols []int) (string, bool) {
	var b []byte
	for _, c := range cols {
		if c >= len(tuple) || tuple[c].Kind == wire.KindUnchanged {
			return "", false
		}
		v := tuple[c]
		b = append(b, v.Kind, byte(len(v.Data)>>24), byte(len(v.Data)>>16), byte(len(v.Data)>>8), byte(len(v.Data)))
		b = append(b, v.Data...)
	}
	return string(b), true
}
