package value

import (
	"context"
	"testing"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// Every built-in type a column can have (base types and their arrays,
// ranges, multiranges: those whose OIDs are fixed, below 10000) is named
// as Postgres's catalog names it, never by its OID: relation events show
// these names to consumers.
func TestTypeNameOfEveryBuiltinType(t *testing.T) {
	c := pgtest.Run(t)
	ctx := context.Background()
	conn := c.Connect(t)
	rows, err := conn.Query(ctx, `SELECT oid::int8, typname::text FROM pg_type
		WHERE oid < 10000 AND typisdefined AND typtype IN ('b', 'r', 'm') AND typnamespace = 'pg_catalog'::regnamespace
		ORDER BY oid`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var oid int64
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			t.Fatal(err)
		}
		n++
		if got := TypeName(&wire.Column{TypeOID: uint32(oid)}); got != name {
			t.Errorf("oid %d: TypeName %q, want %q", oid, got, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d built-in types read", n)
	}
}
