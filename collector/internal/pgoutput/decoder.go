// Package pgoutput turns pgoutput protocol messages (protocol version 1) into
// transaction fragments of the raw wire format.
//
// Small transactions become one fragment each; a large one is cut into
// fragments of bounded size as its changes arrive, so memory stays bounded
// whatever the size of a transaction.
package pgoutput

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// Fragment is a transaction, or a part of one, ready to be batched.
type Fragment struct {
	Tx wire.Tx
	// Rels are the relations Tx.Changes refer to; Change.Rel and
	// Change.TruncateRels index this slice.
	Rels []*wire.Relation
	// Size estimates the memory the fragment holds, which is also an upper
	// bound of its encoded size: it bounds both memory and raw message size.
	Size int
	// Stored, when set, is called once the raw message holding the
	// fragment is acknowledged (snapshots record their progress then).
	Stored func()

	// Room for the first change and relation: most transactions have one of
	// each, and their fragment is then a single allocation.
	firstChange [1]wire.Change
	firstRel    [1]*wire.Relation
}

// Catalog reads from the database what pgoutput does not send
// (pgtypes.Catalog reads it over a connection of its own).
type Catalog interface {
	// Type describes a user-defined type (OID >= 16384).
	Type(ctx context.Context, oid uint32) (pgtypes.Type, error)
	// Relation says what the catalog says of a relation's columns.
	Relation(ctx context.Context, relid uint32) (pgtypes.Relation, error)
}

// Emitter receives completed fragments in stream order.
type Emitter func(ctx context.Context, f *Fragment) error

// Observer follows the stream for backfills, which read tables while
// changes stream: it sees every row change and truncate of the
// transactions not already stored, takes the logical decoding messages
// meant for it (watermarks, requests) out of the stream, and learns where
// each transaction ends, which is where a backfill's chunk may be emitted.
type Observer interface {
	// Intercepts reports whether messages with prefix are the observer's:
	// they go to Message and not to the raw stream.
	Intercepts(prefix string) bool
	// Message takes an intercepted message. commitLSN is its transaction's
	// commit position (its own LSN when not transactional).
	Message(ctx context.Context, xid uint32, commitLSN uint64, m *pglogrepl.LogicalDecodingMessage) error
	// Row sees a row change of transaction xid on rel before it is batched.
	// It must not keep c or its values.
	Row(xid uint32, rel *wire.Relation, c *wire.Change)
	// Truncate sees a truncate of rels by transaction xid.
	Truncate(xid uint32, rels []*wire.Relation)
	// Committed is told that the transaction xid committed at commitLSN,
	// ending at endLSN, is handled: its last fragment emitted (or dropped,
	// when it had no change for the raw stream). What the observer emits
	// now comes after it, and follows that commit.
	Committed(ctx context.Context, xid uint32, commitLSN, endLSN uint64) error
}

// Decoder keeps the state of one replication session: relations announced so
// far and the transaction being received.
type Decoder struct {
	emit        Emitter
	catalog     Catalog          // nil: relations are described as pgoutput sends them
	now         func() time.Time // the time of non-transactional messages
	maxFragment int
	skip        wire.Position
	skipSet     bool
	obs         Observer

	// OnEmpty, when set, is told the end LSN of each transaction that
	// commits with nothing to store (a heartbeat's, or one whose changes the
	// publication filtered out): with nothing in flight, the slot may move
	// past it although no record and no keepalive says so.
	OnEmpty func(end uint64)

	rels  map[uint32]*wire.Relation
	types map[uint32]pgtypes.Type
	// enums are the enum columns of relations that have some: values are
	// checked against their labels, read again when one is not among them.
	enums map[*wire.Relation][]enumColumn
	elems []pgtype.Text // array elements, reused
	// lastCommit is where the transaction being received, or the next one,
	// follows (wire.Tx.PrevCommitLSN).
	lastCommit uint64

	inTx     bool
	skipping bool // whole transaction already stored
	skipTo   uint64
	// skipPiece: change skipTo travels in pieces, and the bytes of its
	// encoding before skipPiece are stored.
	skipPiece uint64
	cur       *Fragment
	relIdx    map[*wire.Relation]int32
	arena     arena
	beginMsg  pglogrepl.BeginMessage
	commitMsg pglogrepl.CommitMessage
	next      uint64 // index of the next change in the transaction
	fragment  uint32
	beginLSN  uint64
	prevLSN   uint64 // lastCommit when the transaction began
}

