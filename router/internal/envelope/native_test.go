package envelope

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

var (
	source = &wire.Source{Name: "app", SystemID: 7312345678901234567, Timeline: 1, Database: "shop", Slot: "pgjet_app"}
	tx     = &wire.Tx{
		Xid:        734,
		CommitLSN:  0x16B3748,
		EndLSN:     0x16B3778,
		CommitTime: time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC).UnixMicro(),
		Final:      true,
	}
	// users has the default replica identity: its primary key.
	users = &wire.Relation{ID: 16390, Schema: "public", Table: "users", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: pgtype.Int8OID, Key: true},
		{Name: "email", TypeOID: pgtype.TextOID},
		{Name: "bio", TypeOID: pgtype.TextOID},
		{Name: "balance", TypeOID: pgtype.NumericOID},
		{Name: "tags", TypeOID: pgtype.TextArrayOID},
		{Name: "created_at", TypeOID: pgtype.TimestamptzOID},
		{Name: "settings", TypeOID: pgtype.JSONBOID},
		{Name: "mood", TypeOID: 16400, Type: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e'}},
	}}
	// accounts has REPLICA IDENTITY FULL: pgoutput flags every column as key.
	accounts = &wire.Relation{ID: 16391, Schema: "billing", Table: "accounts", ReplicaIdentity: 'f', Columns: []wire.Column{
		{Name: "no", TypeOID: pgtype.Int4OID, Key: true},
		{Name: "owner", TypeOID: pgtype.TextOID, Key: true},
		{Name: "limit", TypeOID: pgtype.NumericOID, Key: true},
	}}
	// events has no key at all (REPLICA IDENTITY NOTHING, inserts only).
	events = &wire.Relation{ID: 16392, Schema: "public", Table: "events", ReplicaIdentity: 'n', Columns: []wire.Column{
		{Name: "at", TypeOID: pgtype.TimestampOID},
		{Name: "payload", TypeOID: pgtype.JSONOID},
	}}
)

// Transactions of snapshot reads: three rows of an initial snapshot, the
// first of the snapshot and of its table at index 40, read in transaction
// 733 of epoch 1, and a backfill chunk's (no transaction).
var (
	initialTx = &wire.Tx{Xid: 733, CommitLSN: 0x16B3747, CommitTime: tx.CommitTime, FirstChange: 40, Changes: make([]wire.Change, 3),
		Snapshot: &wire.Snapshot{Kind: wire.SnapshotInitial, ID: "initial", Marks: wire.SnapshotFirst | wire.SnapshotFirstInTable, Xid: 1<<32 | 733}}
	backfillTx = &wire.Tx{CommitLSN: 0x16B3779, CommitTime: tx.CommitTime, Changes: make([]wire.Change, 1),
		Snapshot: &wire.Snapshot{Kind: wire.SnapshotIncremental, ID: "b-1"}}
)

