// Package wire defines the raw record format that the collector writes to the
// raw JetStream stream and the router reads back: decoded pgoutput
// transactions, batched, encoded as msgpack.
//
// Every Message is self-contained: it carries the metadata of each relation its
// changes refer to, so a router can decode any message alone. That is what makes
// replay from an arbitrary stream position possible.
//
// Compatibility: structs are msgpack arrays (compact and fast), and the
// msgpack decoder rejects an array with a different number of fields. So any
// change to any struct here bumps Version. Version is the first element of a
// Message and is read before the rest, so that a reader meeting a newer
// format says so instead of failing on the layout. A reader also reads every
// version from OldestVersion on: during a rolling upgrade a router of this
// version reads what a collector of the previous one wrote, and a router of
// the previous version stops at the first newer record with one line
// (TestOlderReader), never with a wrong event.
//
// Versions:
//
//	2  transactions of changes
//	3  snapshot reads (OpRead) in transactions marked by Tx.Snapshot;
//	   each change's own LSN and the previous commit's (Change.LSN,
//	   Tx.PrevCommitLSN); what the catalog says of a relation's columns
//	   (Relation.Catalog: NOT NULL, default, primary key) and an enum's
//	   labels (TypeInfo.Labels)
//	4  the 64-bit id of the transaction an initial snapshot was read in
//	   (Snapshot.Xid)
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the format version written by this code.
const Version = 4

// OldestVersion is the oldest format version this code reads.
const OldestVersion = 2

// Op is the kind of a change.
type Op uint8