// New returns a Decoder that emits fragments of at most about maxFragment
// bytes. A single change larger than that travels in pieces of that size
// (wire.Tx.PieceTotal): a Postgres value can reach 1 GB, a JetStream message
// cannot exceed 32 MiB. It reads what pgoutput does not send from catalog.
func New(emit Emitter, catalog Catalog, maxFragment int) *Decoder {
	return &Decoder{
		emit:        emit,
		catalog:     catalog,
		now:         time.Now,
		maxFragment: maxFragment,
		rels:        make(map[uint32]*wire.Relation),
		types:       make(map[uint32]pgtypes.Type),
		enums:       make(map[*wire.Relation][]enumColumn),
		relIdx:      make(map[*wire.Relation]int32),
	}
}

// SkipThrough makes the decoder drop everything at or before p: changes the
// raw stream already holds from an earlier run. Postgres resends transactions
// after the slot's last persisted position, which can be behind what was
// published.
func (d *Decoder) SkipThrough(p wire.Position) {
	d.skip = p
	d.skipSet = true
	d.lastCommit = p.LastCommit
}

// Observe makes obs follow the stream (nil: nothing does). Set it before
// the first Handle.
func (d *Decoder) Observe(obs Observer) { d.obs = obs }

// Emit hands f on as the decoder's own fragments go, for an Observer that
// emits between transactions (in Committed).
func (d *Decoder) Emit(ctx context.Context, f *Fragment) error { return d.emit(ctx, f) }

// MaxFragment is the size the decoder keeps fragments under.
func (d *Decoder) MaxFragment() int { return d.maxFragment }

// InTx reports whether a transaction is partly received.
func (d *Decoder) InTx() bool { return d.inTx }

// Handle decodes one pgoutput message. walStart is the XLogData's WALStart.
// data may be reused by the caller after Handle returns.
func (d *Decoder) Handle(ctx context.Context, walStart uint64, data []byte) (err error) {
	if len(data) == 0 {
		return errors.New("pgoutput: empty message")
	}
	// The messages of every transaction decode without allocating: begin and
	// commit into structs kept for reuse, rows by readRow.
	switch data[0] {
	case 'B':
		if err := d.beginMsg.Decode(data[1:]); err != nil {
			return fmt.Errorf("pgoutput: parse begin: %w", err)
		}
		return d.begin(&d.beginMsg)
	case 'C':
		if err := d.commitMsg.Decode(data[1:]); err != nil {
			return fmt.Errorf("pgoutput: parse commit: %w", err)
		}
		return d.commit(ctx, &d.commitMsg)
	case 'I', 'U', 'D':
		r, err := d.readRow(data)
		if err != nil {
			return fmt.Errorf("pgoutput: malformed %q message (%d bytes): %w", data[0], len(data), err)
		}
		return d.row(ctx, walStart, r)
	}
	msg, err := parse(data)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pglogrepl.OriginMessage:
		if d.inTx {
			d.cur.Tx.Origin = m.Name
		}
		return nil
	case *pglogrepl.RelationMessage:
		return d.relation(ctx, m)
	case *pglogrepl.TypeMessage:
		// Type messages lack what the router needs (kind, element type); the
		// relation handler resolves user-defined types from pg_type instead.
		return nil
	case *pglogrepl.TruncateMessage:
		return d.truncate(ctx, walStart, m)
	case *pglogrepl.LogicalDecodingMessage:
		return d.message(ctx, walStart, m)
	default:
		return fmt.Errorf("pgoutput: unexpected message type %q", data[0])
	}
}

