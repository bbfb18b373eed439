package wire

import (
	"strconv"
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

// AppendChangeID appends the Nats-Msg-Id of one output event: source, commit
// LSN and the change's index in its transaction. Stable across batching,
// retries, restarts and replays.
func AppendChangeID(b []byte, s Source, commitLSN, change uint64) []byte {
	b = s.AppendID(b)
	b = append(b, ':')
	b = strconv.AppendUint(b, commitLSN, 16)
	b = append(b, ':')
	b = strconv.AppendUint(b, change, 10)
	return b
}
