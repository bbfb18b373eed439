package wire

import "github.com/vmihailenco/msgpack/v5"

// Hand-written encoders for the types a raw message holds by the thousand
// (values, changes, transactions). They write exactly the bytes msgpack's
// reflection-based encoder writes for these array-encoded structs (a test
// holds them to that), at a fraction of the cost: no reflection, no type
// cache lookups per value. Decoding is in decode.go.

var (
	_ msgpack.CustomEncoder = (*Value)(nil)
	_ msgpack.CustomEncoder = (*Change)(nil)
	_ msgpack.CustomEncoder = (*Tx)(nil)
)

const (
	valueFields    = 2
	changeFields   = 11
	changeFieldsV2 = 10 // no LSN
	txFields       = 12
	txFieldsV2     = 11 // no PrevCommitLSN
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
	return e.EncodeUint64(t.PrevCommitLSN)
}