// parse guards pglogrepl's parsers, which index without bounds checks: a
// truncated or corrupt message must stop the collector loudly, not crash it.
func parse(data []byte) (msg pglogrepl.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("pgoutput: malformed %q message (%d bytes): %v", data[0], len(data), r)
		}
	}()
	if err := checkBounds(data); err != nil {
		return nil, fmt.Errorf("pgoutput: malformed %q message (%d bytes): %w", data[0], len(data), err)
	}
	msg, err = pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("pgoutput: parse %q message: %w", data[0], err)
	}
	return msg, nil
}

func (d *Decoder) begin(m *pglogrepl.BeginMessage) error {
	if d.inTx {
		return fmt.Errorf("pgoutput: begin of xid %d inside transaction %d", m.Xid, d.cur.Tx.Xid)
	}
	d.inTx = true
	d.next = 0
	d.fragment = 0
	d.beginLSN = uint64(m.FinalLSN)
	d.prevLSN = d.lastCommit
	d.skipping, d.skipTo, d.skipPiece = false, 0, 0
	if d.skipSet {
		switch commit := uint64(m.FinalLSN); {
		case commit < d.skip.CommitLSN, commit == d.skip.CommitLSN && d.skip.Final:
			d.skipping = true
		case commit == d.skip.CommitLSN:
			// Part of this transaction was stored before a crash: resume
			// after its last stored change.
			d.skipTo, d.skipPiece = d.skip.Change, d.skip.Piece
			d.fragment = d.skip.Fragment + 1
		}
	}
	d.cur = d.newFragment(m.Xid, uint64(m.FinalLSN), m.CommitTime.UnixMicro())
	return nil
}

func (d *Decoder) newFragment(xid uint32, commitLSN uint64, commitTime int64) *Fragment {
	clear(d.relIdx)
	f := fragments.Get().(*Fragment)
	changes := f.Tx.Changes[:0]
	*f = Fragment{
		Tx: wire.Tx{
			Xid:           xid,
			CommitLSN:     commitLSN,
			CommitTime:    commitTime,
			Fragment:      d.fragment,
			FirstChange:   d.next,
			PrevCommitLSN: d.prevLSN,
		},
		Size: 64,
	}
	if cap(changes) == 0 {
		changes = f.firstChange[:0:1]
	}
	f.Tx.Changes = changes
	f.Rels = f.firstRel[:0:1]
	return f
}

// fragments recycles fragments whose raw message is stored (Release), so
// that a transaction costs no allocation in steady state.
var fragments = sync.Pool{New: func() any { return new(Fragment) }}

// Release hands f back for reuse by decoders. Call it once nothing refers to
// f or its changes any more: after its raw message is encoded and
// acknowledged. Only the changes' array is kept, emptied: it belongs to f
// alone, while Rels may be shared with other fragments (pieces of a change).
func (f *Fragment) Release() {
	// Drop the values, which pin their chunks. What lies beyond len is zero
	// already (cleared by the previous release, or never used): clearing up
	// to len keeps the cost per change, whatever capacity a large
	// transaction once gave the array.
	changes := f.Tx.Changes
	clear(changes)
	*f = Fragment{}
	f.Tx.Changes = changes[:0]
	fragments.Put(f)
}

func (d *Decoder) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	if !d.inTx {
		return fmt.Errorf("pgoutput: commit at %s outside a transaction", m.CommitLSN)
	}
	if uint64(m.CommitLSN) != d.beginLSN {
		return fmt.Errorf("pgoutput: commit at %s, begin announced %s", m.CommitLSN, pglogrepl.LSN(d.beginLSN))
	}
	d.inTx = false
	// Every commit, also of a transaction that leaves no record (stored
	// already, or all of its changes filtered out by the publication),
	// is what the next transaction follows: Postgres sends the commit at
	// its end LSN, the position Debezium's source.sequence names.
	d.lastCommit = uint64(m.TransactionEndLSN)
	f := d.cur
	d.cur = nil
	if d.skipping {
		f.Release()
		return nil
	}
	f.Tx.EndLSN = uint64(m.TransactionEndLSN)
	f.Tx.Final = true
	xid, commitLSN := f.Tx.Xid, f.Tx.CommitLSN
	// An empty transaction (all changes filtered out by the publication)
	// needs no record, except a final fragment that closes a split one.
	if len(f.Tx.Changes) == 0 && f.Tx.Fragment == 0 {
		f.Release()
		if d.OnEmpty != nil {
			d.OnEmpty(uint64(m.TransactionEndLSN))
		}
	} else if err := d.emit(ctx, f); err != nil {
		return err
	}
	if d.obs != nil {
		return d.obs.Committed(ctx, xid, commitLSN, uint64(m.TransactionEndLSN))
	}
	return nil
}

