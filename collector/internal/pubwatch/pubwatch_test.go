package pubwatch

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgjet/pgjet/shared/pgtest"
)

// Read describes each kind of publication as the server has it (row
// filters, column lists, schemas, all tables, partition root, generated
// columns where the server has the option), and Watch logs every change of
// one while it runs: a table added or removed, FOR ALL TABLES, TABLES IN
// SCHEMA, options.
func TestReadAndWatch(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := t.Context()
	conn := pg.Connect(t)
	exec := pgtest.Execer(t, conn)
	exec(`CREATE TABLE a (id int PRIMARY KEY, v text, w text); CREATE TABLE "B" (id int PRIMARY KEY);
		CREATE SCHEMA s; CREATE TABLE s.t (id int PRIMARY KEY);
		CREATE PUBLICATION filtered FOR TABLE a (id, v) WHERE (id > 10), "B" WITH (publish = 'insert, update');
		CREATE PUBLICATION everything FOR ALL TABLES WITH (publish_via_partition_root = true);
		CREATE PUBLICATION schemas FOR TABLES IN SCHEMA s`)
	f, err := Probe(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !f.ViaRoot || !f.Schemas || !f.Filters {
		t.Fatalf("features %+v on a server of version 15 or later", f)
	}
	var num int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		t.Fatal(err)
	}
	if f.GeneratedColumns != (num >= 180000) {
		t.Errorf("generated columns option %v on server_version_num %d", f.GeneratedColumns, num)
	}

	s, ok, err := Read(ctx, conn, f, "filtered")
	if err != nil || !ok {
		t.Fatalf("read: %v %v", ok, err)
	}
	if len(s.Tables) != 2 || s.Tables[0].Name != `public."B"` || s.Tables[1].Name != "public.a" ||
		s.Tables[1].RowFilter != "(id > 10)" || strings.Join(s.Tables[1].Columns, ",") != "id,v" || s.Tables[0].Columns != nil {
		t.Errorf("tables %+v", s.Tables)
	}
	if strings.Join(s.Operations, ",") != "insert,update" || s.AllTables || s.ViaRoot {
		t.Errorf("state %+v", s)
	}
	if s, _, _ := Read(ctx, conn, f, "everything"); !s.AllTables || !s.ViaRoot {
		t.Errorf("everything: %+v", s)
	}
	if s, _, _ := Read(ctx, conn, f, "schemas"); strings.Join(s.Schemas, ",") != "s" || len(s.Tables) != 1 || s.Tables[0].Name != "s.t" {
		t.Errorf("schemas: %+v", s)
	}
	if _, ok, err := Read(ctx, conn, f, "nope"); ok || err != nil {
		t.Errorf("missing publication: %v %v", ok, err)
	}

	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, nil))
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	first, _, err := Read(ctx, conn, f, "filtered")
	if err != nil {
		t.Fatal(err)
	}
	go func() { Watch(watchCtx, pg.DSN(""), "filtered", 50*time.Millisecond, first, log); close(done) }()
	defer func() { stop(); <-done }()
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			got := buf.String()
			mu.Unlock()
			if strings.Contains(got, want) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the log does not say %q:\n%s", want, buf.String())
	}
	exec(`ALTER PUBLICATION filtered DROP TABLE "B"`)
	waitLog(`publication filtered changed: table public.\"B\" removed: its changes are no longer streamed`)
	exec(`ALTER PUBLICATION filtered SET TABLE a WHERE (id > 20)`)
	waitLog(`table public.a row filter \"(id > 10)\" -> \"(id > 20)\"`)
	waitLog(`table public.a columns (id, v) -> (all)`)
	exec(`ALTER PUBLICATION filtered ADD TABLES IN SCHEMA s`)
	waitLog("TABLES IN SCHEMA (none) -> s")
	waitLog("table s.t added")
	exec(`CREATE TABLE s.later (id int)`)
	waitLog("table s.later added")
	exec(`ALTER PUBLICATION filtered SET (publish_via_partition_root = true, publish = 'insert, update, delete')`)
	waitLog("publish_via_partition_root false -> true")
	waitLog("publish insert, update -> insert, update, delete")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
