package value

import (
	"context"
	"testing"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// The types docs/types.md says are rendered as their Postgres text where
// to_jsonb builds JSON (composites, hstore), or where neither has JSON
// (ranges, extension types): what the router renders is the text pgoutput
// sends, as a JSON string, and what to_jsonb gives is written down here
// next to it, so that the documentation cannot drift from either.
func TestNonJSONTypesAreTheirText(t *testing.T) {
	c := pgtest.Run(t)
	ctx := context.Background()
	conn := c.Connect(t)
	if _, err := conn.Exec(ctx, `CREATE EXTENSION hstore; CREATE TYPE pair AS (a int, b text)`); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder()
	for _, tc := range []struct {
		name, expr string
		kind       byte // pg_type.typtype of a user-defined type
		native     string
		toJSONB    string
	}{
		{"composite", `ROW(1, 'x y')::pair`, 'c', `"(1,\"x y\")"`, `{"a": 1, "b": "x y"}`},
		{"hstore", `'a=>1, b=>NULL'::hstore`, 'b', `"\"a\"=>\"1\", \"b\"=>NULL"`, `{"a": "1", "b": null}`},
		{"range", `int4range(1, 5)`, 0, `"[1,5)"`, `"[1,5)"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var text, jsonb string
			var oid uint32
			if err := conn.QueryRow(ctx, `SELECT (`+tc.expr+`)::text, to_jsonb(`+tc.expr+`)::text, pg_typeof(`+tc.expr+`)::oid`).Scan(&text, &jsonb, &oid); err != nil {
				t.Fatal(err)
			}
			col := &wire.Column{TypeOID: oid}
			if tc.kind != 0 {
				col.Type = wire.TypeInfo{Schema: "public", Name: tc.name, Kind: tc.kind}
			}
			got, err := d.AppendJSON(nil, col, wire.Value{Kind: wire.KindText, Data: []byte(text)})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.native {
				t.Errorf("native %s, documented %s", got, tc.native)
			}
			if jsonb != tc.toJSONB {
				t.Errorf("to_jsonb %s, documented %s", jsonb, tc.toJSONB)
			}
		})
	}
}
