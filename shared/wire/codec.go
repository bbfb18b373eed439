package wire

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written codecs for the types a raw message holds by the thousand
// (values, changes, transactions). They write exactly the bytes msgpack's
// reflection-based encoder writes for these array-encoded structs (a test
// holds them to that), at a fraction of the cost: no reflection, no type
// cache lookups per value.

var (
	_ msgpack.CustomEncoder = (*Value)(nil)
	_ msgpack.CustomDecoder = (*Value)(nil)
	_ msgpack.CustomEncoder = (*Change)(nil)
	_ msgpack.CustomDecoder = (*Change)(nil)
	_ msgpack.CustomEncoder = (*Tx)(nil)
	_ msgpack.CustomDecoder = (*Tx)(nil)
)

const (
	valueFields  = 2
	changeFields = 10
	txFields     = 11
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

func (v *Value) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := arrayLen(d, "value", valueFields); err != nil {
		return err
	}
	var err error
	if v.Kind, err = d.DecodeUint8(); err != nil {
		return err
	}
	v.Data, err = d.DecodeBytes()
	return err
}

func (c *Change) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(changeFields); err != nil {
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
	return e.EncodeBool(c.Transactional)
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

func (c *Change) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := arrayLen(d, "change", changeFields); err != nil {
		return err
	}
	op, err := d.DecodeUint8()
	if err != nil {
		return err
	}
	c.Op = Op(op)
	if c.Rel, err = d.DecodeInt32(); err != nil {
		return err
	}
	if c.OldKind, err = d.DecodeUint8(); err != nil {
		return err
	}
	if c.Old, err = decodeValues(d); err != nil {
		return err
	}
	if c.New, err = decodeValues(d); err != nil {
		return err
	}
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	c.TruncateRels = nil
	if n >= 0 {
		c.TruncateRels = make([]int32, n)
		for i := range c.TruncateRels {
			if c.TruncateRels[i], err = d.DecodeInt32(); err != nil {
				return err
			}
		}
	}
	if c.TruncateOptions, err = d.DecodeUint8(); err != nil {
		return err
	}
	if c.Prefix, err = d.DecodeString(); err != nil {
		return err
	}
	if c.Content, err = d.DecodeBytes(); err != nil {
		return err
	}
	c.Transactional, err = d.DecodeBool()
	return err
}

func decodeValues(d *msgpack.Decoder) ([]Value, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	vs := make([]Value, n)
	for i := range vs {
		if err := vs[i].DecodeMsgpack(d); err != nil {
			return nil, err
		}
	}
	return vs, nil
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
	return e.EncodeUint64(t.PieceTotal)
}

func (t *Tx) DecodeMsgpack(d *msgpack.Decoder) error {
	if err := arrayLen(d, "transaction", txFields); err != nil {
		return err
	}
	var err error
	if t.Xid, err = d.DecodeUint32(); err != nil {
		return err
	}
	if t.CommitLSN, err = d.DecodeUint64(); err != nil {
		return err
	}
	if t.EndLSN, err = d.DecodeUint64(); err != nil {
		return err
	}
	if t.CommitTime, err = d.DecodeInt64(); err != nil {
		return err
	}
	if t.Origin, err = d.DecodeString(); err != nil {
		return err
	}
	if t.Fragment, err = d.DecodeUint32(); err != nil {
		return err
	}
	if t.Final, err = d.DecodeBool(); err != nil {
		return err
	}
	if t.FirstChange, err = d.DecodeUint64(); err != nil {
		return err
	}
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	t.Changes = nil
	if n >= 0 {
		t.Changes = make([]Change, n)
		for i := range t.Changes {
			if err := t.Changes[i].DecodeMsgpack(d); err != nil {
				return err
			}
		}
	}
	if t.PieceOffset, err = d.DecodeUint64(); err != nil {
		return err
	}
	t.PieceTotal, err = d.DecodeUint64()
	return err
}

// arrayLen reads an array header and insists on the field count: a layout
// this build does not know must fail, not be half read.
func arrayLen(d *msgpack.Decoder, what string, want int) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s has %d fields, this format has %d", what, n, want)
	}
	return nil
}