// relation describes a relation Postgres announces: as pgoutput sends it,
// with its user-defined types and what the catalog says of its columns,
// read now (Postgres sends a relation message before the first change of
// a table in a session and after DDL on it). The catalog is read as it is
// when the message is received, which can be later than the change that
// caused it, as Debezium reads it (PgOutputMessageDecoder).
func (d *Decoder) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	r := &wire.Relation{
		ID:              m.RelationID,
		Schema:          m.Namespace,
		Table:           m.RelationName,
		ReplicaIdentity: m.ReplicaIdentity,
		Columns:         make([]wire.Column, len(m.Columns)),
	}
	var fresh []uint32 // enums whose labels were read for this message
	for i, c := range m.Columns {
		col := wire.Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier, Key: c.Flags&1 != 0}
		if c.DataType >= firstUserOID {
			t, err := d.typeInfo(ctx, c.DataType, !slices.Contains(fresh, c.DataType))
			if t.IsEnum() {
				fresh = append(fresh, c.DataType)
			}
			if err != nil {
				return err
			}
			col.Type = t.Info
			col.TypeMod = t.ColumnTypeMod(col.TypeMod)
		}
		r.Columns[i] = col
	}
	if d.catalog != nil {
		facts, err := d.catalog.Relation(ctx, m.RelationID)
		if err != nil {
			return fmt.Errorf("pgoutput: relation %s.%s: %w", m.Namespace, m.RelationName, err)
		}
		facts.Fill(r)
	}
	d.setRelation(r)
	return nil
}

// setRelation makes r the description of its relation. A new pointer,
// never an update in place: fragments already queued keep the metadata
// that was valid for their changes.
func (d *Decoder) setRelation(r *wire.Relation) {
	if old, ok := d.rels[r.ID]; ok {
		delete(d.enums, old)
	}
	d.rels[r.ID] = r
	if cols := enumColumns(r); cols != nil {
		d.enums[r] = cols
	}
}

// Memory per change and per value beyond the value bytes: the Change struct,
// Value headers and allocator rounding (measured, rounded up).
const (
	changeOverhead = 160
	valueOverhead  = 40
)

// RowSize estimates what a change of row values holds in a fragment, as the
// decoder counts its own rows: what snapshot reads use to size theirs.
func RowSize(values []wire.Value) int {
	n := changeOverhead
	for i := range values {
		n += valueOverhead + len(values[i].Data)
	}
	return n
}

// firstUserOID is FirstNormalObjectId: OIDs below are built in.
const firstUserOID = 16384

// typeInfo describes the user-defined type oid, from the cache unless
// fresh asks for an enum's labels as they are now: they are read again for
// each relation message, as the other facts of the catalog are.
func (d *Decoder) typeInfo(ctx context.Context, oid uint32, fresh bool) (pgtypes.Type, error) {
	if t, ok := d.types[oid]; ok && !(fresh && t.IsEnum()) {
		return t, nil
	}
	if d.catalog == nil {
		return pgtypes.Type{DomainTypeMod: -1}, nil
	}
	t, err := d.catalog.Type(ctx, oid)
	if err != nil {
		return pgtypes.Type{}, fmt.Errorf("resolve type %d: %w", oid, err)
	}
	d.types[oid] = t
	return t, nil
}

func (d *Decoder) rel(id uint32) (*wire.Relation, error) {
	r, ok := d.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput: change for relation %d before its relation message", id)
	}
	return r, nil
}

