package pgoutput

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// Messages built byte by byte as pgoutput protocol version 1 sends them.
type msg []byte

func (m msg) u8(v byte) msg    { return append(m, v) }
func (m msg) u16(v uint16) msg { return binary.BigEndian.AppendUint16(m, v) }
func (m msg) u32(v uint32) msg { return binary.BigEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg { return binary.BigEndian.AppendUint64(m, v) }
func (m msg) str(s string) msg { return append(append(m, s...), 0) }

// pgEpoch: pgoutput times are microseconds since 2000-01-01.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func begin(final uint64, xid uint32, at time.Time) msg {
	return msg{'B'}.u64(final).u64(uint64(at.Sub(pgEpoch).Microseconds())).u32(xid)
}

func commit(lsn, end uint64) msg { return msg{'C'}.u8(0).u64(lsn).u64(end).u64(0) }

func relation(id uint32, schema, table string, cols ...string) msg {
	m := msg{'R'}.u32(id).str(schema).str(table).u8('d').u16(uint16(len(cols)))
	for i, c := range cols {
		flags := byte(0)
		if i == 0 {
			flags = 1 // key
		}
		m = m.u8(flags).str(c).u32(25).u32(0xFFFFFFFF)
	}
	return m
}

func tuple(m msg, vals ...string) msg {
	m = m.u16(uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case "<null>":
			m = m.u8('n')
		case "<toast>":
			m = m.u8('u')
		default:
			m = append(m.u8('t').u32(uint32(len(v))), v...)
		}
	}
	return m
}

func insert(rel uint32, vals ...string) msg { return tuple(msg{'I'}.u32(rel).u8('N'), vals...) }
func update(rel uint32, old []string, vals ...string) msg {
	m := msg{'U'}.u32(rel)
	if old != nil {
		m = tuple(m.u8('O'), old...)
	}
	return tuple(m.u8('N'), vals...)
}
func del(rel uint32, key ...string) msg { return tuple(msg{'D'}.u32(rel).u8('K'), key...) }
func truncate(opts byte, rels ...uint32) msg {
	m := msg{'T'}.u32(uint32(len(rels))).u8(opts)
	for _, r := range rels {
		m = m.u32(r)
	}
	return m
}
func message(transactional bool, lsn uint64, prefix, content string) msg {
	flags := byte(0)
	if transactional {
		flags = 1
	}
	return append(msg{'M'}.u8(flags).u64(lsn).str(prefix).u32(uint32(len(content))), content...)
}

// testCatalog describes types and relations from maps, counting reads.
type testCatalog struct {
	types     map[uint32]pgtypes.Type
	rels      map[uint32]pgtypes.Relation
	typeReads int
	relReads  int
}

func (c *testCatalog) Type(_ context.Context, oid uint32) (pgtypes.Type, error) {
	c.typeReads++
	t, ok := c.types[oid]
	if !ok {
		return pgtypes.Type{DomainTypeMod: -1}, nil
	}
	t.Info.Labels = slices.Clone(t.Info.Labels) // as read: not shared with the map
	return t, nil
}

func (c *testCatalog) Relation(_ context.Context, relid uint32) (pgtypes.Relation, error) {
	c.relReads++
	return c.rels[relid], nil
}

type sink struct{ frags []*Fragment }

func (s *sink) emit(_ context.Context, f *Fragment) error {
	s.frags = append(s.frags, f)
	return nil
}

func feed(t *testing.T, d *Decoder, msgs ...msg) {
	t.Helper()
	for i, m := range msgs {
		if err := d.Handle(context.Background(), uint64(i), m); err != nil {
			t.Fatalf("message %d (%q): %v", i, m[0], err)
		}
	}
}

