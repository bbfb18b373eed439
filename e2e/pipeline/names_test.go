package pipeline

import (
	"strings"
	"testing"
	"time"
)

// Invariant: --tables names a schema or a table holding a dot or a comma
// in double quotes, as SQL does: the collector creates the publication
// with exactly those tables and every change of them arrives once, with
// the names as Postgres has them; a dotted name left unquoted is refused
// at --check-config with the reason.
func TestQuotedTableNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE SCHEMA "my.schema";
		CREATE TABLE "my.schema"."t.1" (id int PRIMARY KEY, v text);
		CREATE TABLE public."a,b" (id int PRIMARY KEY, v text);
		CREATE TABLE public.unlisted (id int PRIMARY KEY);`,
		`"my.schema"."t.1"`, `public."a,b"`)
	col := e.collector()
	defer col.Stop()
	rt := e.router()
	defer rt.Stop()
	e.exec(`INSERT INTO "my.schema"."t.1" SELECT g, 'v' || g FROM generate_series(1, 5) g`)
	e.exec(`UPDATE "my.schema"."t.1" SET v = 'updated' WHERE id = 2`)
	e.exec(`INSERT INTO public."a,b" VALUES (1, 'comma')`)
	e.exec(`DELETE FROM public."a,b" WHERE id = 1`)
	e.exec(`INSERT INTO public.unlisted VALUES (1)`)
	r := e.verify(time.Minute)
	if r.Committed != 8 {
		t.Errorf("%d changes audited, want 8", r.Committed)
	}
	var tables []string
	rows, err := e.conn.Query(t.Context(), `SELECT schemaname || '|' || tablename FROM pg_publication_tables WHERE pubname = 'pgjet_e2e' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, s)
	}
	if got := strings.Join(tables, ", "); got != "my.schema|t.1, public|a,b" {
		t.Errorf("publication holds %s", got)
	}

	out, code := runCmd(t, nil, "pgjet-collector", "--check-config", "--dsn", e.pg.DSN(""), "--nats", e.nats.URL(), "--tables", "my.schema.t.1")
	if code != 2 || !strings.Contains(out, `bad --tables: bad table "my.schema.t.1": 4 dot-separated parts; a schema or table whose name holds a dot is written in double quotes, e.g. "my.schema".users`) {
		t.Errorf("--check-config with an unquoted dotted name: exit %d:\n%s", code, out)
	}
}
