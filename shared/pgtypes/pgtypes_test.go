package pgtypes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// numericMod is the type modifier of numeric(p,s).
func numericMod(p, s int32) int32 { return p<<16 | s + 4 }

// TestResolve: a domain is described by the first type of its chain of
// domains that is not a domain, and by the modifier of the nearest domain
// that has one, as Debezium resolves them (PostgresType.getRootType and
// getDefaultLength/getDefaultScale; RecordsStreamProducerIT
// shouldStreamValuesForDomainTypeOfDomainType, numericex over numeric82
// over numeric(8,2), and shouldStreamDomainAliasWithProperModifiers,
// varbit2 over varbit(3)).
func TestResolve(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	conn := pg.Connect(t)
	if _, err := conn.Exec(ctx, `
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN numeric82 AS numeric(8,2);
CREATE DOMAIN numericex AS numeric82;
CREATE DOMAIN numericex2 AS numericex CHECK (VALUE > 0);
CREATE DOMAIN varbit2 AS varbit(3);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN happy AS mood;`); err != nil {
		t.Fatal(err)
	}
	oid := func(name string) uint32 {
		var o uint32
		if err := conn.QueryRow(ctx, "SELECT $1::regtype::oid", name).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	tests := []struct {
		typ      string
		kind     byte
		base     string // "" for none
		elemKind byte
		mod      int32
	}{
		{"numeric82", 'd', "numeric", 0, numericMod(8, 2)},
		{"numericex", 'd', "numeric", 0, numericMod(8, 2)},
		{"numericex2", 'd', "numeric", 0, numericMod(8, 2)},
		{"varbit2", 'd', "varbit", 0, 3},
		{"posint", 'd', "int4", 0, -1},
		{"happy", 'd', "mood", 0, -1},
		{"mood", 'e', "", 0, -1},
		{"mood[]", 'b', "", 'e', -1},
		{"numeric82[]", 'b', "", 'd', -1},
	}
	for _, tt := range tests {
		typ, err := Resolve(ctx, conn, oid(tt.typ))
		ti, mod := typ.Info, typ.DomainTypeMod
		if err != nil {
			t.Fatalf("%s: %v", tt.typ, err)
		}
		var base uint32
		if tt.base != "" {
			base = oid(tt.base)
		}
		if ti.Kind != tt.kind || ti.BaseOID != base || ti.ElemKind != tt.elemKind || mod != tt.mod || ti.Schema != "public" {
			t.Errorf("%s: %+v modifier %d; want kind %c, base %s (%d), element kind %q, modifier %d", tt.typ, ti, mod, tt.kind, tt.base, base, tt.elemKind, tt.mod)
		}
		if want := typ.IsEnum(); (ti.Labels != nil) != want {
			t.Errorf("%s: labels %q", tt.typ, ti.Labels)
		}
	}
	// An enum's labels in their order, not the order they were added in
	// (PostgresConnectorIT.shouldCreateEnumSchemaWithLogicalOrder: 'c,a,b'),
	// for the enum and for arrays of it.
	if _, err := conn.Exec(ctx, `CREATE TYPE enum8684 AS ENUM ('c', 'a', 'b'); ALTER TYPE enum8684 ADD VALUE 'z' BEFORE 'c'; CREATE TYPE empty AS ENUM ()`); err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string][]string{"enum8684": {"z", "c", "a", "b"}, "enum8684[]": {"z", "c", "a", "b"}, "empty": {}, "mood": {"sad", "happy"}} {
		got, err := Resolve(ctx, conn, oid(typ))
		if err != nil || !slices.Equal(got.Info.Labels, want) || got.Info.Labels == nil {
			t.Errorf("%s: labels %q, %v; want %q", typ, got.Info.Labels, err, want)
		}
	}
	// A type dropped meanwhile: nothing to say, the router renders text.
	gone, err := Resolve(ctx, conn, 4_000_000_000)
	if err != nil || !gone.Info.Equal(&wire.TypeInfo{}) || gone.DomainTypeMod != -1 {
		t.Errorf("unknown type: %+v %v", gone, err)
	}
}

func TestColumnTypeMod(t *testing.T) {
	domain := Type{Info: wire.TypeInfo{Kind: 'd', BaseOID: 1700}, DomainTypeMod: numericMod(6, 2)}
	enum := Type{Info: wire.TypeInfo{Kind: 'e'}, DomainTypeMod: -1}
	for _, tt := range []struct {
		t        Type
		mod, out int32
	}{
		{domain, -1, numericMod(6, 2)}, // pgoutput sends -1 for a domain column
		{domain, 7, 7},                 // a modifier of its own wins
		{Type{Info: wire.TypeInfo{Kind: 'd'}, DomainTypeMod: -1}, -1, -1},
		{enum, -1, -1},
	} {
		if got := tt.t.ColumnTypeMod(tt.mod); got != tt.out {
			t.Errorf("%+v.ColumnTypeMod(%d) = %d, want %d", tt.t, tt.mod, got, tt.out)
		}
	}
}

