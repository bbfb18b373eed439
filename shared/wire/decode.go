package wire

import (
	"bytes"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// reader decodes the raw format by hand, with msgpack's Decoder reading
// from a bytes.Reader. A reader that is an io.ByteScanner gets no read-ahead
// buffer (NewDecoder's documentation), so the bytes.Reader's position is the
// decoder's. That buys two things on the router's hot path:
//   - byte strings (values, message contents) alias the input instead of
//     being copied: no allocation per value;
//   - every array header is checked against the bytes left, each element
//     taking at least one, so a corrupt header claiming billions fails
//     before anything is allocated for it, without a validating pass over
//     the whole message first.
//
// Values and changes are carved from slabs, a few allocations per message
// rather than one or two per change.
type reader struct {
	// version of the message being read: older versions' layouts differ.
	version int
	b       []byte
	rd      *bytes.Reader
	d       *msgpack.Decoder
	values  []Value
	changes []Change
}

// Slab sizes: a slab outlives the message only as long as one of its
// values or changes is referenced, and bounds the waste to this many.
const (
	valueSlab  = 512
	changeSlab = 128
)

func newReader(b []byte) *reader {
	rd := bytes.NewReader(b)
	return &reader{version: Version, b: b, rd: rd, d: msgpack.NewDecoder(rd)}
}

// fields reads an array header and insists on the field count: a layout
// this build does not know must fail, not be half read.
func (r *reader) fields(what string, want int) error {
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s has %d fields, this format has %d", what, n, want)
	}
	return nil
}

// arrayLen reads an array header: -1 for nil.
func (r *reader) arrayLen() (int, error) {
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n > r.rd.Len() {
		return 0, fmt.Errorf("array of %d elements in the %d bytes left: %w", n, r.rd.Len(), io.ErrUnexpectedEOF)
	}
	return n, nil
}

// bytes reads a byte string (bin or str) as a slice of the input, capped so
// that appending to it cannot write into the input; nil for nil.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.d.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > r.rd.Len() {
		return nil, fmt.Errorf("byte string of %d bytes in the %d bytes left: %w", n, r.rd.Len(), io.ErrUnexpectedEOF)
	}
	at := len(r.b) - r.rd.Len()
	if _, err := r.rd.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, err
	}
	return r.b[at : at+n : at+n], nil
}

