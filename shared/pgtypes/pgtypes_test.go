package pgtypes

import (
	"context"
	"testing"

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
	conn, err := pgx.Connect(ctx, pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
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
	}
	// A type dropped meanwhile: nothing to say, the router renders text.
	gone, err := Resolve(ctx, conn, 4_000_000_000)
	if err != nil || gone.Info != (wire.TypeInfo{}) || gone.DomainTypeMod != -1 {
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
