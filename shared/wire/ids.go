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
// last (inclusive): a retried publish of the same content dedupes.
func RawMsgID(s Source, first, last Position) string {
	b := make([]byte, 0, 96)
	b = s.AppendID(b)
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
//	<source id>:<commit lsn, hex>:<change index>[.<part>][:dlq]
//
// part numbers the events of a truncate of several tables (one per table);
// ":dlq" marks the dead letter of an event. Stable across batching, retries,
// restarts and replays; AppendEventID writes them and ParseEventID reads them.

// DeadLetterSuffix ends the id of a dead letter: the event's id + suffix.
const DeadLetterSuffix = ":dlq"

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

// EventID is a parsed event id.
type EventID struct {
	Source     string // Source.ID()
	CommitLSN  uint64
	Index      uint64
	Part       int // -1 for none
	DeadLetter bool
}

// ParseEventID parses an id AppendEventID wrote, with or without
// DeadLetterSuffix.
func ParseEventID(id string) (EventID, bool) {
	var e EventID
	id, e.DeadLetter = strings.CutSuffix(id, DeadLetterSuffix)
	rest, idx, ok := cutLast(id, ':')
	if !ok {
		return e, false
	}
	source, lsnHex, ok := cutLast(rest, ':')
	if !ok || source == "" {
		return e, false
	}
	e.Source, e.Part = source, -1
	var err error
	if e.CommitLSN, err = strconv.ParseUint(lsnHex, 16, 64); err != nil {
		return e, false
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