func t_(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

var (
	null      = wire.Value{Kind: wire.KindNull}
	unchanged = wire.Value{Kind: wire.KindUnchanged}
)

func user(id string) []wire.Value {
	return []wire.Value{
		t_(id), t_("ann@example.com"), t_("Likes \"quotes\"\nand newlines"), t_("1234567890.50"),
		t_(`{admin,"x, y",NULL}`), t_("2026-11-23 08:59:59.5+00"), t_(`{"theme": "dark", "n": [1, 2.0]}`), t_("happy"),
	}
}

var goldenCases = []struct {
	name string
	ev   Event
}{
	{"insert", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")}, Rel: users, Index: 0}},
	{"insert_no_key", Event{Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{t_("2026-01-01 00:00:00"), t_(`[1, {"a": null}]`)}}, Rel: events, Index: 1}},
	{"update_old_key", Event{Change: &wire.Change{
		Op: wire.OpUpdate, OldKind: wire.OldKey,
		Old: []wire.Value{t_("1"), null, null, null, null, null, null, null},
		New: user("2"),
	}, Rel: users, Index: 3}},
	{"update_old_full", Event{Change: &wire.Change{
		Op: wire.OpUpdate, OldKind: wire.OldFull,
		Old: []wire.Value{t_("7"), t_("bob"), t_("100.00")},
		New: []wire.Value{t_("7"), t_("bob"), null},
	}, Rel: accounts, Index: 4}},
	{"update_unchanged_toast", Event{Change: &wire.Change{
		Op:  wire.OpUpdate,
		New: []wire.Value{t_("1"), t_("new@example.com"), unchanged, t_("0"), null, t_("2026-11-23 09:00:00+00"), unchanged, t_("sad")},
	}, Rel: users, Index: 5}},
	{"delete", Event{Change: &wire.Change{
		Op: wire.OpDelete, OldKind: wire.OldKey,
		Old: []wire.Value{t_("1"), null, null, null, null, null, null, null},
	}, Rel: users, Index: 6}},
	{"delete_old_full_unchanged", Event{Change: &wire.Change{
		Op: wire.OpDelete, OldKind: wire.OldFull,
		Old: []wire.Value{t_("7"), unchanged, t_("NaN")},
	}, Rel: accounts, Index: 7}},
	{"truncate_options", Event{Change: &wire.Change{
		Op: wire.OpTruncate, TruncateRels: []int32{0, 1}, TruncateOptions: wire.TruncateCascade | wire.TruncateRestartIdentity,
	}, Rel: users, Index: 8}},
	{"truncate", Event{Change: &wire.Change{Op: wire.OpTruncate, TruncateRels: []int32{0}}, Rel: accounts, Index: 9}},
	{"message_utf8", Event{Change: &wire.Change{
		Op: wire.OpMessage, Prefix: "outbox", Content: []byte(`{"order":42,"note":"café"}`), Transactional: true,
	}, Index: 10}},
	{"message_binary", Event{Change: &wire.Change{
		Op: wire.OpMessage, Prefix: "bin", Content: []byte{0x00, 0xff, 0xfe, 'a'}, Transactional: false,
	}, Index: 11}},
	{"read_initial_first", Event{Change: &wire.Change{Op: wire.OpRead, New: user("1")}, Rel: users, Tx: initialTx, Index: 40}},
	{"read_initial", Event{Change: &wire.Change{Op: wire.OpRead, New: []wire.Value{t_("7"), t_("bob"), t_("100.00")}}, Rel: accounts, Tx: initialTx, Index: 41}},
	{"read_incremental", Event{Change: &wire.Change{Op: wire.OpRead, New: user("2")}, Rel: users, Tx: backfillTx, Index: 0}},
}

func TestNativeGolden(t *testing.T) {
	n := NewNative()
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			ev := gc.ev
			ev.Source = source
			if ev.Tx == nil {
				ev.Tx = tx
			}
			got, err := n.Append(nil, &ev)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			golden(t, filepath.Join("testdata", gc.name+".golden"), append(got, '\n'))
		})
	}
}

func TestNativeAppendsToBuffer(t *testing.T) {
	n := NewNative()
	ev := Event{Source: source, Tx: tx, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}, Rel: users}
	b, err := n.Append([]byte("x"), &ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err = n.Append(b, &ev)
	if err != nil {
		t.Fatal(err)
	}
	one := (len(b) - 1) / 2
	if b[0] != 'x' || !json.Valid(b[1:1+one]) || !json.Valid(b[1+one:]) {
		t.Fatalf("appending twice gave %s", b)
	}
}

func TestNativeErrors(t *testing.T) {
	bad := user("1")
	bad[3] = t_("12abc")
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"undecodable value", Event{Change: &wire.Change{Op: wire.OpInsert, New: bad}, Rel: users}, "decode public.users.balance: invalid numeric"},
		{"undecodable old value", Event{Change: &wire.Change{Op: wire.OpDelete, OldKind: wire.OldFull, Old: []wire.Value{t_("x"), t_("a"), t_("1")}}, Rel: accounts}, "decode billing.accounts.no: invalid int4"},
		{"short tuple", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")[:3]}, Rel: users}, "tuple has 3 values, relation has 8 columns"},
		{"unknown old kind", Event{Change: &wire.Change{Op: wire.OpDelete, OldKind: 'Z', Old: user("1")}, Rel: users}, "old tuple of unknown kind"},
		{"no relation", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}, "no relation"},
		{"unknown op", Event{Change: &wire.Change{Op: 42}, Rel: users}, "unknown op 42"},
		{"no change", Event{Rel: users}, "lacks its source, transaction or change"},
	}
	n := NewNative()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			ev.Source = source
			if ev.Tx == nil {
				ev.Tx = tx
			}
			b, err := n.Append([]byte("keep"), &ev)
			if err == nil {
				t.Fatalf("no error: %s", b)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if string(b) != "keep" {
				t.Errorf("buffer changed on error: %q", b)
			}
		})
	}
}

// hostile strings: quotes, escapes, control characters, invalid UTF-8,
// JSON-looking text, separators that break naive line-based consumers.
var hostile = []string{
	`"}],"op":"delete`,
	"\\\"\\",
	"\x00\x01\x1f\x7f",
	"\xff\xfe\xc0\xaf\xed\xa0\x80",
	"\u2028\u2029</script>",
	"é🎉\xe2\x82",
	"",
	strings.Repeat("\"\\\n", 100),
}