const (
	OpInsert   Op = 1
	OpUpdate   Op = 2
	OpDelete   Op = 3
	OpTruncate Op = 4
	// OpMessage is a logical decoding message (pg_logical_emit_message).
	OpMessage Op = 5
	// OpRead is a row as a snapshot or a backfill read it: New holds the
	// row, Old is empty. Only in a transaction whose Snapshot is set.
	OpRead Op = 6
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	case OpMessage:
		return "message"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Value kinds, as pgoutput sends them.
const (
	KindNull      byte = 'n'
	KindUnchanged byte = 'u' // unchanged TOAST value: unknown, not NULL
	KindText      byte = 't'
	KindBinary    byte = 'b'
)

// Old tuple kinds of updates and deletes.
const (
	OldNone byte = 0
	OldKey  byte = 'K' // only replica identity columns are set; the rest are NULL
	OldFull byte = 'O' // REPLICA IDENTITY FULL: the whole old row
)

// Truncate option flags, as pgoutput sends them.
const (
	TruncateCascade         uint8 = 1
	TruncateRestartIdentity uint8 = 2
)

// Message is one raw JetStream message: one or more transaction fragments of
// one source, in commit order.
type Message struct {
	_msgpack struct{} `msgpack:",as_array"`

	Version int
	// Source identifies the origin database and replication stream.
	Source Source
	// Relations referenced by the changes in Txs, by index.
	Relations []Relation
	Txs       []Tx
}

// Source names where changes come from. SystemID and Timeline make ids unique
// across restores and promotions of the database.
type Source struct {
	_msgpack struct{} `msgpack:",as_array"`

	Name     string // --source, defaults to the slot name
	SystemID uint64
	Timeline int32
	Database string
	Slot     string
}

// Tx is a whole transaction (Fragment 0, Final) or one fragment of a large one.
type Tx struct {
	_msgpack struct{} `msgpack:",as_array"`

	Xid uint32
	// CommitLSN is the LSN of the commit record; it orders transactions.
	CommitLSN uint64
	// EndLSN is the end of the commit record: the position to confirm.
	EndLSN uint64
	// CommitTime in microseconds since the Unix epoch (UTC); integers, not
	// time.Time, so that no time zone sneaks into the encoding.
	CommitTime int64
	Origin     string
	Fragment   uint32
	Final      bool
	// FirstChange is the index within the transaction of Changes[0].
	FirstChange uint64
	Changes     []Change
	// PieceTotal is zero, except in a fragment that carries a piece of one
	// change too large for a raw message (JetStream stores at most 32 MiB
	// per message, and a single Postgres value can reach 1 GB). Such a
	// fragment holds exactly one Change, with Op and Rel set and Content
	// holding bytes [PieceOffset, PieceOffset+len(Content)) of the change's
	// encoding (EncodeChange); PieceTotal is the length of that encoding.
	// Offsets rather than piece numbers, so that a collector restarted with
	// another message size resumes exactly where the stored pieces end.
	PieceOffset uint64
	PieceTotal  uint64
	// Snapshot is nil for a transaction of changes. Set, the transaction is
	// a synthetic one holding snapshot reads (OpRead), placed where the
	// snapshot's rows belong among the changes (see Snapshot).
	Snapshot *Snapshot
	// PrevCommitLSN is where the transaction before this one ended: the end
	// LSN of the last commit the collector received before this
	// transaction's (Postgres sends a commit at that position), or the LSN
	// of a non-transactional message received since, which stands alone
	// as its own commit. Debezium's source.sequence starts with it. Zero
	// when unknown: the first transaction of a source, and records of
	// version 2. A transaction of reads has it too: a backfill chunk the
	// end of the watermark commit it follows, so that a position after the
	// chunk (Position.LastCommit) knows what the next transaction follows;
	// the initial snapshot's reads follow nothing (0).
	PrevCommitLSN uint64
}

// Snapshot describes a transaction of reads. Its CommitLSN is a position
// no WAL record can have: WAL records start on 8-byte boundaries, and a
// snapshot takes an odd position next to one. An initial snapshot is one
// transaction at the slot's consistent point minus one, before every change
// the slot streams; a backfill chunk is one transaction at its high
// watermark's commit LSN plus one, just after the changes the chunk was
// read among. Its EndLSN is 0: it confirms nothing to Postgres.
type Snapshot struct {
	_msgpack struct{} `msgpack:",as_array"`

	Kind SnapshotKind
	// ID names the snapshot or backfill in progress reports and status.
	ID string
	// Marks say which of this fragment's changes are first or last of their
	// table or of the whole snapshot (SnapshotFirst...).
	Marks uint8
	// Sinks, when not empty, are the only sinks (routes, by id) that take
	// these reads: a backfill aimed at some consumers leaves the others'
	// outputs unchanged.
	Sinks []string
	// Xid is the id of the transaction the rows were read in, with its
	// epoch (pg_current_xact_id: Debezium's source.txId of a snapshot
	// record), Tx.Xid its low 32 bits; 0 for none (a backfill, or a
	// snapshot read on a standby, which gives none).
	Xid uint64
}

// SnapshotKind says how reads were taken.
type SnapshotKind uint8

const (
	// SnapshotInitial: read from the slot's exported snapshot, at its
	// consistent point.
	SnapshotInitial SnapshotKind = 1
	// SnapshotIncremental: a backfill chunk, read between watermarks while
	// changes streamed.
	SnapshotIncremental SnapshotKind = 2
)

func (k SnapshotKind) String() string {
	switch k {
	case SnapshotInitial:
		return "initial"
	case SnapshotIncremental:
		return "incremental"
	}
	return fmt.Sprintf("snapshot(%d)", uint8(k))
}

// Marks of a snapshot fragment: its first change is the first row of its
// table (SnapshotFirstInTable) or of the whole snapshot (SnapshotFirst), its
// last change the last row of its table or of the snapshot.
const (
	SnapshotFirst        uint8 = 1
	SnapshotFirstInTable uint8 = 2
	SnapshotLastInTable  uint8 = 4
	SnapshotLast         uint8 = 8
)

// TakenBy reports whether the sink called sink takes the reads of s.
func (s *Snapshot) TakenBy(sink string) bool {
	if s == nil || len(s.Sinks) == 0 {
		return true
	}
	for _, n := range s.Sinks {
		if n == sink {
			return true
		}
	}
	return false
}

// IsPiece reports whether t carries a piece of a change (see PieceTotal).
func (t *Tx) IsPiece() bool { return t.PieceTotal > 0 }

// MaxChangeSize bounds PieceTotal: above Postgres's own 1 GB limit for one
// value, but not by much, so that a corrupt header cannot make a reader
// reserve unbounded memory.
const MaxChangeSize = 2 << 30

// Change is one row change, truncate or logical decoding message.
type Change struct {
	_msgpack struct{} `msgpack:",as_array"`

	Op Op
	// Rel indexes Message.Relations (insert, update, delete).
	Rel     int32
	OldKind byte
	Old     []Value
	New     []Value

	// Truncate: indexes into Message.Relations, and option flags.
	TruncateRels    []int32
	TruncateOptions uint8

	// Logical decoding message.
	Prefix        string
	Content       []byte
	Transactional bool

	// LSN is the change's own position in the WAL (the start of the
	// pgoutput message's WAL data, as Postgres sends it): within a
	// transaction it grows with each change, while CommitLSN is shared.
	// Zero in records of version 2.
	LSN uint64
}

// Value is a column value exactly as Postgres sent it.
type Value struct {
	_msgpack struct{} `msgpack:",as_array"`

	Kind byte
	Data []byte
}

// Relation describes a table at the time of the change.
type Relation struct {
	_msgpack struct{} `msgpack:",as_array"`

	ID              uint32
	Schema          string
	Table           string
	ReplicaIdentity byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []Column
	// Catalog reports that the collector read the columns' NotNull,
	// Default and PrimaryKey from the catalog when Postgres announced the
	// relation (pgoutput sends none of them). False in records of version
	// 2, and for a table dropped before it could be read.
	Catalog bool
}

// Column describes one column of a relation.
type Column struct {
	_msgpack struct{} `msgpack:",as_array"`

	Name    string
	TypeOID uint32
	// TypeMod is the column's type modifier (atttypmod, -1 for none); a
	// column of a domain type has none of its own and gets the domain's
	// (see TypeInfo.BaseOID).
	TypeMod int32
	Key     bool
	// Type describes non-builtin types (enums, domains, arrays of them), so the
	// router can decode them without asking Postgres. Zero for builtin types.
	Type TypeInfo

	// What the catalog says of the column (see Relation.Catalog).
	//
	// NotNull: the column, or its domain, is NOT NULL.
	NotNull bool
	// Default is the column's default expression as Postgres prints it
	// (pg_get_expr, under TextFormat), "" for none.
	Default string
	// PrimaryKey is the column's position (from 1) in the table's primary
	// key, or, for a table without one, in its first unique index over
	// columns only (clustered first, then by name: the index Debezium takes
	// through the JDBC driver); 0 when not in it. Key, the replica identity,
	// can name other columns: every column under REPLICA IDENTITY FULL.
	PrimaryKey uint16
}

// Equal reports whether c and o describe the same column.
func (c *Column) Equal(o *Column) bool {
	return c.Name == o.Name && c.TypeOID == o.TypeOID && c.TypeMod == o.TypeMod && c.Key == o.Key &&
		c.Type.Equal(&o.Type) && c.NotNull == o.NotNull && c.Default == o.Default && c.PrimaryKey == o.PrimaryKey
}

// EqualColumns reports whether a and b describe the same columns.
func EqualColumns(a, b []Column) bool {
	return slices.EqualFunc(a, b, func(x, y Column) bool { return x.Equal(&y) })
}

// TypeInfo describes a user-defined type, resolved from pg_type.
type TypeInfo struct {
	_msgpack struct{} `msgpack:",as_array"`

	Schema string
	Name   string
	// Kind is pg_type.typtype: 'b' base, 'e' enum, 'd' domain, 'c' composite, 'r' range.
	Kind byte
	// ElemOID is the element type of an array type (pg_type.typelem).
	ElemOID uint32
	// BaseOID is the base type of a domain (pg_type.typbasetype), through
	// domains over domains: the first type of the chain that is not one.
	BaseOID uint32
	// ElemKind is pg_type.typtype of the element type of an array.
	ElemKind byte
	// Labels are an enum's labels in their order (pg_enum.enumsortorder),
	// or those of the element type of an array of an enum.
	Labels []string
}

// Equal reports whether t and o describe the same type.
func (t *TypeInfo) Equal(o *TypeInfo) bool {
	return t.Schema == o.Schema && t.Name == o.Name && t.Kind == o.Kind && t.ElemOID == o.ElemOID &&
		t.BaseOID == o.BaseOID && t.ElemKind == o.ElemKind && slices.Equal(t.Labels, o.Labels)
}

// Marshal encodes m.
func Marshal(m *Message) ([]byte, error) {
	m.Version = Version
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode raw message: %w", err)
	}
	return b, nil
}