// row adds a row change at lsn (its XLogData's WAL start).
func (d *Decoder) row(ctx context.Context, lsn uint64, m rowMsg) error {
	if !d.inTx {
		return fmt.Errorf("pgoutput: %s outside a transaction", m.op)
	}
	r, err := d.rel(m.relID)
	if err != nil {
		return err
	}
	if len(m.old) > len(r.Columns) || len(m.new) > len(r.Columns) {
		return fmt.Errorf("pgoutput: %s on %s.%s has more values than its %d columns", m.op, r.Schema, r.Table, len(r.Columns))
	}
	if cols, ok := d.enums[r]; ok {
		if r, err = d.checkLabels(ctx, r, cols, m.old, m.new); err != nil {
			return err
		}
	}
	c := wire.Change{Op: m.op, OldKind: m.oldKind, Old: m.old, New: m.new, LSN: lsn}
	if d.obs != nil && !d.skipping {
		d.obs.Row(d.cur.Tx.Xid, r, &c)
	}
	return d.add(ctx, c, changeOverhead+m.size, r)
}

func (d *Decoder) truncate(ctx context.Context, lsn uint64, m *pglogrepl.TruncateMessage) error {
	if !d.inTx {
		return errors.New("pgoutput: truncate outside a transaction")
	}
	rels := make([]*wire.Relation, len(m.RelationIDs))
	for i, id := range m.RelationIDs {
		r, err := d.rel(id)
		if err != nil {
			return err
		}
		rels[i] = r
	}
	c := wire.Change{Op: wire.OpTruncate, TruncateOptions: m.Option, LSN: lsn}
	if d.obs != nil && !d.skipping {
		d.obs.Truncate(d.cur.Tx.Xid, rels)
	}
	return d.add(ctx, c, changeOverhead+8*len(rels), rels...)
}

func (d *Decoder) message(ctx context.Context, walStart uint64, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Prefix == wire.HeartbeatPrefix {
		// Written only to move the slot: its transaction commits empty (see
		// OnEmpty). A non-transactional one (an older pgjet, or a user's)
		// stands alone at its LSN.
		if !m.Transactional && !d.inTx && d.OnEmpty != nil {
			d.OnEmpty(uint64(m.LSN))
		}
		return nil
	}
	if d.obs != nil && d.obs.Intercepts(m.Prefix) {
		return d.intercept(ctx, walStart, m)
	}
	// pglogrepl's Content points into the receive buffer, reused by the
	// next receive: copy it.
	content := append([]byte(nil), m.Content...)
	lsn := uint64(m.LSN)
	if lsn == 0 {
		lsn = walStart
	}
	c := wire.Change{Op: wire.OpMessage, Prefix: m.Prefix, Content: content, Transactional: m.Transactional, LSN: lsn}
	size := changeOverhead + len(m.Prefix) + len(m.Content)
	if m.Transactional {
		if !d.inTx {
			return errors.New("pgoutput: transactional message outside a transaction")
		}
		return d.add(ctx, c, size)
	}
	// A non-transactional message stands alone at its own LSN, which orders it
	// among commits in the stream. It has no commit, so no commit time:
	// its time is when it was received, so that consumers see when it
	// happened rather than 1970. Standing alone, it is also what the next
	// transaction follows, as Debezium counts it (its commitMessage for a
	// message that is the last event at its LSN).
	at := d.now().UnixMicro()
	prev := d.lastCommit
	d.lastCommit = lsn
	if d.skipSet && (lsn < d.skip.CommitLSN || lsn == d.skip.CommitLSN && d.skip.Final) {
		return nil
	}
	base := wire.Tx{CommitLSN: lsn, EndLSN: lsn, CommitTime: at, PrevCommitLSN: prev}
	if d.skipSet && lsn == d.skip.CommitLSN {
		// Some of its pieces are stored.
		c.Rel = -1
		base.Fragment = d.skip.Fragment + 1
		_, err := d.emitPieces(ctx, base, c, nil, d.skip.Piece, true)
		return err
	}
	if size > d.maxFragment {
		c.Rel = -1
		_, err := d.emitPieces(ctx, base, c, nil, 0, true)
		return err
	}
	base.Final, base.Changes = true, []wire.Change{c}
	return d.emit(ctx, &Fragment{Tx: base, Size: 64 + size})
}