// hostileEvents are events with s everywhere a string can go.
func hostileEvents(s string) []Event {
	rel := &wire.Relation{Schema: s, Table: s, Columns: []wire.Column{
		{Name: s, TypeOID: pgtype.TextOID, Key: true},
		{Name: s + "2", TypeOID: pgtype.VarcharOID},
		{Name: s + "3", TypeOID: pgtype.TextArrayOID},
		{Name: s + "4", TypeOID: 16500},
	}}
	arr := `{"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"}`
	src := &wire.Source{Name: s}
	changes := []*wire.Change{
		{Op: wire.OpInsert, New: []wire.Value{t_(s), t_(s), t_(arr), t_(s)}},
		{Op: wire.OpUpdate, OldKind: wire.OldKey, Old: []wire.Value{t_(s), null, null, null}, New: []wire.Value{t_(s), unchanged, t_(arr), t_(s)}},
		{Op: wire.OpDelete, OldKind: wire.OldFull, Old: []wire.Value{t_(s), t_(s), null, t_(s)}},
		{Op: wire.OpTruncate, TruncateOptions: 0xff},
		{Op: wire.OpMessage, Prefix: s, Content: []byte(s), Transactional: true},
	}
	evs := make([]Event, len(changes))
	for i, c := range changes {
		evs[i] = Event{Source: src, Tx: tx, Change: c, Rel: rel}
	}
	return evs
}

// checkHostile renders the events of hostileEvents(s) and checks the output
// is valid JSON in valid UTF-8.
func checkHostile(t *testing.T, n *Native, s string) {
	t.Helper()
	for _, ev := range hostileEvents(s) {
		c := ev.Change
		b, err := n.Append(nil, &ev)
		if err != nil {
			t.Fatalf("%s %q: %v", c.Op, s, err)
		}
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("%s %q: invalid JSON: %s", c.Op, s, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["op"] != c.Op.String() {
			t.Fatalf("%s %q: op became %v", c.Op, s, m["op"])
		}
	}
}

func TestNativeHostileContentIsValidJSON(t *testing.T) {
	n := NewNative()
	for _, s := range hostile {
		checkHostile(t, n, s)
	}
}

func FuzzNativeHostileContent(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	n := NewNative()
	f.Fuzz(func(t *testing.T, s string) {
		checkHostile(t, n, s)
	})
}

// BenchmarkNativeInsert renders a typical 10-column insert.
func BenchmarkNativeInsert(b *testing.B) {
	ev := benchInsert()
	n := NewNative()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = n.Append(buf[:0], &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// benchInsert is a typical 10-column insert.
func benchInsert() Event {
	rel := &wire.Relation{Schema: "public", Table: "orders", Columns: []wire.Column{
		{Name: "id", TypeOID: pgtype.Int8OID, Key: true},
		{Name: "customer_id", TypeOID: pgtype.Int4OID},
		{Name: "email", TypeOID: pgtype.TextOID},
		{Name: "status", TypeOID: pgtype.VarcharOID},
		{Name: "total", TypeOID: pgtype.NumericOID},
		{Name: "paid", TypeOID: pgtype.BoolOID},
		{Name: "created_at", TypeOID: pgtype.TimestamptzOID},
		{Name: "ship_date", TypeOID: pgtype.DateOID},
		{Name: "ref", TypeOID: pgtype.UUIDOID},
		{Name: "meta", TypeOID: pgtype.JSONBOID},
	}}
	ev := Event{Source: source, Tx: tx, Rel: rel, Index: 12, Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{
		t_("1234567"), t_("42"), t_("someone@example.com"), t_("pending"), t_("199.90"), t_("f"),
		t_("2026-11-23 09:00:00.123456+00"), t_("2026-11-25"), t_("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
		t_(`{"channel": "web", "items": 3}`),
	}}}
	return ev
}

func TestNativeLSNAndCommitTime(t *testing.T) {
	n := NewNative()
	tests := []struct {
		lsn        uint64
		commitTime int64
		want       string
	}{
		{0x1_0000_00AB, 0, `"lsn":"1/AB","xid":1,"commit_time":"1970-01-01T00:00:00Z"`},
		{0xFFFFFFFF_FFFFFFFF, 1, `"lsn":"FFFFFFFF/FFFFFFFF","xid":1,"commit_time":"1970-01-01T00:00:00.000001Z"`},
		{0, -1, `"lsn":"0/0","xid":1,"commit_time":"1969-12-31T23:59:59.999999Z"`},
	}
	for _, tt := range tests {
		ev := Event{Source: source, Tx: &wire.Tx{Xid: 1, CommitLSN: tt.lsn, CommitTime: tt.commitTime}, Change: &wire.Change{Op: wire.OpMessage}}
		b, err := n.Append(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tt.want) {
			t.Errorf("got %s, want it to contain %s", b, tt.want)
		}
	}
}
