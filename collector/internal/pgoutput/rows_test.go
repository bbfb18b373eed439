package pgoutput

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/pgjet/pgjet/shared/wire"
)

// pglogreplRow parses a row message with pglogrepl, the reference readRow
// must agree with. ok is false when pglogrepl rejects or panics on it.
func pglogreplRow(data []byte) (r rowMsg, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	m, err := pglogrepl.Parse(data)
	if err != nil {
		return r, false
	}
	vals := func(t *pglogrepl.TupleData) []wire.Value {
		if t == nil {
			return nil
		}
		vs := make([]wire.Value, len(t.Columns))
		for i, c := range t.Columns {
			vs[i] = wire.Value{Kind: c.DataType, Data: c.Data}
		}
		return vs
	}
	switch m := m.(type) {
	case *pglogrepl.InsertMessage:
		return rowMsg{op: wire.OpInsert, relID: m.RelationID, new: vals(m.Tuple)}, true
	case *pglogrepl.UpdateMessage:
		return rowMsg{op: wire.OpUpdate, relID: m.RelationID, oldKind: m.OldTupleType, old: vals(m.OldTuple), new: vals(m.NewTuple)}, true
	case *pglogrepl.DeleteMessage:
		return rowMsg{op: wire.OpDelete, relID: m.RelationID, oldKind: m.OldTupleType, old: vals(m.OldTuple)}, true
	}
	return r, false
}

// sameRow compares everything but size; for text and binary values also
// that an empty value is not nil (the raw encoding keeps the difference).
func sameRow(t *testing.T, got, want rowMsg) {
	t.Helper()
	if got.op != want.op || got.relID != want.relID || got.oldKind != want.oldKind {
		t.Fatalf("got op %v rel %d old kind %q, pglogrepl %v %d %q", got.op, got.relID, got.oldKind, want.op, want.relID, want.oldKind)
	}
	for _, p := range []struct {
		name      string
		got, want []wire.Value
	}{{"old", got.old, want.old}, {"new", got.new, want.new}} {
		if len(p.got) != len(p.want) {
			t.Fatalf("%s: %d values, pglogrepl %d", p.name, len(p.got), len(p.want))
		}
		for i := range p.got {
			g, w := p.got[i], p.want[i]
			if g.Kind != w.Kind || !bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
				t.Fatalf("%s value %d: got %q %q (nil %v), pglogrepl %q %q (nil %v)", p.name, i, g.Kind, g.Data, g.Data == nil, w.Kind, w.Data, w.Data == nil)
			}
		}
	}
}

func binaryValue(m msg, v []byte) msg { return append(m.u8('b').u32(uint32(len(v))), v...) }

