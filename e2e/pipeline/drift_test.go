package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// Invariant: with DDL capture installed (pgjet-collector ddl-capture
// install, as docs/postgres.md says), consumers see each DDL command as a
// message event with prefix pgjet.ddl whose content is the command's tag,
// text and objects, at its transaction's commit position and time: after
// the changes committed before it and before those committed after it,
// which use the new column. Uninstalled, DDL leaves no event.
func TestDDLCapture(t *testing.T) {
	e := newEnv(t, `CREATE TABLE orders (id serial PRIMARY KEY, amount numeric)`, "public.orders")
	out, code := runCmd(t, nil, "pgjet-collector", "ddl-capture", "install", "--dsn", e.pg.DSN(""))
	if code != 0 || !strings.Contains(out, "installed") {
		t.Fatalf("ddl-capture install: exit %d: %s", code, out)
	}
	e.collector()
	e.router()
	e.exec(`INSERT INTO orders (amount) VALUES (1)`)
	const alter = `ALTER TABLE orders ADD COLUMN coupon text`
	e.exec(alter)
	e.exec(`INSERT INTO orders (amount, coupon) VALUES (2, 'SPRING')`)
	if out, code := runCmd(t, nil, "pgjet-collector", "ddl-capture", "uninstall", "--dsn", e.pg.DSN("")); code != 0 {
		t.Fatalf("ddl-capture uninstall: exit %d: %s", code, out)
	}
	e.exec(`ALTER TABLE orders ADD COLUMN not_captured int`)
	e.exec(`INSERT INTO orders (amount, coupon) VALUES (3, 'LAST')`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	type doc struct {
		Op         string          `json:"op"`
		LSN        string          `json:"lsn"`
		CommitTime string          `json:"commit_time"`
		Prefix     string          `json:"prefix"`
		Content    string          `json:"content"`
		After      json.RawMessage `json:"after"`
	}
	var seq []string
	var ddl *doc
	var lsns []uint64
	for _, m := range readStream(ctx, t, js, "PGJET_EVENTS", 4) {
		var d doc
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			t.Fatalf("%s: %v", m.Subject(), err)
		}
		lsn, err := check.ParseLSN(d.LSN)
		if err != nil {
			t.Fatal(err)
		}
		lsns = append(lsns, lsn)
		switch d.Op {
		case "message":
			seq = append(seq, "ddl")
			ddl = &d
			if m.Subject() != "postgres._messages.pgjet%2Eddl" {
				t.Errorf("DDL event on subject %s", m.Subject())
			}
		case "insert":
			seq = append(seq, "insert "+string(d.After))
		default:
			seq = append(seq, d.Op)
		}
	}
	if len(seq) != 4 || seq[1] != "ddl" || !strings.HasPrefix(seq[0], "insert") || !strings.Contains(seq[2], `"coupon":"SPRING"`) || !strings.Contains(seq[3], `"LAST"`) {
		t.Fatalf("events %q: want insert, the DDL, the insert using its column, and no DDL after uninstall", seq)
	}
	for i := 1; i < len(lsns); i++ {
		if lsns[i] <= lsns[i-1] {
			t.Errorf("events not in commit order: %x", lsns)
		}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(ddl.Content)))
	dec.DisallowUnknownFields()
	var d wire.DDL
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("DDL content %s: %v", ddl.Content, err)
	}
	if d.Tag != "ALTER TABLE" || d.Query != alter || len(d.Objects) != 1 || d.Objects[0].Identity != "public.orders" {
		t.Errorf("DDL %+v", d)
	}
	var committed time.Time
	if err := e.conn.QueryRow(ctx, `SELECT now()`).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, ddl.CommitTime)
	if err != nil || at.After(committed) || committed.Sub(at) > time.Minute {
		t.Errorf("DDL commit_time %q (%v), now %v", ddl.CommitTime, err, committed)
	}
}

const partitionedSchema = `
CREATE TABLE measurements (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE m_2024_01 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE m_2024_02 PARTITION OF measurements FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
`

