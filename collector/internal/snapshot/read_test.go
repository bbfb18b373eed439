package snapshot

import (
	"bytes"
	"context"
	"testing"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// ReadChunk parses COPY's text format: its values must be byte for byte
// the text values a query returns (and pgoutput sends), hostile ones
// included, NULL told from the empty string; chunks follow each other by
// key, a composite one with awkward values included, and the last says
// the table ends.
func TestReadChunkMatchesQuery(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	if err := pg.Exec(ctx, `CREATE TABLE h (a text, b int, v text, n numeric, j jsonb, arr text[], ts timestamptz, bin bytea, PRIMARY KEY (a, b));
		INSERT INTO h VALUES
			('tab	in key', 1, E'line\nbreak\r\ttab\\backslash\b\f\v', 1.50, '{"k": "v\\n"}', ARRAY['x,y', NULL, E'q"\\'], '2026-01-02 03:04:05.678+02', '\x00ff'),
			('', 2, '', NULL, NULL, '{}', NULL, ''),
			(E'\\N', 3, E'\\N', 0, 'null', NULL, 'infinity', NULL),
			('$k$ dollar', 4, 'é🎉', -1e-10, '[1, 2.0]', ARRAY[''], '2026-01-02', '\x5c'),
			('z', 5, NULL, 'NaN', '{}', NULL, NULL, NULL);
		CREATE PUBLICATION p FOR TABLE h;`); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t)
	tables, err := Describe(ctx, conn, "p", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	h := tables[0]
	// The oracle: the same rows through a query's text results.
	want, err := readRows(conn.PgConn().ExecParams(ctx, h.selectSQL()+" ORDER BY a, b", nil, nil, nil, nil), h, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]wire.Value
	var after []wire.Value
	for chunks := 0; ; chunks++ {
		c, err := ReadChunk(ctx, conn.PgConn(), h, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.Rows...)
		if !c.More {
			if chunks != 2 {
				t.Fatalf("%d chunks of 2 rows for 5 rows", chunks+1)
			}
			break
		}
		after = c.Last()
	}
	if len(got) != len(want.Rows) {
		t.Fatalf("%d rows, want %d", len(got), len(want.Rows))
	}
	for i := range got {
		for j := range got[i] {
			g, w := got[i][j], want.Rows[i][j]
			if g.Kind != w.Kind || !bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
				t.Errorf("row %d column %s: %q (%c), want %q (%c)", i, h.Rel.Columns[j].Name, g.Data, g.Kind, w.Data, w.Kind)
			}
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:            "plain",
		`a\\b`:             `a\b`,
		`\b\f\n\r\t\v`:     "\b\f\n\r\t\v",
		`\\N`:              `\N`,
		`end\\`:            `end\`,
		`é\t🎉`:             "é\t🎉",
		"":                 "",
		`\\\\\\`:           `\\\`,
		`x\nyy\tzzz\\wwww`: "x\nyy\tzzz\\wwww",
	} {
		got, err := unescape([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `a\x`, `\0`} {
		if _, err := unescape([]byte(bad)); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func TestDollarQuote(t *testing.T) {
	for _, s := range []string{"plain", "$k$", "a$k$b$k0$c", ""} {
		q := dollarQuote([]byte(s))
		tag := q[:bytes.IndexByte([]byte(q[1:]), '$')+2]
		if body := q[len(tag) : len(q)-len(tag)]; body != s || bytes.Contains([]byte(s), []byte(tag)) {
			t.Errorf("dollarQuote(%q) = %s", s, q)
		}
	}
}