// Encoder encodes messages into a buffer it keeps: a publisher that sends
// one raw message at a time then allocates nothing per message. The bytes
// Marshal returns are valid until its next call.
type Encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// Marshal encodes m as the package's Marshal does, into e's buffer.
func (e *Encoder) Marshal(m *Message) ([]byte, error) {
	if e.enc == nil {
		e.enc = msgpack.NewEncoder(&e.buf)
	}
	e.buf.Reset()
	m.Version = Version
	if err := e.enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode raw message: %w", err)
	}
	return e.buf.Bytes(), nil
}

// Unmarshal decodes b into m, checking the version and internal references so
// that consumers can index Relations without further checks. The byte
// slices of m (values, message contents) alias b, which must stay unchanged
// while m is in use. A message of an older version (OldestVersion on)
// decodes as this version's, m.Version telling which it was.
func Unmarshal(b []byte, m *Message) error {
	v, err := version(b)
	if err != nil {
		return fmt.Errorf("decode raw message: %w", err)
	}
	if v > Version || v < OldestVersion {
		return fmt.Errorf("decode raw message: format version %d, this build reads %d to %d: upgrade pgjet", v, OldestVersion, Version)
	}
	r := newReader(b)
	r.version = v
	if err := r.message(m); err != nil {
		return fmt.Errorf("decode raw message: %w", err)
	}
	if err := r.end("message"); err != nil {
		return fmt.Errorf("decode raw message: %w", err)
	}
	return m.validate()
}