func TestTransactions(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)
	received := time.Date(2026, 11, 23, 9, 0, 1, 500000000, time.UTC)
	var s sink
	d := New(s.emit, nil, 1<<20)
	d.now = func() time.Time { return received }
	feed(t, d,
		relation(1, "public", "users", "id", "name"),
		begin(0x100, 7, at),
		insert(1, "1", "ann"),
		update(1, []string{"1", "ann"}, "1", "<toast>"),
		del(1, "1", "<null>"),
		truncate(wire.TruncateCascade, 1),
		message(true, 0xF0, "outbox", "payload"),
		commit(0x100, 0x110),
		message(false, 0x120, "audit", "loose"),
		begin(0x200, 8, at), // empty transaction: no record
		commit(0x200, 0x210),
	)
	if len(s.frags) != 2 {
		t.Fatalf("got %d fragments, want 2", len(s.frags))
	}
	f := s.frags[0]
	tx := f.Tx
	if tx.Xid != 7 || tx.CommitLSN != 0x100 || tx.EndLSN != 0x110 || !tx.Final || tx.Fragment != 0 || tx.FirstChange != 0 {
		t.Errorf("tx header = %+v", tx)
	}
	if tx.CommitTime != at.UnixMicro() {
		t.Errorf("commit time = %d, want %d", tx.CommitTime, at.UnixMicro())
	}
	ops := []wire.Op{wire.OpInsert, wire.OpUpdate, wire.OpDelete, wire.OpTruncate, wire.OpMessage}
	if len(tx.Changes) != len(ops) {
		t.Fatalf("got %d changes", len(tx.Changes))
	}
	for i, op := range ops {
		if tx.Changes[i].Op != op {
			t.Errorf("change %d op = %s, want %s", i, tx.Changes[i].Op, op)
		}
	}
	if len(f.Rels) != 1 || f.Rels[0].Table != "users" || !f.Rels[0].Columns[0].Key || f.Rels[0].Columns[1].Key {
		t.Errorf("relations = %+v", f.Rels)
	}
	up := tx.Changes[1]
	if up.OldKind != wire.OldFull || string(up.Old[1].Data) != "ann" || up.New[1].Kind != wire.KindUnchanged {
		t.Errorf("update = %+v", up)
	}
	if d := tx.Changes[2]; d.OldKind != wire.OldKey || d.Old[1].Kind != wire.KindNull {
		t.Errorf("delete = %+v", d)
	}
	if tr := tx.Changes[3]; tr.TruncateOptions != wire.TruncateCascade || len(tr.TruncateRels) != 1 || tr.TruncateRels[0] != 0 {
		t.Errorf("truncate = %+v", tr)
	}
	if m := tx.Changes[4]; m.Prefix != "outbox" || string(m.Content) != "payload" || !m.Transactional {
		t.Errorf("message = %+v", m)
	}
	loose := s.frags[1].Tx
	if loose.CommitLSN != 0x120 || loose.EndLSN != 0x120 || !loose.Final || loose.Changes[0].Prefix != "audit" {
		t.Errorf("non-transactional message = %+v", loose)
	}
	// It has no commit: its time is when the collector received it.
	if loose.CommitTime != received.UnixMicro() {
		t.Errorf("non-transactional message time = %d, want the time received, %d", loose.CommitTime, received.UnixMicro())
	}
}

// relationWithTypes is a relation message whose columns have the given
// type OIDs and modifiers (the first column is the key).
func relationWithTypes(id uint32, cols ...struct {
	name string
	oid  uint32
	mod  int32
}) msg {
	m := msg{'R'}.u32(id).str("public").str("t").u8('d').u16(uint16(len(cols)))
	for i, c := range cols {
		flags := byte(0)
		if i == 0 {
			flags = 1
		}
		m = m.u8(flags).str(c.name).u32(c.oid).u32(uint32(c.mod))
	}
	return m
}