// intercept hands an observer's message to it, unless its transaction is
// stored already (then it was handled before).
func (d *Decoder) intercept(ctx context.Context, walStart uint64, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Transactional {
		if !d.inTx {
			return errors.New("pgoutput: transactional message outside a transaction")
		}
		if d.skipping {
			return nil
		}
		return d.obs.Message(ctx, d.cur.Tx.Xid, d.beginLSN, m)
	}
	lsn := uint64(m.LSN)
	if lsn == 0 {
		lsn = walStart
	}
	if d.skipSet && (lsn < d.skip.CommitLSN || lsn == d.skip.CommitLSN && d.skip.Final) {
		return nil
	}
	return d.obs.Message(ctx, 0, lsn, m)
}

// add appends a change to the current fragment, first emitting the fragment
// if the change would make it too large.
func (d *Decoder) add(ctx context.Context, c wire.Change, size int, rels ...*wire.Relation) error {
	index := d.next
	d.next++
	if d.skipping || index < d.skipTo {
		return nil
	}
	relSize := 0
	for _, r := range rels {
		if _, ok := d.relIdx[r]; !ok {
			relSize += RelationSize(r)
		}
	}
	if d.cur.Size+size+relSize > d.maxFragment && len(d.cur.Tx.Changes) > 0 {
		full := d.cur
		d.fragment++
		d.cur = d.newFragment(full.Tx.Xid, full.Tx.CommitLSN, full.Tx.CommitTime)
		d.cur.Tx.Origin = full.Tx.Origin
		d.cur.Tx.FirstChange = index
		if err := d.emit(ctx, full); err != nil {
			return err
		}
		relSize = 0
		for _, r := range rels {
			relSize += RelationSize(r)
		}
	}
	if from := d.pieceFrom(index); from > 0 || d.cur.Size+size+relSize > d.maxFragment {
		// Alone and still too large, or partly stored in pieces already.
		return d.addPieces(ctx, c, index, rels, from)
	}
	c = d.withRels(c, rels)
	if len(d.cur.Tx.Changes) == 0 {
		// Changes before index may have been skipped (already stored).
		d.cur.Tx.FirstChange = index
	}
	d.cur.Tx.Changes = append(d.cur.Tx.Changes, c)
	d.cur.Size += size + relSize
	return nil
}

// withRels sets the relation indexes of c, adding rels to the current
// fragment.
func (d *Decoder) withRels(c wire.Change, rels []*wire.Relation) wire.Change {
	switch c.Op {
	case wire.OpInsert, wire.OpUpdate, wire.OpDelete:
		c.Rel = d.index(rels[0])
	case wire.OpTruncate:
		c.TruncateRels = make([]int32, len(rels))
		for i, r := range rels {
			c.TruncateRels[i] = d.index(r)
		}
	default:
		c.Rel = -1
	}
	return c
}

// pieceFrom returns where the pieces of change index resume, or 0.
func (d *Decoder) pieceFrom(index uint64) uint64 {
	if index == d.skipTo {
		return d.skipPiece
	}
	return 0
}

// addPieces emits change index, alone in the empty current fragment, in
// pieces from byte from of its encoding.
func (d *Decoder) addPieces(ctx context.Context, c wire.Change, index uint64, rels []*wire.Relation, from uint64) error {
	c = d.withRels(c, rels)
	tx := d.cur.Tx
	tx.FirstChange = index
	n, err := d.emitPieces(ctx, tx, c, d.cur.Rels, from, false)
	if err != nil {
		return err
	}
	d.fragment += n
	d.cur = d.newFragment(tx.Xid, tx.CommitLSN, tx.CommitTime)
	d.cur.Tx.Origin = tx.Origin
	d.cur.Tx.FirstChange = index + 1
	return nil
}

// pieceOverhead is what a piece's raw message holds besides the piece and
// the relations: headers of the message, source and transaction.
const pieceOverhead = 1024

