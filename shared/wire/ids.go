package wire

import (
	"strconv"
	"strings"
)

// ID of a source in message ids: name, system identifier and timeline, so that
// a restored or promoted database can never produce an id an older one used.
func (s Source) ID() string {
	b := make([]byte, 0, len(s.Name)+32)
	return string(s.AppendID(b))
}

// AppendID appends s.ID() to b.
func (s Source) AppendID(b []byte) []byte {
	b = append(b, s.Name...)
	b = append(b, '.')
	b = strconv.AppendUint(b, s.SystemID, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(s.Timeline), 10)
	return b
}

// RawMsgID is the Nats-Msg-Id of a raw message holding changes from first to
// last (inclusive): a retried publish of the same content dedupes. It names
// the slot too: two slots of one database decode a transaction touching
// tables of both at the same positions, and a collector must never have its
// record taken for another's duplicate (one writer per source is enforced at
// start and on every publish, but the id must not be what breaks first).
func RawMsgID(s Source, first, last Position) string {
	b := make([]byte, 0, 96+len(s.Slot))
	b = s.AppendID(b)
	b = append(b, ':')
	b = append(b, s.Slot...)
	b = append(b, ':')
	b = strconv.AppendUint(b, first.CommitLSN, 16)
	b = append(b, '.')
	b = strconv.AppendUint(b, first.Change, 10)
	b = appendPiece(b, first.Piece)
	b = append(b, '-')
	b = strconv.AppendUint(b, last.CommitLSN, 16)
	b = append(b, '.')
	b = strconv.AppendUint(b, last.Change, 10)
	b = appendPiece(b, last.Piece)
	return string(b)
}

// appendPiece tells apart the messages that carry pieces of one change.
func appendPiece(b []byte, piece uint64) []byte {
	if piece == 0 {
		return b
	}
	b = append(b, '+')
	return strconv.AppendUint(b, piece, 10)
}

// Event ids, the Nats-Msg-Id of every output event (and the id of envelopes
// that carry one):
//
//	<source id>:<commit lsn, hex>:<change index>[.<part>][:rel|:dlq|:grp|:tomb]
//	<source id>:<commit lsn, hex>:begin
//	<source id>:<commit lsn, hex>:commit
//
// part numbers the events of a truncate of several tables (one per table);
// ":rel" marks the relation event emitted just before the event at that
// position, ":dlq" the dead letter of an event, ":grp" a message grouping a
// transaction's events up to that one (its last), ":tomb" the tombstone
// that follows a delete (for consumers that compact by key); begin and
// commit are a
// transaction's own events. Stable across batching, retries, restarts and
// replays; AppendEventID and AppendTxEventID write them, ParseEventID reads
// them, and EventID.Compare orders them as the relay publishes them.

// Suffixes of event ids: the dead letter of an event, and the relation
// event that precedes one.
const (
	DeadLetterSuffix = ":dlq"
	RelationSuffix   = ":rel"
	GroupSuffix      = ":grp"
	TombstoneSuffix  = ":tomb"
)

// Marks of a transaction's own events, in place of a change index.
const (
	BeginMark  = "begin"
	CommitMark = "commit"
)

// Where an event id sits among its transaction's events.
const (
	SegBegin   = 0
	SegChanges = 1
	SegCommit  = 2
)

// AppendEventID appends the id of an event: the change at index of the
// transaction committed at commitLSN, and part >= 0 for the part-th table of
// a truncate of several (part < 0: none).
func AppendEventID(b []byte, s Source, commitLSN, index uint64, part int) []byte {
	b = s.AppendID(b)
	b = append(b, ':')
	b = strconv.AppendUint(b, commitLSN, 16)
	b = append(b, ':')
	b = strconv.AppendUint(b, index, 10)
	if part >= 0 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(part), 10)
	}
	return b
}

// AppendTxEventID appends the id of a transaction's begin or commit event
// (mark BeginMark or CommitMark).
func AppendTxEventID(b []byte, s Source, commitLSN uint64, mark string) []byte {
	b = s.AppendID(b)
	b = append(b, ':')
	b = strconv.AppendUint(b, commitLSN, 16)
	b = append(b, ':')
	return append(b, mark...)
}

// EventID is a parsed event id.
type EventID struct {
	Source    string // Source.ID()
	CommitLSN uint64
	// Seg is SegBegin, SegChanges or SegCommit; Index and Part are set for
	// SegChanges.
	Seg        int
	Index      uint64
	Part       int // -1 for none
	Relation   bool
	DeadLetter bool
	// Group: the id of a group of events, at the position of its last.
	Group bool
	// Tombstone: the tombstone just after the event at this position.
	Tombstone bool
}

// Compare orders two ids of one source as the relay publishes their
// events: by commit position, then begin, changes (a relation event just
// before the event it precedes), commit. A dead letter takes its event's
// place.
func (e EventID) Compare(o EventID) int {
	switch {
	case e.CommitLSN != o.CommitLSN:
		return cmpOrder(e.CommitLSN < o.CommitLSN)
	case e.Seg != o.Seg:
		return cmpOrder(e.Seg < o.Seg)
	case e.Index != o.Index:
		return cmpOrder(e.Index < o.Index)
	case e.Part != o.Part:
		return cmpOrder(e.Part < o.Part)
	case e.Relation != o.Relation:
		return cmpOrder(e.Relation)
	case e.Tombstone != o.Tombstone:
		return cmpOrder(!e.Tombstone)
	}
	return 0
}

func cmpOrder(less bool) int {
	if less {
		return -1
	}
	return 1
}

// ParseEventID parses an id AppendEventID or AppendTxEventID wrote, with or
// without a suffix.
func ParseEventID(id string) (EventID, bool) {
	var e EventID
	id, e.DeadLetter = strings.CutSuffix(id, DeadLetterSuffix)
	if !e.DeadLetter {
		id, e.Tombstone = strings.CutSuffix(id, TombstoneSuffix)
	}
	if !e.DeadLetter && !e.Tombstone {
		if id, e.Group = strings.CutSuffix(id, GroupSuffix); !e.Group {
			id, e.Relation = strings.CutSuffix(id, RelationSuffix)
		} else if strings.HasSuffix(id, RelationSuffix) {
			// A group ending with a relation event.
			id, e.Relation = strings.TrimSuffix(id, RelationSuffix), true
		}
	}
	rest, idx, ok := cutLast(id, ':')
	if !ok {
		return e, false
	}
	source, lsnHex, ok := cutLast(rest, ':')
	if !ok || source == "" {
		return e, false
	}
	e.Source, e.Part, e.Seg = source, -1, SegChanges
	var err error
	if e.CommitLSN, err = strconv.ParseUint(lsnHex, 16, 64); err != nil {
		return e, false
	}
	switch idx {
	case BeginMark, CommitMark:
		// A group's id takes the commit's position when it holds none of
		// the transaction's events (its last, empty part).
		if e.Relation || e.DeadLetter || e.Tombstone || e.Group && idx != CommitMark {
			return e, false
		}
		e.Seg = SegBegin
		if idx == CommitMark {
			e.Seg = SegCommit
		}
		return e, true
	}
	if i, part, has := strings.Cut(idx, "."); has {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return e, false
		}
		e.Part, idx = n, i
	}
	if e.Index, err = strconv.ParseUint(idx, 10, 64); err != nil {
		return e, false
	}
	return e, true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
