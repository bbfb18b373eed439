package ddlcapture

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// Each DDL command writes exactly one transactional pgjet.ddl message in
// its own transaction, whose content decodes strictly as wire.DDL: its
// tag, query, role and objects (dropped ones marked, from sql_drop);
// installing twice is harmless; uninstalled, nothing is written.
func TestCapture(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	conn := pg.Connect(t)
	for i := 0; i < 2; i++ {
		if err := Install(ctx, conn); err != nil {
			t.Fatalf("install: %v", err)
		}
	}
	if ok, err := Installed(ctx, conn); !ok || err != nil {
		t.Fatalf("installed: %v %v", ok, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot('ddltest', 'test_decoding')`); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		sql     string
		tag     string
		objects []wire.DDLObject
	}{
		{`CREATE TABLE orders (id int PRIMARY KEY, note text)`, "CREATE TABLE", []wire.DDLObject{
			{Type: "table", Schema: "public", Identity: "public.orders"}, {Type: "index", Schema: "public", Identity: "public.orders_pkey"}}},
		{`ALTER TABLE orders ADD COLUMN coupon text`, "ALTER TABLE", []wire.DDLObject{{Type: "table", Schema: "public", Identity: "public.orders"}}},
		{`ALTER TABLE orders DROP COLUMN note`, "ALTER TABLE", []wire.DDLObject{
			{Type: "table", Schema: "public", Identity: "public.orders"}, {Type: "table column", Schema: "public", Identity: "public.orders.note", Dropped: true}}},
		{`DROP TABLE orders`, "DROP TABLE", []wire.DDLObject{{Type: "table", Schema: "public", Identity: "public.orders", Dropped: true}}},
	}
	for _, s := range steps {
		if _, err := conn.Exec(ctx, s.sql); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	ddls := messages(t, conn)
	if len(ddls) != len(steps) {
		t.Fatalf("%d DDL messages for %d commands: %+v", len(ddls), len(steps), ddls)
	}
	for i, s := range steps {
		d := ddls[i]
		if d.Tag != s.tag || d.Query != s.sql || d.User != "postgres" {
			t.Errorf("command %d: %+v, want tag %q query %q", i, d, s.tag, s.sql)
		}
		if got, want := objs(d.Objects), objs(s.objects); got != want {
			t.Errorf("%s: objects\n%s\nwant\n%s", s.sql, got, want)
		}
	}

	if err := Uninstall(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE after_uninstall (id int)`); err != nil {
		t.Fatal(err)
	}
	if d := messages(t, conn); len(d) != 0 {
		t.Errorf("uninstalled, yet DDL messages: %+v", d)
	}
	if ok, _ := Installed(ctx, conn); ok {
		t.Error("still installed")
	}
}

// messages consumes the slot's DDL messages.
func messages(t *testing.T, conn *pgx.Conn) []wire.DDL {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT data FROM pg_logical_slot_get_changes('ddltest', NULL, NULL) WHERE data LIKE 'message:%'`)
	if err != nil {
		t.Fatal(err)
	}
	datas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.DDL
	for _, data := range datas {
		head, content, ok := strings.Cut(data, " content:")
		if !ok || head != "message: transactional: 1 prefix: "+wire.DDLPrefix+", sz: "+strconv.Itoa(len(content)) {
			t.Fatalf("message %q", data)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(content)))
		dec.DisallowUnknownFields()
		var d wire.DDL
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("content %s: %v", content, err)
		}
		out = append(out, d)
	}
	return out
}

func objs(os []wire.DDLObject) string {
	var b strings.Builder
	for _, o := range os {
		b.WriteString(strings.Join([]string{o.Type, o.Schema, o.Identity, map[bool]string{true: "dropped", false: "kept"}[o.Dropped]}, "|") + "\n")
	}
	return b.String()
}