func (r *reader) message(m *Message) error {
	if err := r.fields("message", 4); err != nil {
		return err
	}
	var err error
	if m.Version, err = r.d.DecodeInt(); err != nil {
		return err
	}
	if err := r.source(&m.Source); err != nil {
		return err
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	m.Relations = nil
	if n >= 0 {
		m.Relations = make([]Relation, n)
		for i := range m.Relations {
			if err := r.relation(&m.Relations[i]); err != nil {
				return err
			}
		}
	}
	if n, err = r.arrayLen(); err != nil {
		return err
	}
	m.Txs = nil
	if n >= 0 {
		m.Txs = make([]Tx, n)
		for i := range m.Txs {
			if err := r.tx(&m.Txs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) source(s *Source) error {
	if err := r.fields("source", 5); err != nil {
		return err
	}
	var err error
	if s.Name, err = r.d.DecodeString(); err != nil {
		return err
	}
	if s.SystemID, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	if s.Timeline, err = r.d.DecodeInt32(); err != nil {
		return err
	}
	if s.Database, err = r.d.DecodeString(); err != nil {
		return err
	}
	s.Slot, err = r.d.DecodeString()
	return err
}

// Field counts of relations, columns and types: version 2's, then the
// current ones.
const (
	relationFieldsV2, relationFields = 5, 6
	columnFieldsV2, columnFields     = 5, 8
	typeFieldsV2, typeFields         = 6, 7
)

func (r *reader) relation(rel *Relation) error {
	want := relationFields
	if r.version < 3 {
		want = relationFieldsV2
	}
	if err := r.fields("relation", want); err != nil {
		return err
	}
	var err error
	if rel.ID, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if rel.Schema, err = r.d.DecodeString(); err != nil {
		return err
	}
	if rel.Table, err = r.d.DecodeString(); err != nil {
		return err
	}
	if rel.ReplicaIdentity, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	rel.Columns = nil
	if n >= 0 {
		rel.Columns = make([]Column, n)
		for i := range rel.Columns {
			if err := r.column(&rel.Columns[i]); err != nil {
				return err
			}
		}
	}
	rel.Catalog = false
	if want == relationFieldsV2 {
		return nil
	}
	rel.Catalog, err = r.d.DecodeBool()
	return err
}

func (r *reader) column(c *Column) error {
	want, wantType := columnFields, typeFields
	if r.version < 3 {
		want, wantType = columnFieldsV2, typeFieldsV2
	}
	if err := r.fields("column", want); err != nil {
		return err
	}
	var err error
	if c.Name, err = r.d.DecodeString(); err != nil {
		return err
	}
	if c.TypeOID, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if c.TypeMod, err = r.d.DecodeInt32(); err != nil {
		return err
	}
	if c.Key, err = r.d.DecodeBool(); err != nil {
		return err
	}
	if err := r.fields("type", wantType); err != nil {
		return err
	}
	t := &c.Type
	if t.Schema, err = r.d.DecodeString(); err != nil {
		return err
	}
	if t.Name, err = r.d.DecodeString(); err != nil {
		return err
	}
	if t.Kind, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	if t.ElemOID, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if t.BaseOID, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if t.ElemKind, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	t.Labels, c.NotNull, c.Default, c.PrimaryKey = nil, false, "", 0
	if want == columnFieldsV2 {
		return nil
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n >= 0 {
		t.Labels = make([]string, n)
		for i := range t.Labels {
			if t.Labels[i], err = r.d.DecodeString(); err != nil {
				return err
			}
		}
	}
	if c.NotNull, err = r.d.DecodeBool(); err != nil {
		return err
	}
	if c.Default, err = r.d.DecodeString(); err != nil {
		return err
	}
	c.PrimaryKey, err = r.d.DecodeUint16()
	return err
}

func (r *reader) tx(t *Tx) error {
	want := txFields
	if r.version < 3 {
		want = txFieldsV2
	}
	if err := r.fields("transaction", want); err != nil {
		return err
	}
	var err error
	if t.Xid, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if t.CommitLSN, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	if t.EndLSN, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	if t.CommitTime, err = r.d.DecodeInt64(); err != nil {
		return err
	}
	if t.Origin, err = r.d.DecodeString(); err != nil {
		return err
	}
	if t.Fragment, err = r.d.DecodeUint32(); err != nil {
		return err
	}
	if t.Final, err = r.d.DecodeBool(); err != nil {
		return err
	}
	if t.FirstChange, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	t.Changes = nil
	if n >= 0 {
		t.Changes = r.changeSlice(n)
		for i := range t.Changes {
			if err := r.change(&t.Changes[i]); err != nil {
				return err
			}
		}
	}
	if t.PieceOffset, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	if t.PieceTotal, err = r.d.DecodeUint64(); err != nil {
		return err
	}
	t.Snapshot, t.PrevCommitLSN = nil, 0
	if want == txFieldsV2 {
		return nil
	}
	if err := r.snapshot(&t.Snapshot); err != nil {
		return err
	}
	t.PrevCommitLSN, err = r.d.DecodeUint64()
	return err
}

func (r *reader) snapshot(sp **Snapshot) error {
	n, err := r.d.DecodeArrayLen()
	if err != nil || n < 0 {
		return err // nil: a transaction of changes
	}
	want := snapshotFields
	if r.version < 4 {
		want = snapshotFieldsV3
	}
	if n != want {
		return fmt.Errorf("snapshot has %d fields, this format has %d", n, want)
	}
	s := &Snapshot{}
	kind, err := r.d.DecodeUint8()
	if err != nil {
		return err
	}
	s.Kind = SnapshotKind(kind)
	if s.ID, err = r.d.DecodeString(); err != nil {
		return err
	}
	if s.Marks, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	if n, err = r.arrayLen(); err != nil {
		return err
	}
	if n >= 0 {
		s.Sinks = make([]string, n)
		for i := range s.Sinks {
			if s.Sinks[i], err = r.d.DecodeString(); err != nil {
				return err
			}
		}
	}
	if want == snapshotFields {
		if s.Xid, err = r.d.DecodeUint64(); err != nil {
			return err
		}
	}
	*sp = s
	return nil
}

func (r *reader) change(c *Change) error {
	want := changeFields
	if r.version < 3 {
		want = changeFieldsV2
	}
	if err := r.fields("change", want); err != nil {
		return err
	}
	return r.changeFields(c, want)
}

// anyChange reads a change on its own (the pieces of one put together),
// in either layout: its number of fields tells which.
func (r *reader) anyChange(c *Change) error {
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != changeFields && n != changeFieldsV2 {
		return fmt.Errorf("change has %d fields, this format has %d", n, changeFields)
	}
	return r.changeFields(c, n)
}

// changeFields reads the fields of a change after its array header.
func (r *reader) changeFields(c *Change, fields int) error {
	op, err := r.d.DecodeUint8()
	if err != nil {
		return err
	}
	c.Op = Op(op)
	if c.Rel, err = r.d.DecodeInt32(); err != nil {
		return err
	}
	if c.OldKind, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	if c.Old, err = r.valueList(); err != nil {
		return err
	}
	if c.New, err = r.valueList(); err != nil {
		return err
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	c.TruncateRels = nil
	if n >= 0 {
		c.TruncateRels = make([]int32, n)
		for i := range c.TruncateRels {
			if c.TruncateRels[i], err = r.d.DecodeInt32(); err != nil {
				return err
			}
		}
	}
	if c.TruncateOptions, err = r.d.DecodeUint8(); err != nil {
		return err
	}
	if c.Prefix, err = r.d.DecodeString(); err != nil {
		return err
	}
	if c.Content, err = r.bytes(); err != nil {
		return err
	}
	if c.Transactional, err = r.d.DecodeBool(); err != nil {
		return err
	}
	c.LSN = 0
	if fields == changeFieldsV2 {
		return nil
	}
	c.LSN, err = r.d.DecodeUint64()
	return err
}

func (r *reader) valueList() ([]Value, error) {
	n, err := r.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	vs := r.valueSlice(n)
	for i := range vs {
		v := &vs[i]
		if err := r.fields("value", valueFields); err != nil {
			return nil, err
		}
		if v.Kind, err = r.d.DecodeUint8(); err != nil {
			return nil, err
		}
		if v.Data, err = r.bytes(); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

// valueSlice returns n zero values from the slab, capped so that an append
// to one change's values cannot overwrite the next one's.
func (r *reader) valueSlice(n int) []Value {
	if n > len(r.values) {
		r.values = make([]Value, max(n, valueSlab))
	}
	vs := r.values[:n:n]
	r.values = r.values[n:]
	return vs
}

func (r *reader) changeSlice(n int) []Change {
	if n > len(r.changes) {
		r.changes = make([]Change, max(n, changeSlab))
	}
	cs := r.changes[:n:n]
	r.changes = r.changes[n:]
	return cs
}

// end fails unless the whole input was read: trailing bytes mean a record
// that is not what its writer wrote.
func (r *reader) end(what string) error {
	if n := r.rd.Len(); n > 0 {
		return fmt.Errorf("%d bytes after the %s", n, what)
	}
	return nil
}