// TestReadRelation reads what Debezium reads of a relation through the JDBC
// driver: NOT NULL (a domain's too), the default as pg_get_expr prints it
// under wire.TextFormat, and the key: the primary key in its own order
// (RecordsStreamProducerIT.shouldReceiveChangesForUpdatesWithPKChanges,
// key fields in primary key order), else the first unique index over plain
// columns by the driver's order (JdbcConnection.readTableUniqueIndices:
// clustered first, then by name), none without either.
func TestReadRelation(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	// Settings a session may have, whose forms the router does not read.
	cfg.RuntimeParams["timezone"] = "America/New_York"
	cfg.RuntimeParams["datestyle"] = "SQL, DMY"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
CREATE DOMAIN required AS int NOT NULL;
CREATE TABLE pk (b int, a text NOT NULL DEFAULT 'x', c required, d date DEFAULT '2024-02-29', e timestamptz DEFAULT '2021-03-20 14:44:28+01',
	id serial, gone int, PRIMARY KEY (id, b));
ALTER TABLE pk DROP COLUMN gone;
CREATE TABLE uniq (a int NOT NULL, b int, c int, d text);
CREATE UNIQUE INDEX uniq_z ON uniq (a);
CREATE UNIQUE INDEX uniq_lower ON uniq (lower(d));
CREATE UNIQUE INDEX uniq_b ON uniq (c, b);
CREATE TABLE clustered (a int, b int);
CREATE UNIQUE INDEX clustered_a ON clustered (a);
CREATE UNIQUE INDEX clustered_b ON clustered (b);
CLUSTER clustered USING clustered_b;
CREATE TABLE nokey (a int, b int);
CREATE INDEX nokey_a ON nokey (a);`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		table string
		want  Relation
	}{
		{"pk", Relation{
			"b":  {NotNull: true, PrimaryKey: 2},
			"a":  {NotNull: true, Default: "'x'::text"},
			"c":  {NotNull: true},
			"d":  {Default: "'2024-02-29'::date"},
			"e":  {Default: "'2021-03-20 13:44:28+00'::timestamp with time zone"},
			"id": {NotNull: true, Default: "nextval('pk_id_seq'::regclass)", PrimaryKey: 1},
		}},
		{"uniq", Relation{"a": {NotNull: true}, "b": {PrimaryKey: 2}, "c": {PrimaryKey: 1}, "d": {}}},
		{"clustered", Relation{"a": {}, "b": {PrimaryKey: 1}}},
		{"nokey", Relation{"a": {}, "b": {}}},
	}
	for _, tt := range tests {
		var relid uint32
		if err := conn.QueryRow(ctx, "SELECT $1::regclass::oid", tt.table).Scan(&relid); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRelation(ctx, conn, relid)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.table, got, tt.want)
		}
	}
	// The settings were the batch's own: the session's are as they were.
	var ds string
	if err := conn.QueryRow(ctx, "SHOW DateStyle").Scan(&ds); err != nil || ds != "SQL, DMY" {
		t.Errorf("session DateStyle %q, %v", ds, err)
	}
	// A relation dropped meanwhile: nothing to say.
	if got, err := ReadRelation(ctx, conn, 4_000_000_000); err != nil || len(got) != 0 {
		t.Errorf("unknown relation: %+v %v", got, err)
	}
}

// BenchmarkReadRelation is what the collector pays per relation message
// (once per table per session, and after DDL) to read the catalog, beside
// Resolve, which it already paid per user-defined type: the bench table
// (5 columns) and a wide one (60 columns, a primary key of 2).
func BenchmarkReadRelation(b *testing.B) {
	pg := pgtest.Run(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(""))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	wide := "CREATE TABLE wide (a int, b int NOT NULL DEFAULT 1"
	for i := range 58 {
		wide += fmt.Sprintf(", c%d text DEFAULT 'x'", i)
	}
	wide += ", PRIMARY KEY (b, a))"
	if _, err := conn.Exec(ctx, `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE bench (id bigint PRIMARY KEY, k int, v text, payload jsonb, ts timestamptz DEFAULT now()); `+wide); err != nil {
		b.Fatal(err)
	}
	oid := func(q string) uint32 {
		var o uint32
		if err := conn.QueryRow(ctx, q).Scan(&o); err != nil {
			b.Fatal(err)
		}
		return o
	}
	benchRel, wideRel, moodType := oid("SELECT 'bench'::regclass::oid"), oid("SELECT 'wide'::regclass::oid"), oid("SELECT 'mood'::regtype::oid")
	// Interleaved, so that the figures share the load of the machine: a
	// ratio to one trivial catalog query, the round trip itself.
	var took [4]time.Duration
	step := func(i int, f func() error) {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		took[i] += time.Since(t0)
	}
	for b.Loop() {
		step(0, func() error { _, err := ReadRelation(ctx, conn, benchRel); return err })
		step(1, func() error { _, err := ReadRelation(ctx, conn, wideRel); return err })
		step(2, func() error { _, err := Resolve(ctx, conn, moodType); return err })
		step(3, func() error {
			rows, err := conn.Query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = $1", benchRel)
			if err == nil {
				rows.Close()
			}
			return err
		})
	}
	for i, name := range []string{"bench-µs", "wide60-µs", "resolve-µs", "trivial-query-µs"} {
		b.ReportMetric(float64(took[i].Microseconds())/float64(b.N), name)
	}
}
