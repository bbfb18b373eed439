package route

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

var (
	testSource = &wire.Source{Name: "app", SystemID: 7, Timeline: 1, Database: "db", Slot: "app"}
	testTx     = &wire.Tx{Xid: 734, CommitLSN: 0x16B3748, EndLSN: 0x16B3780, CommitTime: 1795683600123456, Final: true}
)

func rel(schema, table string) *wire.Relation {
	return &wire.Relation{ID: 16384, Schema: schema, Table: table, ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
	}}
}

func rowEvent(op wire.Op, r *wire.Relation) *envelope.Event {
	c := &wire.Change{Op: op}
	switch op {
	case wire.OpInsert, wire.OpUpdate:
		c.New = []wire.Value{{Kind: wire.KindText, Data: []byte("1")}}
	case wire.OpDelete:
		c.OldKind = wire.OldKey
		c.Old = []wire.Value{{Kind: wire.KindText, Data: []byte("1")}}
	case wire.OpTruncate:
		c.TruncateRels = []int32{0}
	}
	return &envelope.Event{Source: testSource, Tx: testTx, Change: c, Rel: r}
}

func msgEvent(prefix string) *envelope.Event {
	return &envelope.Event{Source: testSource, Tx: testTx, Change: &wire.Change{Op: wire.OpMessage, Prefix: prefix, Content: []byte("{}")}}
}

// noticeEvent is a notice of kind as the collector writes it.
func noticeEvent(kind string) *envelope.Event {
	tx, err := wire.NoticeTx(wire.Notice{Kind: kind, Message: "m"}, 0x5000)
	if err != nil {
		panic(err)
	}
	return &envelope.Event{Source: testSource, Tx: &tx, Change: &tx.Changes[0]}
}

// Notices are the collector's word about the source: every route takes
// them, whatever its tables, operations, message prefixes or partition.
func TestNoticesPassEveryFilter(t *testing.T) {
	for _, c := range []Config{
		{},
		{Include: []string{"public.users"}},
		{Ops: []string{"insert"}},
		{Ops: []string{"message"}, MessagePrefixes: []string{"outbox*"}},
		{Exclude: []string{"*.*"}},
		{Subject: "users.events"},
	} {
		r := mustNew(t, c)
		if !r.Selects(noticeEvent(wire.NoticePhantoms)) {
			t.Errorf("%+v: a notice is not selected", c)
		}
	}
	// An application's own message that merely looks like one (it is
	// transactional) keeps to the filters.
	r := mustNew(t, Config{Ops: []string{"insert"}})
	ev := noticeEvent(wire.NoticePhantoms)
	ev.Change.Transactional = true
	if r.Selects(ev) {
		t.Error("a transactional message with the notice prefix passed a route without messages")
	}
	// Of partitioned routes sharing an output, exactly one publishes it.
	n := 0
	for i := range 4 {
		if mustNew(t, Config{Partition: i, Partitions: 4}).Selects(noticeEvent(wire.NoticePhantoms)) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 4 partitions publish a notice, want 1", n)
	}
}

// fieldErrors unpacks what New returns.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v (%T) is not joined", err, err)
	}
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %v (%T) is not a *FieldError", e, e)
		}
		out = append(out, fe)
	}
	return out
}

