package render

import "github.com/pgjet/pgjet/shared/wire"

// A source's raw records hold its transactions in commit order, each
// fragment after the one before. A fragment at or before what the route
// already rendered of its source can only be a copy of an old record
// published again; after the output's duplicate window its events would
// be stored twice. Record skips such fragments and counts them
// (Batch.Backwards), for the relay to warn about.
//
// Positions compare within one history of one database: by source name
// and system identifier, then timeline, then commit LSN. A failover
// continues a source on a higher timeline, where commit LSNs may be lower
// than where the old timeline ended: that is later, not backwards. A lower
// timeline is backwards. Another system identifier (a database restored
// from elsewhere, or another one) starts a history of its own.

// history is a database's history: a source name and a system identifier.
type history struct {
	name   string
	system uint64
}

// mark is a position in a history: the next change not rendered yet.
type mark struct {
	timeline int32
	lsn      uint64 // commit LSN of the transaction
	change   uint64 // index of the change in it
	piece    uint64 // byte offset into the change, for a change in pieces
}

func (m mark) before(o mark) bool {
	switch {
	case m.timeline != o.timeline:
		return m.timeline < o.timeline
	case m.lsn != o.lsn:
		return m.lsn < o.lsn
	case m.change != o.change:
		return m.change < o.change
	}
	return m.piece < o.piece
}

// startOf is where fragment tx of src starts.
func startOf(src *wire.Source, tx *wire.Tx) mark {
	return mark{timeline: src.Timeline, lsn: tx.CommitLSN, change: tx.FirstChange, piece: tx.PieceOffset}
}

// endOf is where the fragment after tx of src starts.
func endOf(src *wire.Source, tx *wire.Tx) mark {
	m := mark{timeline: src.Timeline, lsn: tx.CommitLSN, change: tx.FirstChange + uint64(len(tx.Changes))}
	if tx.IsPiece() && !tx.LastPiece() {
		m.change, m.piece = tx.FirstChange, tx.PieceOffset+uint64(len(tx.Changes[0].Content))
	}
	return m
}

// backwards reports whether fragment tx of src lies before what the route
// rendered of its history already.
func (r *Renderer) backwards(src *wire.Source, tx *wire.Tx) bool {
	last, ok := r.rendered[history{src.Name, src.SystemID}]
	return ok && startOf(src, tx).before(last)
}

// advance records tx of src as rendered.
func (r *Renderer) advance(src *wire.Source, tx *wire.Tx) {
	r.rendered[history{src.Name, src.SystemID}] = endOf(src, tx)
}