func TestRowsMatchPglogrepl(t *testing.T) {
	big := strings.Repeat("x", byteChunk) // larger than a chunk share: its own allocation
	for _, tc := range []struct {
		name string
		m    msg
	}{
		{"insert", insert(7, "1", "hello", "<null>", "<toast>", "")},
		{"insert binary", binaryValue(msg{'I'}.u32(7).u8('N').u16(2), []byte{0, 1, 2}).u8('n')},
		{"insert large value", insert(9, "1", big)},
		{"update new only", update(7, nil, "1", "<toast>")},
		{"update old full", update(7, []string{"1", "old", "<null>"}, "1", "new", "")},
		{"update old key", tuple(tuple(msg{'U'}.u32(7).u8('K'), "1").u8('N'), "2", "v")},
		{"delete key", del(7, "1")},
		{"delete old full", tuple(msg{'D'}.u32(7).u8('O'), "1", "<null>", "x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(nil, nil, 1<<20)
			got, err := d.readRow(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := pglogreplRow(tc.m)
			if !ok {
				t.Fatal("pglogrepl rejects the message")
			}
			sameRow(t, got, want)
		})
	}
}

// A table can have no columns (CREATE TABLE t ()); pglogrepl refuses the
// 7-byte insert Postgres sends for it, wanting at least 8.
func TestInsertWithoutColumns(t *testing.T) {
	d := New(nil, nil, 1<<20)
	r, err := d.readRow(insert(7))
	if err != nil || r.op != wire.OpInsert || r.relID != 7 || len(r.new) != 0 {
		t.Fatalf("got %+v, %v", r, err)
	}
}

// Values must not share bytes: the next change's values are copied right
// after, into the same chunk.
func TestRowValuesDoNotOverlap(t *testing.T) {
	d := New(nil, nil, 1<<20)
	a, err := d.readRow(insert(1, "aaaa", "bbbb"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.readRow(insert(1, "cccc", "dddd"))
	if err != nil {
		t.Fatal(err)
	}
	a.new[0].Data = append(a.new[0].Data, "XX"...)
	a.new = append(a.new, wire.Value{Kind: 't', Data: []byte("YY")})
	if string(a.new[1].Data) != "bbbb" || string(b.new[0].Data) != "cccc" || b.new[0].Kind != 't' {
		t.Fatalf("appending to one change's values wrote into another's: %q %q %q", a.new[1].Data, b.new[0].Data, b.new[0].Kind)
	}
}

func TestRowsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    msg
		want string
	}{
		{"short header", msg{'I'}.u32(1), "too short"},
		{"insert without N", tuple(msg{'I'}.u32(1).u8('K'), "1"), "want 'N'"},
		{"update without N after the old tuple", tuple(tuple(msg{'U'}.u32(1).u8('O'), "1").u8('X'), "1"), "want 'N'"},
		{"update old tuple then nothing", tuple(msg{'U'}.u32(1).u8('O'), "1"), "too short"},
		{"delete without old tuple", tuple(msg{'D'}.u32(1).u8('N'), "1"), "want 'K' or 'O'"},
		{"column count beyond the bytes", msg{'I'}.u32(1).u8('N').u16(60000).u8('n'), "60000 columns"},
		{"value length beyond the bytes", msg{'I'}.u32(1).u8('N').u16(1).u8('t').u32(1 << 30), "left"},
		{"value length cut", msg{'I'}.u32(1).u8('N').u16(1).u8('t').u8(0), "too short"},
		{"more columns than announced", insert(1, "1").u8('n'), "after the last tuple"},
		{"fewer columns than announced", msg{'I'}.u32(1).u8('N').u16(2).u8('t').u32(0), "too short"},
		{"unknown value kind", msg{'I'}.u32(1).u8('N').u16(1).u8('z'), "unknown value kind"},
		{"trailing bytes", insert(1, "1").u8(0), "after the last tuple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(nil, nil, 1<<20)
			_, err := d.readRow(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzRowsMatchPglogrepl: whatever readRow accepts, pglogrepl decodes the
// same way. (readRow may reject what pglogrepl lets through: unknown value
// kinds, trailing bytes, a missing 'N'.)
func FuzzRowsMatchPglogrepl(f *testing.F) {
	for _, m := range []msg{
		insert(1, "1", "x", "<null>", "<toast>", ""), update(1, []string{"1", "x"}, "1", "<toast>"),
		update(1, nil, "2"), del(1, "1"), tuple(msg{'D'}.u32(1).u8('O'), "1", "<null>"),
		binaryValue(msg{'I'}.u32(7).u8('N').u16(1), []byte{0, 1}),
	} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || (data[0] != 'I' && data[0] != 'U' && data[0] != 'D') {
			return
		}
		d := New(nil, nil, 1<<20)
		got, err := d.readRow(data)
		if err != nil {
			return
		}
		want, ok := pglogreplRow(data)
		if !ok && data[0] == 'I' && len(data) == 8 {
			return // an insert without columns: see TestInsertWithoutColumns
		}
		if !ok {
			t.Fatalf("readRow accepts %x, pglogrepl does not", data)
		}
		sameRow(t, got, want)
	})
}
