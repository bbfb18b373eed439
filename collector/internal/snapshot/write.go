package snapshot

import (
	"context"
	"time"

	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/wire"
)

// TxWriter writes rows as one transaction of reads (wire.Tx.Snapshot) into
// the stream: consecutive change indexes and fragment numbers, fragments
// of bounded size, a row too large for one in pieces. Not safe for
// concurrent use: the initial snapshot's workers share one through a lock,
// which is also what keeps the indexes in stream order.
type TxWriter struct {
	emit        pgoutput.Emitter
	maxFragment int
	base        wire.Tx
	snap        wire.Snapshot
	next        uint64 // index of the next change
	fragment    uint32 // number of the next fragment
	// Written: rows emitted so far.
	Written int64
}

// NewTxWriter returns a writer of the transaction of reads at position
// commitLSN (see wire.Snapshot), emitting fragments of at most about
// maxFragment bytes to emit. xid is the transaction the rows were read in
// (its low 32 bits, as pgoutput's xids; snap.Xid holds it whole), 0 for
// none.
func NewTxWriter(emit pgoutput.Emitter, maxFragment int, commitLSN uint64, xid uint32, snap wire.Snapshot) *TxWriter {
	return &TxWriter{emit: emit, maxFragment: maxFragment, base: wire.Tx{Xid: xid, CommitLSN: commitLSN}, snap: snap}
}

// Follows sets where the transaction before the reads ended
// (wire.Tx.PrevCommitLSN): a collector restarted after them takes it as
// what the next transaction follows. The initial snapshot's reads follow
// nothing (0).
func (w *TxWriter) Follows(prevCommit uint64) { w.base.PrevCommitLSN = prevCommit }

// Resume makes the writer continue a transaction whose fragments up to
// number fragment, and changes up to index next-1, are stored.
func (w *TxWriter) Resume(next uint64, fragment uint32) { w.next, w.fragment = next, fragment }

// Position is where the next fragment goes: the next change's index and
// fragment number.
func (w *TxWriter) Position() (next uint64, fragment uint32) { return w.next, w.fragment }

// fragmentOverhead: a fragment's own headers in a raw message.
const fragmentOverhead = 64

// Write emits rows of rel, read at readTime. first marks go on the first
// row, last marks on the last one; final closes the transaction with the
// last fragment (an empty one when rows is empty). stored, when set, is
// called once every fragment of rows is stored.
func (w *TxWriter) Write(ctx context.Context, rel *wire.Relation, rows [][]wire.Value, readTime time.Time, first, last uint8, final bool, stored func()) error {
	w.base.CommitTime = readTime.UnixMicro()
	relSize := pgoutput.RelationSize(rel)
	var f *pgoutput.Fragment
	var marks uint8
	flush := func(isLast bool) error {
		fr := f
		f = nil
		s := w.snap
		s.Marks = marks
		if isLast {
			s.Marks |= last
			fr.Tx.Final = final
			fr.Stored = stored
		}
		fr.Tx.Snapshot = &s
		marks = 0
		return w.emit(ctx, fr)
	}
	start := func() {
		f = &pgoutput.Fragment{Tx: w.base, Size: fragmentOverhead + relSize, Rels: []*wire.Relation{rel}}
		f.Tx.Fragment = w.fragment
		f.Tx.FirstChange = w.next
		w.fragment++
	}
	for i, row := range rows {
		size := pgoutput.RowSize(row)
		if i == 0 {
			marks = first
		}
		if f != nil && f.Size+size > w.maxFragment {
			if err := flush(false); err != nil {
				return err
			}
		}
		if f == nil && fragmentOverhead+relSize+size > w.maxFragment {
			// Alone still too large: in pieces.
			if err := w.pieces(ctx, rel, row, marks, i == len(rows)-1, last, final, stored); err != nil {
				return err
			}
			marks = 0
			continue
		}
		if f == nil {
			start()
		}
		f.Tx.Changes = append(f.Tx.Changes, wire.Change{Op: wire.OpRead, Rel: 0, New: row})
		f.Size += size
		w.next++
		w.Written++
	}
	if f == nil && len(rows) == 0 && final {
		start() // closes the transaction
	}
	if f != nil {
		return flush(true)
	}
	return nil
}

// pieces emits one row too large for a fragment in pieces.
func (w *TxWriter) pieces(ctx context.Context, rel *wire.Relation, row []wire.Value, marks uint8, isLast bool, last uint8, final bool, stored func()) error {
	s := w.snap
	s.Marks = marks
	if isLast {
		s.Marks |= last
	}
	base := w.base
	base.Fragment, base.FirstChange, base.Snapshot = w.fragment, w.next, &s
	emit := func(ctx context.Context, f *pgoutput.Fragment) error {
		if isLast && f.Tx.LastPiece() {
			f.Stored = stored
		}
		return w.emit(ctx, f)
	}
	n, err := pgoutput.EmitPieces(ctx, emit, w.maxFragment, wire.Version, base, wire.Change{Op: wire.OpRead, Rel: 0, New: row},
		[]*wire.Relation{rel}, 0, isLast && final)
	w.fragment += n
	w.next++
	w.Written++
	return err
}