func mustNew(t testing.TB, c Config) *Route {
	t.Helper()
	r, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestOverlapsCovers(t *testing.T) {
	for _, tc := range []struct {
		a, b             string
		overlaps         bool
		aCovers, bCovers bool
	}{
		{"a.b", "a.b", true, true, true},
		{"a.b", "a.c", false, false, false},
		{"a.*", "a.b", true, true, false},
		{"a.*", "*.b", true, false, false},
		{"a.>", "a.b.c", true, true, false},
		{"a.>", "a", false, false, false},
		{">", "a", true, true, false},
		{"a.>", "a.*", true, true, false},
		{"a.*", "a.>", true, false, true},
		{"a.*.c", "a.>", true, false, true},
		{"*.*.*", "pgjet.raw.>", true, false, false},
		{"*.*", "pgjet.raw.>", false, false, false},
		{"postgres.*.*.*", "pgjet.raw.>", false, false, false},
		{"pgjet.>", "pgjet.raw.>", true, true, false},
		{"a.b", "a.b.c", false, false, false},
		{"a.*.c", "a.b.*", true, false, false},
		{"*", "*", true, true, true},
		{">", ">", true, true, true},
		{"*", ">", true, false, true},
	} {
		if got := Overlaps(tc.a, tc.b); got != tc.overlaps {
			t.Errorf("Overlaps(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := Overlaps(tc.b, tc.a); got != tc.overlaps {
			t.Errorf("Overlaps(%q, %q) = %v", tc.b, tc.a, got)
		}
		if got := Covers(tc.a, tc.b); got != tc.aCovers {
			t.Errorf("Covers(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := Covers(tc.b, tc.a); got != tc.bCovers {
			t.Errorf("Covers(%q, %q) = %v", tc.b, tc.a, got)
		}
		// Covering implies overlapping.
		if (tc.aCovers || tc.bCovers) && !tc.overlaps {
			t.Errorf("%q, %q: a cover that does not overlap", tc.a, tc.b)
		}
	}
}

func TestSelectsTables(t *testing.T) {
	for _, tc := range []struct {
		name             string
		include, exclude []string
		yes, no          [][2]string
	}{
		{"all by default", nil, nil, [][2]string{{"public", "users"}, {"x", "y"}}, nil},
		{"schema wildcard", []string{"public.*"}, nil, [][2]string{{"public", "users"}, {"public", "a/b"}}, [][2]string{{"sales", "users"}}},
		{"table prefix", []string{"sales.order_*"}, nil, [][2]string{{"sales", "order_items"}}, [][2]string{{"sales", "orders"}, {"public", "order_x"}}},
		{"any", []string{"*.*"}, nil, [][2]string{{"a", "b"}, {"a.b", "c.d"}, {"", ""}}, nil},
		{"exclude wins", []string{"public.*"}, []string{"public.secret*"}, [][2]string{{"public", "users"}}, [][2]string{{"public", "secrets"}, {"public", "secret/x"}}},
		{"exclude only", nil, []string{"audit.*"}, [][2]string{{"public", "users"}}, [][2]string{{"audit", "log"}}},
		{"dotted names split at the pattern's first dot", []string{"a.b.c"}, nil, [][2]string{{"a", "b.c"}}, [][2]string{{"a.b", "c"}}},
		{"class and ?", []string{"s[0-9].t?"}, nil, [][2]string{{"s1", "tx"}}, [][2]string{{"sx", "tx"}, {"s1", "txy"}}},
		{"slash is ordinary", []string{"public.a/*"}, nil, [][2]string{{"public", "a/b"}, {"public", "a/b/c"}}, [][2]string{{"public", "ab"}}},
		{"several includes", []string{"a.x", "b.*"}, nil, [][2]string{{"a", "x"}, {"b", "q"}}, [][2]string{{"a", "y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Include: tc.include, Exclude: tc.exclude})
			for _, ops := range []wire.Op{wire.OpInsert, wire.OpTruncate} {
				for _, st := range tc.yes {
					if !r.Selects(rowEvent(ops, rel(st[0], st[1]))) {
						t.Errorf("%s %s.%s not selected", ops, st[0], st[1])
					}
				}
				for _, st := range tc.no {
					if r.Selects(rowEvent(ops, rel(st[0], st[1]))) {
						t.Errorf("%s %s.%s selected", ops, st[0], st[1])
					}
				}
			}
		})
	}
}

func TestSelectsOpsAndMessages(t *testing.T) {
	users := rel("public", "users")
	all := mustNew(t, Config{})
	for _, op := range []wire.Op{wire.OpInsert, wire.OpUpdate, wire.OpDelete, wire.OpTruncate} {
		if !all.Selects(rowEvent(op, users)) {
			t.Errorf("default route does not select %s", op)
		}
	}
	if !all.Selects(msgEvent("anything")) {
		t.Error("default route does not select messages")
	}
	if all.Selects(&envelope.Event{Change: &wire.Change{Op: wire.OpInsert}}) {
		t.Error("row change without a relation selected")
	}
	if all.Selects(&envelope.Event{Change: &wire.Change{Op: 9}, Rel: users}) {
		t.Error("unknown op selected")
	}

	r := mustNew(t, Config{Ops: []string{"insert", "delete", "insert"}})
	for op, want := range map[wire.Op]bool{wire.OpInsert: true, wire.OpUpdate: false, wire.OpDelete: true, wire.OpTruncate: false} {
		if got := r.Selects(rowEvent(op, users)); got != want {
			t.Errorf("ops insert,delete: Selects(%s) = %v", op, got)
		}
	}
	if r.Selects(msgEvent("x")) {
		t.Error("ops insert,delete selects a message")
	}

	m := mustNew(t, Config{Ops: []string{"message"}, MessagePrefixes: []string{"outbox*", "audit"}, Include: []string{"nothing.here"}})
	for p, want := range map[string]bool{"outbox": true, "outbox/orders": true, "outbox.orders": true, "audit": true, "audit2": false, "": false, "x-outbox": false} {
		if got := m.Selects(msgEvent(p)); got != want {
			t.Errorf("message prefix %q: Selects = %v", p, got)
		}
	}
	if m.Selects(rowEvent(wire.OpInsert, users)) {
		t.Error("ops message selects an insert")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want map[string]string // field -> part of its error
	}{
		{"include without dot", Config{Include: []string{"public.*", "x.y", "users"}}, map[string]string{"tables.include[2]": "must be schema.table"}},
		{"include bad syntax", Config{Include: []string{"public.[a"}}, map[string]string{"tables.include[0]": "bad pattern"}},
		{"include empty side", Config{Include: []string{".users"}}, map[string]string{"tables.include[0]": "schema.table"}},
		{"exclude", Config{Exclude: []string{"a.\\"}}, map[string]string{"tables.exclude[0]": "bad pattern"}},
		{"op", Config{Ops: []string{"insert", "upsert"}}, map[string]string{"operations[1]": `unknown operation "upsert"; use insert, update, delete, truncate, message`}},
		{"op case", Config{Ops: []string{"INSERT"}}, map[string]string{"operations[0]": "unknown operation"}},
		{"message prefix", Config{MessagePrefixes: []string{"ok", "[x"}}, map[string]string{"message_prefixes[1]": "bad pattern"}},
		{"rule table", Config{Columns: []ColumnRule{{Table: "users", Drop: []string{"a"}}}}, map[string]string{"columns[0].table": "schema.table"}},
		{"rule without columns", Config{Columns: []ColumnRule{{Table: "a.b", Drop: []string{"x"}}, {Table: "a.b"}}}, map[string]string{"columns[1]": "names no columns"}},
		{"rule column twice", Config{HashKey: make([]byte, 16), Columns: []ColumnRule{{Table: "a.b", Drop: []string{"x"}, Mask: map[string]string{"email": "*", "x": "?"}, Hash: []string{"email"}}}},
			map[string]string{"columns[0].mask.x": `"x" is both dropped and masked`, "columns[0].hash[0]": `"email" is both masked and hashed`}},
		{"rule empty column", Config{Columns: []ColumnRule{{Table: "a.b", Drop: []string{""}}}}, map[string]string{"columns[0].drop[0]": "empty column name"}},
		{"mask not UTF-8", Config{Columns: []ColumnRule{{Table: "a.b", Mask: map[string]string{"e": "\xff"}}}}, map[string]string{"columns[0].mask.e": "UTF-8"}},
		{"hash without key", Config{Columns: []ColumnRule{{Table: "a.b", Hash: []string{"e"}}}}, map[string]string{"hash_key": "hash key is required"}},
		{"bad hashing rule still needs the key", Config{Columns: []ColumnRule{{Table: "users", Hash: []string{"e"}}}},
			map[string]string{"columns[0].table": "schema.table", "hash_key": "required"}},
		{"hash with short key", Config{HashKey: []byte("short"), Columns: []ColumnRule{{Table: "a.b", Hash: []string{"e"}}, {Table: "c.d", Hash: []string{"f"}}}},
			map[string]string{"hash_key": "5 bytes, at least 16"}},
		{"all at once", Config{Prefix: "a..b", Subject: "x.{nope}", Include: []string{"u"}, Ops: []string{"x"}, Columns: []ColumnRule{{Table: "a.b", Hash: []string{"h"}}}},
			map[string]string{"prefix": "empty token", "subject": "unknown placeholder", "tables.include[0]": "schema.table", "operations[0]": "unknown", "hash_key": "required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.c)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if r != nil {
				t.Error("New returned a route with its error")
			}
			got := map[string]string{}
			for _, fe := range fieldErrors(t, err) {
				if _, dup := got[fe.Field]; dup {
					t.Errorf("field %s reported twice: %v", fe.Field, err)
				}
				got[fe.Field] = fe.Error()
				if !strings.HasPrefix(fe.Error(), fe.Field+": ") || strings.Contains(fe.Error(), "\n") {
					t.Errorf("error %q: want one line starting with the field", fe.Error())
				}
			}
			for f, want := range tc.want {
				if !strings.Contains(got[f], want) {
					t.Errorf("field %s: got %q, want it to contain %q (all: %v)", f, got[f], want, err)
				}
			}
			for f := range got {
				if _, ok := tc.want[f]; !ok {
					t.Errorf("unexpected error on %s: %s", f, got[f])
				}
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	_, err := New(Config{Ops: []string{"x"}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "operations[0]" || errors.Unwrap(fe) != fe.Err {
		t.Errorf("error %v: want a *FieldError on operations[0] that unwraps to its cause", err)
	}
	if got, want := err.Error(), `operations[0]: unknown operation "x"; use insert, update, delete, truncate, message`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

func TestHashKeyWithoutHashRules(t *testing.T) {
	// A key is harmless without rules that use it: a pipeline may set it
	// for all sinks.
	mustNew(t, Config{HashKey: []byte("short")})
}

func TestSubjectsUnique(t *testing.T) {
	r := mustNew(t, Config{Subject: "ev.{source}", MessageSubject: "ev.{source}"})
	if got, want := r.Subjects(), []string{"ev.*", "postgres._notices.*", "postgres._deadletter"}; !slices.Equal(got, want) {
		t.Errorf("Subjects() = %q, want %q", got, want)
	}
}