// version reads the first element of an encoded Message.
func version(b []byte) (int, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("not a raw message (array of %d)", n)
	}
	return d.DecodeInt()
}

func (m *Message) validate() error {
	n := int32(len(m.Relations))
	for ti := range m.Txs {
		for ci := range m.Txs[ti].Changes {
			c := &m.Txs[ti].Changes[ci]
			switch c.Op {
			case OpInsert, OpUpdate, OpDelete, OpRead:
				if c.Op == OpRead && m.Txs[ti].Snapshot == nil {
					return errors.New("decode raw message: a read outside a snapshot transaction")
				}
				if c.Rel < 0 || c.Rel >= n {
					return fmt.Errorf("decode raw message: change refers to relation %d of %d", c.Rel, n)
				}
				cols := len(m.Relations[c.Rel].Columns)
				if len(c.New) > cols || len(c.Old) > cols {
					return fmt.Errorf("decode raw message: tuple has more values than relation %s.%s has columns",
						m.Relations[c.Rel].Schema, m.Relations[c.Rel].Table)
				}
			case OpTruncate:
				for _, r := range c.TruncateRels {
					if r < 0 || r >= n {
						return fmt.Errorf("decode raw message: truncate refers to relation %d of %d", r, n)
					}
				}
			case OpMessage:
			default:
				return fmt.Errorf("decode raw message: unknown op %d", c.Op)
			}
		}
		if t := &m.Txs[ti]; t.IsPiece() {
			if len(t.Changes) != 1 || t.PieceTotal > MaxChangeSize || t.PieceOffset >= t.PieceTotal ||
				uint64(len(t.Changes[0].Content)) > t.PieceTotal-t.PieceOffset || len(t.Changes[0].Content) == 0 {
				return fmt.Errorf("decode raw message: malformed piece (offset %d, %d bytes, total %d, %d changes)",
					t.PieceOffset, pieceLen(t), t.PieceTotal, len(t.Changes))
			}
		} else if t.PieceOffset != 0 {
			return fmt.Errorf("decode raw message: piece offset %d without a total", t.PieceOffset)
		}
	}
	return nil
}

func pieceLen(t *Tx) int {
	if len(t.Changes) == 0 {
		return 0
	}
	return len(t.Changes[0].Content)
}

