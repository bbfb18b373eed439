package pgoutput

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pgjet/pgjet/shared/wire"
)

// Row messages (Insert, Update, Delete) are the hot path: one per change.
// They are decoded here rather than by pglogrepl.Parse, which allocates a
// message, a tuple, and a struct plus a copy per column (16 of the 17
// allocations per change measured in BenchmarkHandleBulk). Here each value is
// copied once into chunks shared by many changes, and the decoded message
// must match pglogrepl's (TestRowsMatchPglogrepl, FuzzRowsMatchPglogrepl).
// Every count and length is checked against the bytes left: a corrupt
// message is an error, never a panic or a huge allocation.

// rowMsg is a decoded row message.
type rowMsg struct {
	op      wire.Op
	relID   uint32
	oldKind byte // 'K', 'O' or 0 (wire.OldNone)
	old     []wire.Value
	new     []wire.Value
	size    int // bytes of values plus per-value overhead, for fragment sizes
}

var errShort = errors.New("message too short")

// readRow decodes data, a complete 'I', 'U' or 'D' message.
func (d *Decoder) readRow(data []byte) (rowMsg, error) {
	var r rowMsg
	if len(data) < 6 {
		return r, errShort
	}
	r.relID = binary.BigEndian.Uint32(data[1:])
	kind, b := data[5], data[6:]
	var err error
	switch data[0] {
	case 'I':
		r.op = wire.OpInsert
		if kind != 'N' {
			return r, fmt.Errorf("insert: tuple type %q, want 'N'", kind)
		}
		r.new, b, err = d.readTuple(b, &r.size)
	case 'U':
		r.op = wire.OpUpdate
		if kind == 'K' || kind == 'O' {
			r.oldKind = kind
			if r.old, b, err = d.readTuple(b, &r.size); err != nil {
				return r, err
			}
			if len(b) == 0 {
				return r, errShort
			}
			kind, b = b[0], b[1:]
		}
		if kind != 'N' {
			return r, fmt.Errorf("update: tuple type %q, want 'N'", kind)
		}
		r.new, b, err = d.readTuple(b, &r.size)
	case 'D':
		r.op = wire.OpDelete
		if kind != 'K' && kind != 'O' {
			return r, fmt.Errorf("delete: tuple type %q, want 'K' or 'O'", kind)
		}
		r.oldKind = kind
		r.old, b, err = d.readTuple(b, &r.size)
	default:
		return r, fmt.Errorf("not a row message: %q", data[0])
	}
	if err != nil {
		return r, err
	}
	if len(b) != 0 {
		return r, fmt.Errorf("%d bytes after the last tuple", len(b))
	}
	return r, nil
}

// readTuple decodes one TupleData from the start of b and returns the rest.
func (d *Decoder) readTuple(b []byte, size *int) ([]wire.Value, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	// Every column takes at least its kind byte: a count beyond what is left
	// is corrupt, not a reason to allocate.
	if n > len(b) {
		return nil, nil, fmt.Errorf("tuple of %d columns in %d bytes", n, len(b))
	}
	vs := d.arena.values(n)
	for i := range vs {
		if len(b) == 0 {
			return nil, nil, errShort
		}
		kind := b[0]
		b = b[1:]
		vs[i].Kind = kind
		switch kind {
		case 'n', 'u':
		case 't', 'b':
			if len(b) < 4 {
				return nil, nil, errShort
			}
			l := uint64(binary.BigEndian.Uint32(b))
			b = b[4:]
			if uint64(len(b)) < l {
				return nil, nil, fmt.Errorf("value of %d bytes with %d left", l, len(b))
			}
			vs[i].Data = d.arena.copy(b[:l])
			b = b[l:]
			*size += int(l)
		default:
			return nil, nil, fmt.Errorf("column %d: unknown value kind %q", i+1, kind)
		}
		*size += valueOverhead
	}
	return vs, b, nil
}

// arena hands out value slices and value bytes from shared chunks, so that a
// change costs no allocation of its own. A chunk is never reused: when full
// a new one starts, and the old one lives on as long as some fragment still
// points into it (until its raw message is published).
type arena struct {
	vals  []wire.Value
	bytes []byte
}

// Chunk sizes: large enough to serve hundreds of typical rows, small enough
// that a few straggling fragments do not pin much memory.
const (
	valueChunk = 1024
	byteChunk  = 64 << 10
)

// values returns n zeroed values, capped so that appending cannot spill into
// the next change's.
func (a *arena) values(n int) []wire.Value {
	if n > valueChunk/8 {
		return make([]wire.Value, n)
	}
	if len(a.vals)+n > cap(a.vals) {
		a.vals = make([]wire.Value, 0, valueChunk)
	}
	start := len(a.vals)
	a.vals = a.vals[:start+n]
	return a.vals[start : start+n : start+n]
}

// copy returns a copy of b that stays valid after the receive buffer b
// points into is reused.
func (a *arena) copy(b []byte) []byte {
	if len(b) == 0 {
		// Empty, not nil: an empty text value is not a missing one (the
		// encoding tells them apart).
		return []byte{}
	}
	if len(b) > byteChunk/8 {
		return append([]byte(nil), b...)
	}
	if len(a.bytes)+len(b) > cap(a.bytes) {
		a.bytes = make([]byte, 0, byteChunk)
	}
	start := len(a.bytes)
	a.bytes = append(a.bytes, b...)
	return a.bytes[start:len(a.bytes):len(a.bytes)]
}