// Invariant: changes of a partitioned table are named as the user chose:
// with publish_via_partition_root on, by the root table, whatever the
// partition, including partitions created or attached while streaming;
// off (the default), by each partition, new ones included. A detached
// partition's later changes are not streamed; a partition's rows written
// before it was attached are not either (they were never changes of the
// published table). A row moved across partitions arrives as a delete and
// an insert. Every change exactly once, in commit order.
func TestPartitionedTables(t *testing.T) {
	for _, viaRoot := range []bool{true, false} {
		t.Run(fmt.Sprintf("publish_via_partition_root=%v", viaRoot), func(t *testing.T) {
			e := newEnv(t, partitionedSchema, "public.measurements")
			e.exec(fmt.Sprintf(`CREATE PUBLICATION pgjet_e2e FOR TABLE measurements WITH (publish_via_partition_root = %v)`, viaRoot))
			e.collector()
			e.router()
			e.exec(`INSERT INTO measurements SELECT g, DATE '2024-01-01' + (g % 50), 'v' || g FROM generate_series(1, 100) g`)
			e.exec(`UPDATE measurements SET v = v || '!' WHERE id % 10 = 0`)
			e.exec(`UPDATE measurements SET at = DATE '2024-02-15' WHERE id = 3`) // moves across partitions
			e.exec(`DELETE FROM measurements WHERE id % 25 = 0`)

			// Attached while streaming, with rows from before (not streamed:
			// no audit trigger yet either).
			e.exec(`CREATE TABLE m_2024_03 (LIKE measurements INCLUDING ALL)`)
			e.exec(`INSERT INTO m_2024_03 VALUES (1000, '2024-03-05', 'before attach')`)
			e.exec(`ALTER TABLE measurements ATTACH PARTITION m_2024_03 FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')`)
			e.exec(`INSERT INTO measurements VALUES (1001, '2024-03-06', 'after attach')`)
			e.exec(`CREATE TABLE m_2024_04 PARTITION OF measurements FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')`)
			e.exec(`INSERT INTO measurements VALUES (1002, '2024-04-06', 'new partition')`)

			// Detached while streaming: its own changes from then on are
			// not the published table's.
			e.exec(`ALTER TABLE measurements DETACH PARTITION m_2024_01`)
			e.exec(`DROP TRIGGER IF EXISTS pgjet_audit_row ON m_2024_01`)
			e.exec(`INSERT INTO m_2024_01 VALUES (2000, '2024-01-09', 'after detach')`)
			e.exec(`INSERT INTO measurements VALUES (1003, '2024-02-20', 'still published')`)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			changes, err := check.ReadAudit(ctx, e.conn)
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for i := range changes {
				if !strings.HasPrefix(changes[i].Table, "m_") {
					t.Fatalf("audit row for %s", changes[i].Table)
				}
				if viaRoot {
					changes[i].Table = "measurements"
				}
				if changes[i].Op == "delete" && rowID(t, changes[i].Before) == 3 {
					moved++
				}
			}
			if moved != 1 {
				t.Fatalf("the audit holds %d changes of the moved row with its old values, want 1 (a delete)", moved)
			}
			_, js := e.nats.Connect(t)
			events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", len(changes), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			tables := map[string]int{}
			for _, ev := range events {
				tables[ev.Table]++
				if ev.Op == "update" && rowID(t, ev.After) == 3 {
					t.Errorf("the row moved across partitions arrived as an update")
				}
			}
			r := check.Check(changes, events)
			t.Logf("%s; events by table: %v", r.String(), tables)
			if !r.OK() {
				t.Fatalf("invariant violated: %s", r.String())
			}
			want := []string{"measurements"}
			if !viaRoot {
				want = []string{"m_2024_01", "m_2024_02", "m_2024_03", "m_2024_04"}
			}
			if len(tables) != len(want) {
				t.Errorf("events name tables %v, want %v", tables, want)
			}
			for _, w := range want {
				if tables[w] == 0 {
					t.Errorf("no event names %s (events by table: %v)", w, tables)
				}
			}
		})
	}
}

// rowID is a row's id column.
func rowID(t *testing.T, row json.RawMessage) int {
	t.Helper()
	var r struct{ ID int }
	if err := json.Unmarshal(row, &r); err != nil {
		t.Fatalf("row %s: %v", row, err)
	}
	return r.ID
}