// LastPiece reports whether t carries the last piece of its change.
func (t *Tx) LastPiece() bool {
	return t.IsPiece() && t.PieceOffset+uint64(pieceLen(t)) == t.PieceTotal
}

// EncodeChange encodes one change on its own, the bytes that pieces carry,
// in the layout of format version (Version, or an older one whose pieces a
// restarted collector completes). The encoding is deterministic: the same
// change always gives the same bytes, which is what lets a restarted
// collector skip the stored pieces.
func EncodeChange(c *Change, version int) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.encode(msgpack.NewEncoder(&buf), version); err != nil {
		return nil, fmt.Errorf("encode change: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeChange decodes what EncodeChange wrote, the pieces of first put
// together: first is the change of the first piece, whose relation
// references index rels (the relations of the message it came in). The
// layout is told by its number of fields: pieces a collector of version 2
// began keep that version's layout to their end. The change's byte slices
// alias b.
func DecodeChange(b []byte, first *Change, rels []Relation) (Change, error) {
	var c Change
	r := newReader(b)
	if err := r.anyChange(&c); err != nil {
		return Change{}, fmt.Errorf("decode pieced change: %w", err)
	}
	if err := r.end("change"); err != nil {
		return Change{}, fmt.Errorf("decode pieced change: %w", err)
	}
	if c.Op != first.Op {
		return Change{}, fmt.Errorf("decode pieced change: op %s, its first piece says %s", c.Op, first.Op)
	}
	// The pieces' own references are the ones the relations were numbered
	// for when they were batched.
	c.Rel, c.TruncateRels = first.Rel, first.TruncateRels
	m := Message{Relations: rels, Txs: []Tx{{Changes: []Change{c}}}}
	if c.Op == OpRead {
		m.Txs[0].Snapshot = &Snapshot{}
	}
	if err := m.validate(); err != nil {
		return Change{}, fmt.Errorf("pieced change: %w", err)
	}
	return c, nil
}

// Position orders transactions and their fragments within one source.
type Position struct {
	CommitLSN uint64
	// Change is the index of the next change not yet stored within the
	// transaction at CommitLSN; meaningful only when !Final.
	Change uint64
	// Fragment is the number of the fragment that holds the change before
	// Change.
	Fragment uint32
	Final    bool
	// Piece, when not zero, is a byte offset into the encoding of change
	// Change, which travels in pieces: the bytes before it are stored.
	Piece uint64
	// Version is the format version of the record the position was read
	// from.
	Version int
	// PieceTotal, with Piece, is the length of the encoding whose first
	// Piece bytes are stored: the layout the pieces began in is the one of
	// that length (a version-3 record can carry pieces a version-2
	// collector began).
	PieceTotal uint64
	// LastCommit is where the transaction after the position follows (its
	// Tx.PrevCommitLSN): the end of the last commit at or before it.
	LastCommit uint64
}

// Last returns the position just after the last change m holds.
func (m *Message) Last() (Position, bool) {
	if len(m.Txs) == 0 {
		return Position{}, false
	}
	t := &m.Txs[len(m.Txs)-1]
	p := Position{CommitLSN: t.CommitLSN, Change: t.FirstChange + uint64(len(t.Changes)), Fragment: t.Fragment, Final: t.Final,
		Version: m.Version, LastCommit: t.PrevCommitLSN}
	if t.Final && t.EndLSN != 0 && !(len(t.Changes) == 1 && IsNotice(&t.Changes[0])) {
		// A commit, or a non-transactional message (its own commit); a
		// notice is the collector's, at a position no commit has.
		p.LastCommit = t.EndLSN
	}
	if t.IsPiece() && !t.LastPiece() {
		// The change is not complete: the position is inside it.
		p.Change, p.Piece, p.PieceTotal = t.FirstChange, t.PieceOffset+uint64(pieceLen(t)), t.PieceTotal
	}
	return p, true
}

// First returns the position of the first change m holds.
func (m *Message) First() (Position, bool) {
	if len(m.Txs) == 0 {
		return Position{}, false
	}
	t := &m.Txs[0]
	return Position{CommitLSN: t.CommitLSN, Change: t.FirstChange, Fragment: t.Fragment, Piece: t.PieceOffset}, true
}