// A column of a domain type has no modifier of its own (pgoutput sends
// atttypmod -1): the relation gets the domain's, so that a domain over
// numeric(6,2) or bit(3) keeps its scale or length. A column's own
// modifier, and types that are not domains, are left alone.
func TestDomainColumnsGetTheDomainsModifier(t *testing.T) {
	types := map[uint32]pgtypes.Type{
		20000: {Info: wire.TypeInfo{Schema: "public", Name: "price", Kind: 'd', BaseOID: 1700}, DomainTypeMod: 6<<16 | 2 + 4},
		20001: {Info: wire.TypeInfo{Schema: "public", Name: "posint", Kind: 'd', BaseOID: 23}, DomainTypeMod: -1},
		20002: {Info: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e'}, DomainTypeMod: -1},
	}
	cat := &testCatalog{types: types}
	var s sink
	d := New(s.emit, cat, 1<<20)
	type col = struct {
		name string
		oid  uint32
		mod  int32
	}
	feed(t, d,
		relationWithTypes(1, col{"id", 23, -1}, col{"price", 20000, -1}, col{"n", 20001, -1}, col{"m", 20002, -1}, col{"price2", 20000, -1}),
		begin(0x100, 7, time.Now()), insert(1, "1", "1.50", "2", "ok", "3.00"), commit(0x100, 0x110),
	)
	cols := s.frags[0].Rels[0].Columns
	want := []int32{-1, 6<<16 | 2 + 4, -1, -1, 6<<16 | 2 + 4}
	for i, c := range cols {
		if c.TypeMod != want[i] {
			t.Errorf("%s: type modifier %d, want %d", c.Name, c.TypeMod, want[i])
		}
	}
	if cols[1].Type.BaseOID != 1700 || cols[1].Type.Kind != 'd' {
		t.Errorf("domain column type = %+v", cols[1].Type)
	}
	if cat.typeReads != 3 {
		t.Errorf("resolved types %d times, want once per type (3)", cat.typeReads)
	}
}

// A large transaction is cut into fragments of bounded size, numbered, with
// consecutive change indexes and only the last one final.
func TestFragments(t *testing.T) {
	var s sink
	d := New(s.emit, nil, 4096)
	msgs := []msg{relation(1, "public", "big", "id", "pad"), begin(0x500, 9, pgEpoch)}
	pad := strings.Repeat("x", 100)
	for i := 0; i < 500; i++ {
		msgs = append(msgs, insert(1, "1", pad))
	}
	feed(t, d, append(msgs, commit(0x500, 0x510))...)
	if len(s.frags) < 10 {
		t.Fatalf("got %d fragments, want many", len(s.frags))
	}
	next := uint64(0)
	for i, f := range s.frags {
		if f.Size > 4096 {
			t.Errorf("fragment %d size %d over the limit", i, f.Size)
		}
		if f.Tx.Fragment != uint32(i) || f.Tx.FirstChange != next || f.Tx.Final != (i == len(s.frags)-1) {
			t.Errorf("fragment %d: number %d first %d final %v", i, f.Tx.Fragment, f.Tx.FirstChange, f.Tx.Final)
		}
		if len(f.Rels) != 1 {
			t.Errorf("fragment %d carries %d relations, want its own copy of 1", i, len(f.Rels))
		}
		next += uint64(len(f.Tx.Changes))
	}
	if next != 500 {
		t.Errorf("fragments hold %d changes, want 500", next)
	}
	if last := s.frags[len(s.frags)-1].Tx; last.EndLSN != 0x510 {
		t.Errorf("final fragment end = %x", last.EndLSN)
	}
}

// After a restart, Postgres resends from the slot's persisted position; the
// decoder drops what the raw stream already holds.
func TestSkipThrough(t *testing.T) {
	run := func(skip wire.Position) []*Fragment {
		var s sink
		d := New(s.emit, nil, 1<<20)
		d.SkipThrough(skip)
		feed(t, d,
			relation(1, "public", "t", "id"),
			begin(0x100, 1, pgEpoch), insert(1, "1"), commit(0x100, 0x110),
			begin(0x200, 2, pgEpoch), insert(1, "2"), insert(1, "3"), insert(1, "4"), commit(0x200, 0x210),
			message(false, 0x250, "p", "c"),
			begin(0x300, 3, pgEpoch), insert(1, "5"), commit(0x300, 0x310),
		)
		return s.frags
	}
	tests := []struct {
		name   string
		skip   wire.Position
		wantTx []uint64 // commit LSNs emitted
		first  uint64   // FirstChange of the first emitted fragment
	}{
		{"nothing stored", wire.Position{}, []uint64{0x100, 0x200, 0x250, 0x300}, 0},
		{"first tx stored", wire.Position{CommitLSN: 0x100, Change: 1, Final: true}, []uint64{0x200, 0x250, 0x300}, 0},
		{"part of second tx stored", wire.Position{CommitLSN: 0x200, Change: 2, Fragment: 0}, []uint64{0x200, 0x250, 0x300}, 2},
		{"message stored", wire.Position{CommitLSN: 0x250, Change: 1, Final: true}, []uint64{0x300}, 0},
		{"all stored", wire.Position{CommitLSN: 0x300, Change: 1, Final: true}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frags := run(tt.skip)
			var got []uint64
			for _, f := range frags {
				got = append(got, f.Tx.CommitLSN)
			}
			if len(got) != len(tt.wantTx) {
				t.Fatalf("emitted %x, want %x", got, tt.wantTx)
			}
			for i := range got {
				if got[i] != tt.wantTx[i] {
					t.Fatalf("emitted %x, want %x", got, tt.wantTx)
				}
			}
			if len(frags) > 0 && frags[0].Tx.FirstChange != tt.first {
				t.Errorf("first fragment starts at change %d, want %d", frags[0].Tx.FirstChange, tt.first)
			}
			if tt.name == "part of second tx stored" {
				f := frags[0].Tx
				if f.Fragment != 1 || len(f.Changes) != 1 || !f.Final {
					t.Errorf("resumed fragment = %+v", f)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		msgs []msg
		want string
	}{
		{"truncated insert", []msg{relation(1, "s", "t", "a"), begin(1, 1, pgEpoch), insert(1, "abc")[:9]}, "malformed"},
		{"unknown relation", []msg{begin(1, 1, pgEpoch), insert(9, "1")}, "relation 9"},
		{"change outside tx", []msg{relation(1, "s", "t", "a"), insert(1, "1")}, "outside a transaction"},
		{"commit mismatch", []msg{begin(1, 1, pgEpoch), commit(2, 3)}, "begin announced"},
		{"too many values", []msg{relation(1, "s", "t", "a"), begin(1, 1, pgEpoch), insert(1, "1", "2")}, "more values"},
		{"unknown type", []msg{{'Z', 1, 2}}, "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sink
			d := New(s.emit, nil, 1<<20)
			var err error
			for _, m := range tt.msgs {
				if err = d.Handle(context.Background(), 0, m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

// A change larger than a fragment travels in pieces of its encoding, each
// in its own fragment, which put together give the change; a decoder
// resuming inside the pieces (after a crash) emits exactly the rest, even
// with another fragment size.
func TestLargeChangeInPieces(t *testing.T) {
	big := strings.Repeat("y", 20000)
	input := []msg{relation(1, "s", "t", "a"), begin(1, 1, pgEpoch), insert(1, "small"), insert(1, big), insert(1, "after"), commit(1, 2)}
	run := func(maxFragment int, skip *wire.Position) []*Fragment {
		var s sink
		d := New(s.emit, nil, maxFragment)
		if skip != nil {
			d.SkipThrough(*skip)
		}
		feed(t, d, input...)
		return s.frags
	}
	frags := run(4096, nil)
	if len(frags) < 4 {
		t.Fatalf("got %d fragments, want the small change, at least two pieces, the rest", len(frags))
	}
	var put []byte
	pieces := frags[1 : len(frags)-1]
	for i, f := range pieces {
		tx := f.Tx
		if !tx.IsPiece() || tx.Final || tx.FirstChange != 1 || tx.Fragment != uint32(i+1) || tx.PieceOffset != uint64(len(put)) ||
			len(tx.Changes) != 1 || len(f.Rels) != 1 || tx.LastPiece() != (i == len(pieces)-1) {
			t.Fatalf("piece %d: %+v", i, tx)
		}
		if f.Size > 4096 {
			t.Fatalf("piece %d: %d bytes, the fragment limit is 4096", i, f.Size)
		}
		put = append(put, tx.Changes[0].Content...)
	}
	rels := []wire.Relation{*pieces[0].Rels[0]}
	c, err := wire.DecodeChange(put, &pieces[0].Tx.Changes[0], rels)
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != wire.OpInsert || c.Rel != 0 || string(c.New[0].Data) != big {
		t.Fatalf("pieced change = %v rel %d, %d bytes", c.Op, c.Rel, len(c.New[0].Data))
	}
	last := frags[len(frags)-1].Tx
	if !last.Final || last.FirstChange != 2 || last.Fragment != uint32(len(pieces)+1) || string(last.Changes[0].New[0].Data) != "after" {
		t.Fatalf("fragment after the pieces: %+v", last)
	}

	// Resume after the second piece, with a larger fragment size.
	stored := pieces[1].Tx
	skip := wire.Position{CommitLSN: 1, Change: 1, Fragment: stored.Fragment, Piece: stored.PieceOffset + uint64(len(stored.Changes[0].Content))}
	rest := run(8192, &skip)
	put = put[:skip.Piece]
	for _, f := range rest[:len(rest)-1] {
		if f.Tx.PieceOffset != uint64(len(put)) || f.Tx.FirstChange != 1 {
			t.Fatalf("resumed piece at %d, want %d", f.Tx.PieceOffset, len(put))
		}
		put = append(put, f.Tx.Changes[0].Content...)
	}
	if rest[0].Tx.Fragment != skip.Fragment+1 {
		t.Fatalf("resumed at fragment %d, want %d", rest[0].Tx.Fragment, skip.Fragment+1)
	}
	if c2, err := wire.DecodeChange(put, &pieces[0].Tx.Changes[0], rels); err != nil || string(c2.New[0].Data) != big {
		t.Fatalf("resumed pieces do not give the change: %v", err)
	}

	// Pieces a collector of format version 2 stored are completed in that
	// version's layout: the change's bytes go on where they stopped.
	whole, err := wire.DecodeChange(put, &pieces[0].Tx.Changes[0], rels)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := wire.EncodeChange(&whole, 2)
	if err != nil {
		t.Fatal(err)
	}
	skip2 := skip
	skip2.Version = 2
	put = append([]byte(nil), v2[:skip2.Piece]...)
	for _, f := range run(8192, &skip2) {
		if f.Tx.IsPiece() {
			put = append(put, f.Tx.Changes[0].Content...)
		}
	}
	if !slices.Equal(put, v2) {
		t.Fatalf("pieces resumed after a version-2 collector: %d bytes, not its layout (%d)", len(put), len(v2))
	}
	// And after a second stop: the last record is of this version but
	// carries the version-2 pieces; their total names the layout.
	skip3 := skip
	skip3.Version, skip3.PieceTotal = wire.Version, uint64(len(v2))
	put = append([]byte(nil), v2[:skip3.Piece]...)
	for _, f := range run(8192, &skip3) {
		if f.Tx.IsPiece() {
			put = append(put, f.Tx.Changes[0].Content...)
		}
	}
	if !slices.Equal(put, v2) {
		t.Fatalf("version-2 pieces resumed from a version-3 record: %d bytes, not their layout (%d)", len(put), len(v2))
	}
	// A total no layout has: the change is not the one stored.
	skip4 := skip
	skip4.PieceTotal = uint64(len(v2)) + 1
	var bad sink
	dec := New(bad.emit, nil, 8192)
	dec.SkipThrough(skip4)
	var err4 error
	for i, m := range input {
		if err4 = dec.Handle(context.Background(), uint64(i), m); err4 != nil {
			break
		}
	}
	if err4 == nil || !strings.Contains(err4.Error(), "differs from the one stored") {
		t.Fatalf("pieces of an unknown total: %v", err4)
	}
	if end := rest[len(rest)-1].Tx; !end.Final || end.FirstChange != 2 {
		t.Fatalf("resumed run ends with %+v", end)
	}

	// A non-transactional message too large for a fragment: pieces, the
	// last one Final.
	var s sink
	d := New(s.emit, nil, 4096)
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d.now = func() time.Time { return received }
	feed(t, d, message(false, 0x50, "p", big))
	if n := len(s.frags); n < 2 || !s.frags[n-1].Tx.Final || s.frags[0].Tx.Final || !s.frags[n-1].Tx.LastPiece() || s.frags[n-1].Tx.EndLSN != 0x50 {
		t.Fatalf("message pieces: %d fragments, last %+v", n, s.frags[n-1].Tx)
	}
	for _, f := range s.frags {
		if f.Tx.CommitTime != received.UnixMicro() {
			t.Fatalf("message piece time %d, want the time received, %d", f.Tx.CommitTime, received.UnixMicro())
		}
	}
}

// FuzzHandle: arbitrary protocol bytes never panic the decoder; they are
// decoded or rejected with an error.
func FuzzHandle(f *testing.F) {
	for _, m := range []msg{
		relation(1, "public", "t", "id", "v"), begin(0x100, 1, pgEpoch), insert(1, "1", "x"),
		update(1, []string{"1", "x"}, "1", "<toast>"), del(1, "1", "<null>"), truncate(3, 1),
		message(true, 5, "p", "c"), message(false, 5, "p", "c"), commit(0x100, 0x110),
	} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sink
		d := New(s.emit, nil, 1<<20)
		ctx := context.Background()
		// Put the decoder in a transaction with a known relation so that row
		// messages reach their tuple parsing.
		_ = d.Handle(ctx, 0, relation(1, "public", "t", "id", "v"))
		_ = d.Handle(ctx, 0, begin(0x100, 1, pgEpoch))
		if len(data) == 0 {
			return
		}
		_ = d.Handle(ctx, 0, data)
	})
}

// Fragments released for reuse (as the publisher does once their raw
// message is stored) must not change what later fragments hold: the same
// input gives the same fragments whether each is released at once or kept.
func TestReleasedFragmentsDoNotLeak(t *testing.T) {
	big := strings.Repeat("z", 9000)
	var input []msg
	input = append(input, relation(1, "s", "a", "id", "v"), relation(2, "s", "b", "id"))
	input = append(input, begin(0x100, 1, pgEpoch)) // large: several fragments, pieces, two tables
	for i := 0; i < 40; i++ {
		input = append(input, insert(1, strconv.Itoa(i), strings.Repeat("x", 100)), insert(2, strconv.Itoa(i)))
	}
	input = append(input, insert(1, "big", big), update(1, []string{"1", "x"}, "1", "<toast>"), commit(0x100, 0x110))
	for i := 0; i < 20; i++ { // small ones, after the large fragments went back to the pool
		lsn := uint64(0x200 + 0x10*i)
		input = append(input, begin(lsn, uint32(2+i), pgEpoch), insert(2, strconv.Itoa(i)), del(1, strconv.Itoa(i)), commit(lsn, lsn+8))
	}
	input = append(input, begin(0x900, 99, pgEpoch), truncate(0, 1, 2), message(true, 0x900, "p", "c"), commit(0x900, 0x910))

	snapshot := func(f *Fragment) string {
		var names []string
		for _, r := range f.Rels {
			names = append(names, r.Table)
		}
		return fmt.Sprintf("%+v rels=%v", f.Tx, names)
	}
	run := func(release bool) []string {
		var got []string
		d := New(func(_ context.Context, f *Fragment) error {
			got = append(got, snapshot(f))
			if release {
				f.Release()
			}
			return nil
		}, nil, 4096)
		feed(t, d, input...)
		return got
	}
	kept, released := run(false), run(true)
	if len(kept) < 25 {
		t.Fatalf("only %d fragments: the input should make more", len(kept))
	}
	if len(kept) != len(released) {
		t.Fatalf("%d fragments kept, %d when released", len(kept), len(released))
	}
	for i := range kept {
		if kept[i] != released[i] {
			t.Fatalf("fragment %d differs when fragments are released:\nkept     %s\nreleased %s", i, kept[i], released[i])
		}
	}
}

// Heartbeats never become records; their transactions, and others that
// commit with nothing to store, report their end so that an idle slot moves.
func TestHeartbeatsAndEmptyTransactions(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var s sink
	var empty []uint64
	d := New(s.emit, nil, 1<<20)
	d.OnEmpty = func(end uint64) { empty = append(empty, end) }
	feed(t, d,
		relation(1, "public", "users", "id", "name"),
		begin(0x100, 7, at),
		message(true, 0xF0, wire.HeartbeatPrefix, "src"),
		commit(0x100, 0x110),
		begin(0x200, 8, at), // filtered out by the publication
		commit(0x200, 0x210),
		message(false, 0x220, wire.HeartbeatPrefix, "src"),
		begin(0x300, 9, at),
		message(true, 0x2F0, wire.HeartbeatPrefix, "src"),
		insert(1, "1", "ann"),
		message(true, 0x2F8, wire.DDLPrefix, `{"tag":"ALTER TABLE"}`),
		commit(0x300, 0x310),
	)
	if want := []uint64{0x110, 0x210, 0x220}; fmt.Sprint(empty) != fmt.Sprint(want) {
		t.Errorf("empty transactions reported at %x, want %x", empty, want)
	}
	if len(s.frags) != 1 {
		t.Fatalf("got %d fragments, want 1", len(s.frags))
	}
	tx := s.frags[0].Tx
	if len(tx.Changes) != 2 || tx.Changes[0].Op != wire.OpInsert || tx.Changes[1].Prefix != wire.DDLPrefix || tx.FirstChange != 0 {
		t.Errorf("transaction with a heartbeat = %+v: the heartbeat must leave no change and no gap in the indexes", tx)
	}
}
