package wire

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written encoders for the types a raw message holds by the thousand
// (values, changes, transactions). They write exactly the bytes msgpack's
// reflection-based encoder writes for these array-encoded structs (a test
// holds them to that), at a fraction of the cost: no reflection, no type
// cache lookups per value. Into a bytes.Buffer (Marshal, Encoder) they
// append to the buffer directly, without a call through the encoder per
// field; into other writers (ChangeSize, CutChange) they write field by
// field. Decoding is in decode.go.

var (
	_ msgpack.CustomEncoder = (*Value)(nil)
	_ msgpack.CustomEncoder = (*Change)(nil)
	_ msgpack.CustomEncoder = (*Tx)(nil)
)

const (
	valueFields      = 2
	changeFields     = 11
	changeFieldsV2   = 10 // no LSN
	txFields         = 13
	txFieldsV2       = 11 // no Snapshot, no PrevCommitLSN
	snapshotFields   = 5
	snapshotFieldsV3 = 4 // no Xid
)

func (v *Value) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(valueFields); err != nil {
		return err
	}
	if err := e.EncodeUint8(v.Kind); err != nil {
		return err
	}
	return e.EncodeBytes(v.Data)
}

func (c *Change) EncodeMsgpack(e *msgpack.Encoder) error { return c.encode(e, Version) }

// encode writes c in the layout of format version (see EncodeChange).
func (c *Change) encode(e *msgpack.Encoder, version int) error {
	if bb, ok := e.Writer().(*bytes.Buffer); ok {
		_, err := bb.Write(appendChange(bb.AvailableBuffer(), c, version))
		return err
	}
	// Another writer (sizes, pieces) takes the change as a stream: a value
	// of a GB is never copied whole.
	n := changeFields
	if version < 3 {
		n = changeFieldsV2
	}
	if err := e.EncodeArrayLen(n); err != nil {
		return err
	}
	if err := e.EncodeUint8(uint8(c.Op)); err != nil {
		return err
	}
	if err := e.EncodeInt32(c.Rel); err != nil {
		return err
	}
	if err := e.EncodeUint8(c.OldKind); err != nil {
		return err
	}
	if err := encodeValues(e, c.Old); err != nil {
		return err
	}
	if err := encodeValues(e, c.New); err != nil {
		return err
	}
	if c.TruncateRels == nil {
		if err := e.EncodeNil(); err != nil {
			return err
		}
	} else {
		if err := e.EncodeArrayLen(len(c.TruncateRels)); err != nil {
			return err
		}
		for _, r := range c.TruncateRels {
			if err := e.EncodeInt32(r); err != nil {
				return err
			}
		}
	}
	if err := e.EncodeUint8(c.TruncateOptions); err != nil {
		return err
	}
	if err := e.EncodeString(c.Prefix); err != nil {
		return err
	}
	if err := e.EncodeBytes(c.Content); err != nil {
		return err
	}
	if err := e.EncodeBool(c.Transactional); err != nil || n == changeFieldsV2 {
		return err
	}
	return e.EncodeUint64(c.LSN)
}

