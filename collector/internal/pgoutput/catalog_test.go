package pgoutput

import (
	"slices"
	"testing"

	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

type col = struct {
	name string
	oid  uint32
	mod  int32
}

// A relation message is described with what the catalog says of its
// columns, matched by name, read for every relation message (Postgres
// sends one after DDL on the table, as Debezium re-reads the catalog for
// each: PgOutputMessageDecoder.handleRelationMessage); a table dropped
// before it could be read says so instead of claiming no column is NOT NULL.
func TestRelationCatalog(t *testing.T) {
	cat := &testCatalog{rels: map[uint32]pgtypes.Relation{
		1: {"id": {NotNull: true, Default: "nextval('t_id_seq'::regclass)", PrimaryKey: 1}, "v": {Default: "'x'::text"}, "dropped": {NotNull: true}},
	}}
	var s sink
	d := New(s.emit, cat, 1<<20)
	feed(t, d,
		relationWithTypes(1, col{"id", 23, -1}, col{"v", 25, -1}),
		begin(0x100, 7, pgEpoch), insert(1, "1", "a"), commit(0x100, 0x110),
		relationWithTypes(2, col{"id", 23, -1}),
		begin(0x200, 8, pgEpoch), insert(2, "1"), commit(0x200, 0x210),
	)
	rel := s.frags[0].Rels[0]
	want := []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true, NotNull: true, Default: "nextval('t_id_seq'::regclass)", PrimaryKey: 1},
		{Name: "v", TypeOID: 25, TypeMod: -1, Default: "'x'::text"},
	}
	if !rel.Catalog || !wire.EqualColumns(rel.Columns, want) {
		t.Errorf("described %+v\nwant %+v", rel, want)
	}
	if gone := s.frags[1].Rels[0]; gone.Catalog || gone.Columns[0].NotNull {
		t.Errorf("dropped table described %+v", gone)
	}
	feed(t, d, relationWithTypes(1, col{"id", 23, -1}, col{"v", 25, -1}))
	if cat.relReads != 3 {
		t.Errorf("catalog read %d times for 3 relation messages", cat.relReads)
	}
}

// An enum's labels are read with each relation message. ALTER TYPE ... ADD
// VALUE sends none, so a value not among the labels a relation carries
// makes the collector read the type again and describe the relation anew
// (a new description: records already made keep theirs); a value the
// type lacks even then (a label renamed since) is not looked up again for
// every change.
func TestEnumLabelsReadAgain(t *testing.T) {
	mood := pgtypes.Type{Info: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e', Labels: []string{"sad", "ok"}}, DomainTypeMod: -1}
	moods := pgtypes.Type{Info: wire.TypeInfo{Schema: "public", Name: "_mood", Kind: 'b', ElemKind: 'e', ElemOID: 20000, Labels: []string{"sad", "ok"}}, DomainTypeMod: -1}
	cat := &testCatalog{types: map[uint32]pgtypes.Type{20000: mood, 20001: moods}}
	var s sink
	d := New(s.emit, cat, 1<<20)
	feed(t, d,
		relationWithTypes(1, col{"id", 23, -1}, col{"m", 20000, -1}, col{"ms", 20001, -1}, col{"m2", 20000, -1}),
		begin(0x100, 7, pgEpoch), insert(1, "1", "ok", `{sad,NULL}`, "<null>"), commit(0x100, 0x110),
	)
	if cat.typeReads != 2 {
		t.Fatalf("types read %d times, want once each for the relation message", cat.typeReads)
	}
	first := s.frags[0].Rels[0]
	if !slices.Equal(first.Columns[1].Type.Labels, []string{"sad", "ok"}) || !slices.Equal(first.Columns[2].Type.Labels, []string{"sad", "ok"}) {
		t.Fatalf("labels %+v", first.Columns)
	}

	// ALTER TYPE mood ADD VALUE 'happy', then a row using it.
	mood.Info.Labels = []string{"sad", "ok", "happy"}
	moods.Info.Labels = mood.Info.Labels
	cat.types[20000], cat.types[20001] = mood, moods
	feed(t, d, begin(0x200, 8, pgEpoch), insert(1, "2", "sad", `{"happy"}`, "<null>"), insert(1, "3", "happy", "<null>", "ok"), commit(0x200, 0x210))
	if cat.typeReads != 4 {
		t.Errorf("types read %d times, want each once more (4)", cat.typeReads)
	}
	rels := s.frags[1].Rels
	if len(rels) != 2 || rels[0] == first || rels[1] == rels[0] {
		t.Fatalf("after ADD VALUE: relations %+v", rels)
	}
	// The array's value made its type read again, the scalar's value then
	// the scalar's; the record made before keeps what it had.
	if !slices.Equal(rels[0].Columns[2].Type.Labels, mood.Info.Labels) || !slices.Equal(rels[0].Columns[1].Type.Labels, []string{"sad", "ok"}) ||
		!slices.Equal(rels[1].Columns[1].Type.Labels, mood.Info.Labels) || !slices.Equal(rels[1].Columns[3].Type.Labels, mood.Info.Labels) ||
		!slices.Equal(first.Columns[2].Type.Labels, []string{"sad", "ok"}) {
		t.Fatalf("labels: %+v then %+v (before: %+v)", rels[0].Columns, rels[1].Columns, first.Columns)
	}
	reads := cat.typeReads
	feed(t, d, begin(0x300, 9, pgEpoch), insert(1, "4", "renamed", "<null>", "<null>"), insert(1, "5", "renamed", "<null>", "<null>"), commit(0x300, 0x310))
	if cat.typeReads != reads+1 {
		t.Errorf("an unknown label read the type %d times, want once", cat.typeReads-reads)
	}
}