// emitPieces emits c in pieces (EmitPieces) through d's emitter.
func (d *Decoder) emitPieces(ctx context.Context, base wire.Tx, c wire.Change, rels []*wire.Relation, from uint64, final bool) (uint32, error) {
	version := wire.Version
	if from > 0 {
		var err error
		if version, err = pieceLayout(&c, d.skip, base); err != nil {
			return 0, err
		}
	}
	return EmitPieces(ctx, d.emit, d.maxFragment, version, base, c, rels, from, final)
}

// pieceLayout is the format version whose layout the stored pieces of c
// began in: the one whose encoding has the stored total length, since
// pieces a collector of an older version began are completed in its
// layout, whatever version the records that carry them are. A position
// without the total (a record of a collector before it was kept) is
// taken at its record's version.
func pieceLayout(c *wire.Change, skip wire.Position, base wire.Tx) (int, error) {
	if skip.PieceTotal == 0 {
		if skip.Version >= wire.OldestVersion {
			return skip.Version, nil
		}
		return wire.Version, nil
	}
	for v := wire.Version; v >= wire.OldestVersion; v-- {
		n, err := wire.ChangeSize(c, v)
		if err != nil {
			return 0, err
		}
		if n == skip.PieceTotal {
			return v, nil
		}
	}
	return 0, fmt.Errorf("pgoutput: change %d of the transaction at %s: its stored pieces total %d bytes, which no format version's encoding of it has: the change differs from the one stored",
		base.FirstChange, pglogrepl.LSN(base.CommitLSN), skip.PieceTotal)
}

// EmitPieces emits c as fragments of at most about maxFragment bytes, each
// holding a consecutive byte range of its encoding in the layout of format
// version, starting at byte from, numbered from base.Fragment on. final
// marks the last one Final (a non-transactional message is its own
// transaction). It returns how many fragments it emitted.
func EmitPieces(ctx context.Context, emit Emitter, maxFragment, version int, base wire.Tx, c wire.Change, rels []*wire.Relation, from uint64, final bool) (uint32, error) {
	total, err := wire.ChangeSize(&c, version)
	if err != nil {
		return 0, err
	}
	if from >= total {
		return 0, fmt.Errorf("pgoutput: change %d of the transaction at %s is %d bytes encoded, but its pieces stored up to byte %d: the change differs from the one stored",
			base.FirstChange, pglogrepl.LSN(base.CommitLSN), total, from)
	}
	relSize := 0
	for _, r := range rels {
		relSize += RelationSize(r)
	}
	var n uint32
	err = wire.CutChange(&c, version, from, max(maxFragment-relSize-pieceOverhead, 1024), func(off uint64, piece []byte) error {
		end := off + uint64(len(piece))
		f := &Fragment{Tx: base, Rels: rels, Size: pieceOverhead + relSize + cap(piece)}
		f.Tx.Fragment = base.Fragment + n
		f.Tx.PieceOffset, f.Tx.PieceTotal = off, total
		f.Tx.Final = final && end == total
		if !f.Tx.Final {
			f.Tx.EndLSN = 0
		}
		f.Tx.Changes = []wire.Change{{Op: c.Op, Rel: c.Rel, TruncateRels: c.TruncateRels, Content: piece}}
		if err := emit(ctx, f); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

func (d *Decoder) index(r *wire.Relation) int32 {
	if i, ok := d.relIdx[r]; ok {
		return i
	}
	i := int32(len(d.cur.Rels))
	d.cur.Rels = append(d.cur.Rels, r)
	d.relIdx[r] = i
	return i
}

// RelationSize estimates the bytes a relation takes in a fragment.
func RelationSize(r *wire.Relation) int {
	n := 32 + len(r.Schema) + len(r.Table)
	for i := range r.Columns {
		c := &r.Columns[i]
		n += 32 + len(c.Name) + len(c.Type.Schema) + len(c.Type.Name) + len(c.Default)
		for _, l := range c.Type.Labels {
			n += 8 + len(l)
		}
	}
	return n
}