func encodeValues(e *msgpack.Encoder, vs []Value) error {
	if vs == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(len(vs)); err != nil {
		return err
	}
	for i := range vs {
		if err := vs[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) EncodeMsgpack(e *msgpack.Encoder) error {
	if bb, ok := e.Writer().(*bytes.Buffer); ok {
		_, err := bb.Write(appendTx(bb.AvailableBuffer(), t))
		return err
	}
	if err := e.EncodeArrayLen(txFields); err != nil {
		return err
	}
	if err := e.EncodeUint32(t.Xid); err != nil {
		return err
	}
	if err := e.EncodeUint64(t.CommitLSN); err != nil {
		return err
	}
	if err := e.EncodeUint64(t.EndLSN); err != nil {
		return err
	}
	if err := e.EncodeInt64(t.CommitTime); err != nil {
		return err
	}
	if err := e.EncodeString(t.Origin); err != nil {
		return err
	}
	if err := e.EncodeUint32(t.Fragment); err != nil {
		return err
	}
	if err := e.EncodeBool(t.Final); err != nil {
		return err
	}
	if err := e.EncodeUint64(t.FirstChange); err != nil {
		return err
	}
	if t.Changes == nil {
		if err := e.EncodeNil(); err != nil {
			return err
		}
	} else if err := e.EncodeArrayLen(len(t.Changes)); err != nil {
		return err
	}
	for i := range t.Changes {
		if err := t.Changes[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	if err := e.EncodeUint64(t.PieceOffset); err != nil {
		return err
	}
	if err := e.EncodeUint64(t.PieceTotal); err != nil {
		return err
	}
	if err := t.Snapshot.encode(e); err != nil {
		return err
	}
	return e.EncodeUint64(t.PrevCommitLSN)
}

// encode writes s, nil for a transaction of changes: one byte for them.
func (s *Snapshot) encode(e *msgpack.Encoder) error {
	if s == nil {
		return e.EncodeNil()
	}
	if err := e.EncodeArrayLen(snapshotFields); err != nil {
		return err
	}
	if err := e.EncodeUint8(uint8(s.Kind)); err != nil {
		return err
	}
	if err := e.EncodeString(s.ID); err != nil {
		return err
	}
	if err := e.EncodeUint8(s.Marks); err != nil {
		return err
	}
	if s.Sinks == nil {
		if err := e.EncodeNil(); err != nil {
			return err
		}
	} else if err := e.EncodeArrayLen(len(s.Sinks)); err != nil {
		return err
	}
	for _, n := range s.Sinks {
		if err := e.EncodeString(n); err != nil {
			return err
		}
	}
	return e.EncodeUint64(s.Xid)
}

// The append path: the same bytes as the Encoder calls above.

func appendTx(b []byte, t *Tx) []byte {
	b = appendArrayLen(b, txFields)
	b = appendUint32(b, t.Xid)
	b = appendUint64(b, t.CommitLSN)
	b = appendUint64(b, t.EndLSN)
	b = appendInt64(b, t.CommitTime)
	b = appendString(b, t.Origin)
	b = appendUint32(b, t.Fragment)
	b = appendBool(b, t.Final)
	b = appendUint64(b, t.FirstChange)
	if t.Changes == nil {
		b = append(b, codeNil)
	} else {
		b = appendArrayLen(b, len(t.Changes))
	}
	for i := range t.Changes {
		b = appendChange(b, &t.Changes[i], Version)
	}
	b = appendUint64(b, t.PieceOffset)
	b = appendUint64(b, t.PieceTotal)
	b = appendSnapshot(b, t.Snapshot)
	return appendUint64(b, t.PrevCommitLSN)
}

func appendSnapshot(b []byte, s *Snapshot) []byte {
	if s == nil {
		return append(b, codeNil)
	}
	b = appendArrayLen(b, snapshotFields)
	b = appendUint8(b, uint8(s.Kind))
	b = appendString(b, s.ID)
	b = appendUint8(b, s.Marks)
	if s.Sinks == nil {
		b = append(b, codeNil)
	} else {
		b = appendArrayLen(b, len(s.Sinks))
	}
	for _, n := range s.Sinks {
		b = appendString(b, n)
	}
	return appendUint64(b, s.Xid)
}

func appendChange(b []byte, c *Change, version int) []byte {
	if version < 3 {
		b = appendArrayLen(b, changeFieldsV2)
	} else {
		b = appendArrayLen(b, changeFields)
	}
	b = appendUint8(b, uint8(c.Op))
	b = appendInt32(b, c.Rel)
	b = appendUint8(b, c.OldKind)
	b = appendValues(b, c.Old)
	b = appendValues(b, c.New)
	if c.TruncateRels == nil {
		b = append(b, codeNil)
	} else {
		b = appendArrayLen(b, len(c.TruncateRels))
		for _, r := range c.TruncateRels {
			b = appendInt32(b, r)
		}
	}
	b = appendUint8(b, c.TruncateOptions)
	b = appendString(b, c.Prefix)
	b = appendBytes(b, c.Content)
	b = appendBool(b, c.Transactional)
	if version < 3 {
		return b
	}
	return appendUint64(b, c.LSN)
}

func appendValues(b []byte, vs []Value) []byte {
	if vs == nil {
		return append(b, codeNil)
	}
	b = appendArrayLen(b, len(vs))
	for i := range vs {
		b = append(b, codeFixArray|valueFields, codeUint8, vs[i].Kind)
		b = appendBytes(b, vs[i].Data)
	}
	return b
}

// msgpack codes, as msgpack's Encoder writes them.
const (
	codeNil      = 0xc0
	codeFalse    = 0xc2
	codeTrue     = 0xc3
	codeBin8     = 0xc4
	codeBin16    = 0xc5
	codeBin32    = 0xc6
	codeUint8    = 0xcc
	codeUint32   = 0xce
	codeUint64   = 0xcf
	codeInt32    = 0xd2
	codeInt64    = 0xd3
	codeStr8     = 0xd9
	codeStr16    = 0xda
	codeStr32    = 0xdb
	codeArray16  = 0xdc
	codeArray32  = 0xdd
	codeFixArray = 0x90
	codeFixStr   = 0xa0
)

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, codeFixArray|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeArray16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, codeArray32), uint32(n))
}

func appendUint8(b []byte, v uint8) []byte { return append(b, codeUint8, v) }

func appendUint32(b []byte, v uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, codeUint32), v)
}

func appendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeUint64), v)
}

func appendInt32(b []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(append(b, codeInt32), uint32(v))
}

func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(v))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

func appendString(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, codeFixStr|byte(n))
	case n < 256:
		b = append(b, codeStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(n))
	}
	return append(b, s...)
}

func appendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, codeNil)
	}
	switch n := len(v); {
	case n < 256:
		b = append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeBin16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeBin32), uint32(n))
	}
	return append(b, v...)
}