// Invariant: stored generated columns arrive where the server can publish
// them (publish_generated_columns, PostgreSQL 18, which a publication
// pgjet creates sets) with the value Postgres stored, and are absent
// before (the server never sends them); detected from the catalog, not
// from the version. Virtual generated columns (PostgreSQL 18) are never
// sent. Every other value equals to_jsonb.
func TestGeneratedColumns(t *testing.T) {
	e := newEnv(t, `CREATE TABLE items (id int PRIMARY KEY, price numeric, qty int, total numeric GENERATED ALWAYS AS (price * qty) STORED)`, "public.items")
	var published, virtual bool
	if err := e.conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubgencols')`).Scan(&published); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.Exec(context.Background(), `ALTER TABLE items ADD COLUMN label text GENERATED ALWAYS AS ('#' || id) VIRTUAL`); err == nil {
		virtual = true
	}
	major, err := e.pg.Major(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %d: stored generated columns published: %v; virtual generated columns exist: %v", major, published, virtual)
	e.collector()
	e.router()
	e.exec(`INSERT INTO items (id, price, qty) VALUES (1, 2.50, 4), (2, 10, 1)`)
	e.exec(`UPDATE items SET qty = qty + 1`)
	e.exec(`DELETE FROM items WHERE id = 2`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	// to_jsonb shows every column; the server sends what it publishes.
	changes = rewriteColumns(t, changes, func(col string, v json.RawMessage) (json.RawMessage, bool) {
		return v, col != "label" && (col != "total" || published)
	})
	_, js := e.nats.Connect(t)
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", len(changes), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := check.Check(changes, events)
	t.Logf("%s", r.String())
	if !r.OK() {
		t.Fatalf("invariant violated: %s", r.String())
	}
	for _, ev := range events {
		if ev.Op == "insert" && strings.Contains(string(ev.After), `"total"`) != published {
			t.Errorf("insert %s: total present %v, want %v", ev.After, !published, published)
		}
	}
	if published && !strings.Contains(string(events[0].After), `"total":10.00`) {
		t.Errorf("first insert %s: want total 10.00 (2.50 * 4)", events[0].After)
	}
}

// Invariant: a publication changed while the collector runs (a table
// added, one removed, a schema added with TABLES IN SCHEMA) is logged by
// the collector, and the changes of the tables published from then on
// stream, those of the removed one no longer.
func TestPublicationChangesAreLogged(t *testing.T) {
	t.Parallel() // mostly waits for the watch's next reading
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
		CREATE SCHEMA s; CREATE TABLE s.c (id int PRIMARY KEY)`, "public.a", "public.b", "s.c")
	e.tables = "public.a"
	col := e.collector()
	e.router()
	e.exec(`DROP TRIGGER pgjet_audit_row ON b; DROP TRIGGER pgjet_audit_row ON s.c`)
	e.exec(`INSERT INTO a VALUES (1)`)
	e.exec(`INSERT INTO b VALUES (1)`) // not published yet
	e.exec(`ALTER PUBLICATION pgjet_e2e ADD TABLE b`)
	e.exec(`ALTER PUBLICATION pgjet_e2e DROP TABLE a`)
	e.exec(`ALTER PUBLICATION pgjet_e2e ADD TABLES IN SCHEMA s`)
	if err := check.InstallAudit(context.Background(), e.conn, "public.b", "s.c"); err != nil {
		t.Fatal(err)
	}
	e.exec(`DROP TRIGGER pgjet_audit_row ON a`)
	e.exec(`INSERT INTO a VALUES (2)`) // no longer published
	e.exec(`INSERT INTO b VALUES (2)`)
	e.exec(`INSERT INTO s.c VALUES (2)`)
	for _, want := range []string{
		"publication pgjet_e2e changed: table public.b added",
		"publication pgjet_e2e changed: table public.a removed: its changes are no longer streamed",
		"publication pgjet_e2e changed: TABLES IN SCHEMA (none) -> s",
		"publication pgjet_e2e changed: table s.c added",
	} {
		if !col.WaitForLog(want, time.Minute) {
			t.Fatalf("the collector did not log %q", want)
		}
	}
	e.verify(time.Minute)
	if strings.Contains(col.Log(), "level=ERROR") {
		t.Errorf("the collector logged an error")
	}
}

// Invariant: check warns about what makes the stream differ from the
// tables (row filters that turn updates into inserts or deletes, column
// lists, generated columns the server does not send) and says how
// partitions are named.
func TestCheckWarnsAboutWhatTheStreamLeavesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.Run(t)
	if err := pg.Exec(ctx, `CREATE TABLE f (id int PRIMARY KEY, region text, secret text);
		CREATE TABLE g (id int PRIMARY KEY, price numeric, total numeric GENERATED ALWAYS AS (price * 2) STORED);
		CREATE TABLE p (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
		CREATE PUBLICATION pgjet_check FOR TABLE f (id, region) WHERE (region = 'eu'), g, p`); err != nil {
		t.Fatal(err)
	}
	var gencols bool
	conn := pg.Connect(t)
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubgencols')`).Scan(&gencols); err != nil {
		t.Fatal(err)
	}
	n := harness.StartNATS(t, "")
	out, _ := runCmd(t, nil, "pgjet-collector", "check", "--dsn", pg.DSN(""), "--slot", "pgjet_check", "--publication", "pgjet_check", "--nats", n.URL())
	want := []string{
		"WARN table public.f is published with a row filter (WHERE (region = 'eu'::text)): rows outside it never arrive, an UPDATE that moves a row into it arrives as an INSERT, one that moves a row out of it as a DELETE",
		"WARN table public.f is published with a column list (id, region): its other columns never arrive",
		"OK   partitioned tables public.p: changes arrive named by each partition",
		"OK   DDL capture is not installed",
	}
	if gencols {
		want = append(want, "WARN stored generated columns public.g.total never arrive: publication pgjet_check has publish_generated_columns = none",
			`ALTER PUBLICATION "pgjet_check" SET (publish_generated_columns = stored)`)
	} else {
		want = append(want, "WARN stored generated columns public.g.total never arrive: this server does not publish generated columns (PostgreSQL 18 can)")
	}
	wantLines(t, "check", out, want...)
}
