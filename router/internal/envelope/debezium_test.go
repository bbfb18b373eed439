package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// numericMod is the atttypmod of numeric(p,s).
func numericMod(p, s int) int32 { return int32(p<<16|s) + 4 }

// typed has a column of most types Debezium encodes in its own way.
var typed = &wire.Relation{ID: 16393, Schema: "public", Table: "typed", ReplicaIdentity: 'd', Columns: []wire.Column{
	{Name: "id", TypeOID: pgtype.Int8OID, TypeMod: -1, Key: true},
	{Name: "n", TypeOID: pgtype.Int2OID, TypeMod: -1},
	{Name: "price", TypeOID: pgtype.NumericOID, TypeMod: numericMod(12, 2)},
	{Name: "ratio", TypeOID: pgtype.NumericOID, TypeMod: -1},
	{Name: "score", TypeOID: pgtype.Float8OID, TypeMod: -1},
	{Name: "weight", TypeOID: pgtype.Float4OID, TypeMod: -1},
	{Name: "ok", TypeOID: pgtype.BoolOID, TypeMod: -1},
	{Name: "born", TypeOID: pgtype.DateOID, TypeMod: -1},
	{Name: "wake", TypeOID: pgtype.TimeOID, TypeMod: -1},
	{Name: "wake_ms", TypeOID: pgtype.TimeOID, TypeMod: 3},
	{Name: "seen", TypeOID: pgtype.TimestampOID, TypeMod: -1},
	{Name: "seen_ms", TypeOID: pgtype.TimestampOID, TypeMod: 3},
	{Name: "at", TypeOID: pgtype.TimestamptzOID, TypeMod: -1},
	{Name: "alarm", TypeOID: pgtype.TimetzOID, TypeMod: -1},
	{Name: "took", TypeOID: pgtype.IntervalOID, TypeMod: -1},
	{Name: "doc", TypeOID: pgtype.JSONBOID, TypeMod: -1},
	{Name: "avatar", TypeOID: pgtype.ByteaOID, TypeMod: -1},
	{Name: "ref", TypeOID: pgtype.UUIDOID, TypeMod: -1},
	{Name: "mood", TypeOID: 16400, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e'}},
	{Name: "tags", TypeOID: pgtype.TextArrayOID, TypeMod: -1},
	{Name: "days", TypeOID: pgtype.DateArrayOID, TypeMod: -1},
	{Name: "cash", TypeOID: 790, TypeMod: -1},
	{Name: "flags", TypeOID: pgtype.BitOID, TypeMod: 4},
	{Name: "ip", TypeOID: pgtype.InetOID, TypeMod: -1},
	{Name: "spot", TypeOID: pgtype.PointOID, TypeMod: -1},
	{Name: "attrs", TypeOID: 16410, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: "hstore", Kind: 'b'}},
	{Name: "path", TypeOID: 16420, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: "ltree", Kind: 'b'}},
	{Name: "price2", TypeOID: 16430, TypeMod: numericMod(6, 2), Type: wire.TypeInfo{Schema: "public", Name: "price", Kind: 'd', BaseOID: pgtype.NumericOID}},
	{Name: "bits", TypeOID: pgtype.VarbitOID, TypeMod: -1},
}}

func typedRow(id string) []wire.Value {
	return []wire.Value{
		t_(id), t_("-7"), t_("1234567890.50"), t_("-0.0012500"), t_("0.1"), t_("3.4028235e+38"), t_("t"),
		t_("2024-02-29"), t_("13:45:06.789"), t_("13:45:06.789"), t_("2024-01-02 03:04:05.123456"), t_("1960-01-02 03:04:05.123"),
		t_("2024-06-30 23:59:59.5-07"), t_("13:45:06.789+05:30"), t_("1 year 2 mons 3 days 04:05:06.789"),
		t_(`{"a": [1, 2.50], "b": "é\n"}`), t_(`\x00ff10fe`), t_("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), t_("happy"),
		t_(`{a,"b c",NULL}`), t_(`{2024-01-02,infinity}`), t_("-$1,000.50"), t_("1010"), t_("192.168.0.1/24"), t_("(1.5,-2)"),
		t_(`"a"=>NULL, "b"=>"2", "key4"=>"x", "key5"=>"y"`), t_("Top.Science.Astronomy"), t_("1234.50"), t_("101"),
	}
}

var debeziumCases = []struct {
	name string
	ev   Event
}{
	{"insert", Event{Change: &wire.Change{Op: wire.OpInsert, New: typedRow("1")}, Rel: typed, Index: 0}},
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
	// REPLICA IDENTITY FULL: the old row is whole, so the unchanged TOAST
	// value is known and Debezium puts it in after (and the key) too.
	{"update_full_unchanged_toast", Event{Change: &wire.Change{
		Op: wire.OpUpdate, OldKind: wire.OldFull,
		Old: []wire.Value{t_("7"), t_("a long owner name, stored out of line"), t_("100.00")},
		New: []wire.Value{t_("7"), unchanged, t_("250.00")},
	}, Rel: accounts, Index: 7}},
	{"update_unchanged_toast", Event{Change: &wire.Change{
		Op:  wire.OpUpdate,
		New: []wire.Value{t_("1"), t_("new@example.com"), unchanged, t_("0"), unchanged, t_("2026-11-23 09:00:00+00"), unchanged, t_("sad")},
	}, Rel: users, Index: 5}},
	{"delete", Event{Change: &wire.Change{
		Op: wire.OpDelete, OldKind: wire.OldKey,
		Old: []wire.Value{t_("1"), null, null, null, null, null, null, null},
	}, Rel: users, Index: 6}},
	{"truncate", Event{Change: &wire.Change{Op: wire.OpTruncate, TruncateRels: []int32{0}, TruncateOptions: wire.TruncateCascade}, Rel: accounts, Index: 9}},
	{"message", Event{Change: &wire.Change{
		Op: wire.OpMessage, Prefix: "outbox", Content: []byte(`{"order":42,"note":"café"}`), Transactional: true,
	}, Index: 10}},
	{"message_nontransactional", Event{Change: &wire.Change{
		Op: wire.OpMessage, Prefix: "bin", Content: []byte{0x00, 0xff, 0xfe, 'a'}, Transactional: false,
	}, Index: 11}},
	{"read_first", Event{Change: &wire.Change{Op: wire.OpRead, New: typedRow("1")}, Rel: typed, Tx: initialTx, Index: 40}},
	{"read_incremental", Event{Change: &wire.Change{Op: wire.OpRead, New: user("2")}, Rel: users, Tx: backfillTx, Index: 0}},
}

// TestDebeziumSnapshotField: source.snapshot of each read of a fragment,
// by its marks, as Debezium ranks them.
func TestDebeziumSnapshotField(t *testing.T) {
	frag := func(kind wire.SnapshotKind, marks uint8) *wire.Tx {
		return &wire.Tx{FirstChange: 10, Changes: make([]wire.Change, 3), Snapshot: &wire.Snapshot{Kind: kind, Marks: marks}}
	}
	const (
		first  = wire.SnapshotFirst | wire.SnapshotFirstInTable
		last   = wire.SnapshotLast | wire.SnapshotLastInTable
		tFirst = wire.SnapshotFirstInTable
		tLast  = wire.SnapshotLastInTable
	)
	tests := []struct {
		tx   *wire.Tx
		want [3]string // of indexes 10, 11, 12
	}{
		{frag(wire.SnapshotInitial, 0), [3]string{"true", "true", "true"}},
		{frag(wire.SnapshotInitial, first), [3]string{"first", "true", "true"}},
		{frag(wire.SnapshotInitial, tFirst|tLast), [3]string{"first_in_data_collection", "true", "last_in_data_collection"}},
		{frag(wire.SnapshotInitial, first|tLast), [3]string{"first", "true", "last_in_data_collection"}},
		{frag(wire.SnapshotInitial, tFirst|last), [3]string{"first_in_data_collection", "true", "last"}},
		{frag(wire.SnapshotIncremental, first|last), [3]string{"incremental", "incremental", "incremental"}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			ev := Event{Tx: tt.tx, Index: 10 + uint64(i), Change: &wire.Change{Op: wire.OpRead}}
			if got := snapshotField(&ev); got != want {
				t.Errorf("marks %04b index %d: %q, want %q", tt.tx.Snapshot.Marks, ev.Index, got, want)
			}
		}
	}
	// A single-row snapshot: Debezium ranks last first.
	one := &wire.Tx{Changes: make([]wire.Change, 1), Snapshot: &wire.Snapshot{Kind: wire.SnapshotInitial, Marks: first | last}}
	if got := snapshotField(&Event{Tx: one, Change: &wire.Change{Op: wire.OpRead}}); got != "last" {
		t.Errorf("single row: %q, want last", got)
	}
	if got := snapshotField(&Event{Tx: tx, Change: &wire.Change{Op: wire.OpInsert}}); got != "false" {
		t.Errorf("change: %q, want false", got)
	}
}

// debeziumOptionSets are the settings the golden files cover;
// transactions: the route publishes transaction metadata.
var debeziumOptionSets = []struct {
	name         string
	settings     map[string]any
	transactions bool
}{
	{"default", nil, false},
	{"schema", map[string]any{"schema": true}, false},
	{"decimal_string", map[string]any{"decimal_handling_mode": "string", "interval_handling_mode": "string"}, false},
	{"decimal_double", map[string]any{"decimal_handling_mode": "double"}, false},
	{"binary_hex", map[string]any{"binary_handling_mode": "hex", "unavailable_value_placeholder": "(toasted)", "key_header": "Debezium-Key"}, false},
	{"time_connect", map[string]any{"time_precision_mode": "connect"}, false},
	{"transactions_tombstones", map[string]any{"tombstones_on_delete": true}, true},
	{"hstore_map", map[string]any{"hstore_handling_mode": "map", "schema": true}, false},
}

func newTestDebezium(t testing.TB, settings map[string]any) Renderer {
	t.Helper()
	return newTestDebeziumTx(t, settings, false)
}

func newTestDebeziumTx(t testing.TB, settings map[string]any, transactions bool) Renderer {
	t.Helper()
	r, err := New("debezium", Options{Settings: settings, Transactions: transactions})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// debeziumOutput renders ev and returns its golden form: the headers (the
// key), then the body.
func debeziumOutput(t *testing.T, r Renderer, ev *Event) []byte {
	t.Helper()
	body, err := r.Append([]byte("keep"), ev)
	if err != nil {
		t.Fatal(err)
	}
	body = body[len("keep"):]
	if !json.Valid(body) || !utf8.Valid(body) {
		t.Fatalf("invalid JSON: %s", body)
	}
	if doc := r.Document(nil, ev, body); string(doc) != string(body) {
		t.Errorf("document %s", doc)
	}
	h := HeaderOf(r, ev)
	var out strings.Builder
	for _, name := range []string{"Content-Type", "Pgjet-Key", "Debezium-Key", pkUpdateNewKeyHeader, pkUpdateOldKeyHeader} {
		if v := h.Get(name); v != "" {
			out.WriteString(name + ": " + v + "\n")
			if name != "Content-Type" && !json.Valid([]byte(v)) {
				t.Errorf("key header is not JSON: %s", v)
			}
		}
	}
	out.Write(body)
	out.WriteByte('\n')
	return []byte(out.String())
}

func TestDebeziumGolden(t *testing.T) {
	for _, set := range debeziumOptionSets {
		r := newTestDebeziumTx(t, set.settings, set.transactions)
		for _, gc := range debeziumCases {
			t.Run(set.name+"/"+gc.name, func(t *testing.T) {
				ev := gc.ev
				ev.Source = source
				if ev.Tx == nil {
					ev.Tx = tx
				}
				golden(t, filepath.Join("testdata", "debezium", set.name, gc.name+".golden"), debeziumPublished(t, r, &ev))
			})
		}
	}
}

// debeziumPublished is what the relay publishes for ev: its events (Split)
// in order, each followed by its tombstone if it has one, separated by a
// line "-- part N" or "-- tombstone".
func debeziumPublished(t *testing.T, r Renderer, ev *Event) []byte {
	t.Helper()
	events := Split(r, ev, nil)
	if len(events) == 0 {
		events = []Event{*ev}
	}
	var out []byte
	for i := range events {
		if len(events) > 1 {
			out = fmt.Appendf(out, "-- part %d\n", i)
		}
		out = append(out, debeziumOutput(t, r, &events[i])...)
		if h, ok := Tombstone(r, &events[i]); ok {
			out = append(out, "-- tombstone\n"...)
			out = appendHeaders(out, h)
		}
	}
	return out
}

// appendHeaders appends h's headers, sorted, one "name: value" a line.
func appendHeaders(b []byte, h Header) []byte {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			b = fmt.Appendf(b, "%s: %s\n", name, v)
		}
	}
	return b
}

// TestDebeziumShape checks the parts consumers rely on by name.
func TestDebeziumShape(t *testing.T) {
	r := newTestDebeziumTx(t, nil, true)
	ev := Event{Source: source, Tx: tx, Rel: users, Index: 2, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}
	b, err := r.Append(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Before json.RawMessage
		After  map[string]any
		Source map[string]any
		Op     string
		TsMs   int64 `json:"ts_ms"`
		Tx     struct {
			ID         string `json:"id"`
			Total      int64  `json:"total_order"`
			Collection int64  `json:"data_collection_order"`
		} `json:"transaction"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if string(m.Before) != "null" || m.Op != "c" || m.TsMs != tx.CommitTime/1000 || m.After["email"] != "ann@example.com" {
		t.Errorf("envelope %s", b)
	}
	if m.Tx.ID != "734:23803720" || m.Tx.Total != 3 || m.Tx.Collection != 3 {
		t.Errorf("transaction %+v", m.Tx)
	}
	s := m.Source
	if s["connector"] != "postgresql" || s["name"] != "app" || s["db"] != "shop" || s["snapshot"] != "false" ||
		s["sequence"] != `["23803720","23803720"]` || s["lsn"] != float64(23803720) || s["txId"] != float64(734) ||
		s["schema"] != "public" || s["table"] != "users" || s["xmin"] != nil || s["version"] != DebeziumVersion {
		t.Errorf("source %v", s)
	}
	if k := HeaderOf(r, &ev).Get(DefaultKeyHeader); k != `{"id":1}` {
		t.Errorf("key %q", k)
	}
	// Replays render the same bytes.
	again, _ := newTestDebeziumTx(t, nil, true).Append(nil, &ev)
	if string(again) != string(b) {
		t.Errorf("second render differs:\n%s\n%s", b, again)
	}
}

// The transaction block is there only when the route publishes transaction
// metadata, as Debezium fills it only with provide.transaction.metadata
// (TransactionMonitor.dataEvent returns early without it; the block stays
// in the schema, optional).
func TestDebeziumTransactionBlockOnlyWithMetadata(t *testing.T) {
	ev := Event{Source: source, Tx: tx, Rel: users, Index: 2, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}
	for _, on := range []bool{false, true} {
		b, err := newTestDebeziumTx(t, nil, on).Append(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Tx json.RawMessage `json:"transaction"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if got := string(m.Tx) != "null"; got != on {
			t.Errorf("transactions %v: transaction block %s", on, m.Tx)
		}
	}
}

// A key-changing update is Debezium's delete of the old key then create of
// the new (RelationalChangeRecordEmitter.emitUpdateAsPrimaryKeyChangeRecord,
// RecordsStreamProducerIT.shouldReceiveChangesForUpdatesWithPKChanges): two
// events, the delete keyed by the old key with a __debezium.newkey header,
// the create by the new key with __debezium.oldkey. An update that keeps
// its key, and any update under REPLICA IDENTITY FULL (whose key is every
// column), is one event.
func TestDebeziumSplitsKeyChanges(t *testing.T) {
	r := newTestDebezium(t, nil)
	keyOnly := func(id string) []wire.Value {
		return []wire.Value{t_(id), null, null, null, null, null, null, null}
	}
	change := Event{Source: source, Tx: tx, Rel: users, Index: 3, Change: &wire.Change{Op: wire.OpUpdate, OldKind: wire.OldKey, Old: keyOnly("1"), New: user("2")}}
	parts := Split(r, &change, nil)
	if len(parts) != 2 || parts[0].Change.Op != wire.OpDelete || parts[1].Change.Op != wire.OpInsert {
		t.Fatalf("parts %+v", parts)
	}
	for i, want := range []struct{ op, key, header, other string }{
		{"d", `{"id":1}`, pkUpdateNewKeyHeader, `{"id":2}`},
		{"c", `{"id":2}`, pkUpdateOldKeyHeader, `{"id":1}`},
	} {
		b, err := r.Append(nil, &parts[i])
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Op string }
		if err := json.Unmarshal(b, &m); err != nil || m.Op != want.op {
			t.Errorf("part %d: op %q, want %q (%v)", i, m.Op, want.op, err)
		}
		h := HeaderOf(r, &parts[i])
		if h.Get(DefaultKeyHeader) != want.key || h.Get(want.header) != want.other {
			t.Errorf("part %d: headers %v", i, h)
		}
	}
	// The old key sent again because it is stored out of line, not changed.
	same := Event{Source: source, Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpUpdate, OldKind: wire.OldKey, Old: keyOnly("1"), New: user("1")}}
	full := Event{Source: source, Tx: tx, Rel: accounts, Change: &wire.Change{Op: wire.OpUpdate, OldKind: wire.OldFull,
		Old: []wire.Value{t_("7"), t_("bob"), t_("1")}, New: []wire.Value{t_("8"), t_("bob"), t_("1")}}}
	noOld := Event{Source: source, Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpUpdate, New: user("1")}}
	for _, ev := range []Event{same, full, noOld} {
		if parts := Split(r, &ev, nil); len(parts) != 0 {
			t.Errorf("%s.%s update split: %+v", ev.Rel.Schema, ev.Rel.Table, parts)
		}
	}
	// Other envelopes publish it as one update.
	for _, name := range []string{"native", "cloudevents"} {
		other, err := New(name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if parts := Split(other, &change, nil); len(parts) != 0 {
			t.Errorf("%s split the update", name)
		}
	}
	// msgpack encoding splits as JSON does.
	if parts := Split(newMsgpack(t, "debezium", nil), &change, nil); len(parts) != 2 {
		t.Errorf("msgpack: %d parts", len(parts))
	}
}

// Under REPLICA IDENTITY FULL an update's old row is whole: a TOASTed
// value the update left unchanged is in before, and Debezium puts it in
// after too, not the placeholder
// (RecordsStreamProducerIT.shouldHandleToastedArrayColumnForReplicaIdentityFullTable:
// "before and after record should contain the toasted value").
func TestDebeziumFullIdentityUnchangedToast(t *testing.T) {
	const long = "a long owner name, stored out of line"
	ev := Event{Source: source, Tx: tx, Rel: accounts, Change: &wire.Change{Op: wire.OpUpdate, OldKind: wire.OldFull,
		Old: []wire.Value{t_("7"), t_(long), t_("100.00")},
		New: []wire.Value{t_("7"), unchanged, t_("250.00")}}}
	r := newTestDebezium(t, nil)
	b, err := r.Append(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Before, After map[string]any }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Before["owner"] != long || m.After["owner"] != long {
		t.Errorf("owner before %v, after %v; want %q in both", m.Before["owner"], m.After["owner"], long)
	}
	if k := HeaderOf(r, &ev).Get(DefaultKeyHeader); !strings.Contains(k, long) {
		t.Errorf("key %s: the unchanged value is part of it", k)
	}
	// The raw record is left as it was.
	if ev.Change.New[1].Kind != wire.KindUnchanged {
		t.Errorf("new row changed: %+v", ev.Change.New[1])
	}
	// Without a whole old row the value is unknown: the placeholder.
	ev.Rel, ev.Change = users, &wire.Change{Op: wire.OpUpdate, New: []wire.Value{t_("1"), t_("x"), unchanged, t_("0"), unchanged, t_("2026-11-23 09:00:00+00"), unchanged, t_("sad")}}
	if b, err = r.Append(nil, &ev); err != nil || !strings.Contains(string(b), `"bio":"__debezium_unavailable_value"`) {
		t.Errorf("default identity: %s, %v", b, err)
	}
}

func TestDebeziumHeaderWithoutAppend(t *testing.T) {
	r := newTestDebezium(t, nil)
	a := Event{Source: source, Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}
	b := Event{Source: source, Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpInsert, New: user("2")}}
	if _, err := r.Append(nil, &a); err != nil {
		t.Fatal(err)
	}
	if k := HeaderOf(r, &b).Get(DefaultKeyHeader); k != `{"id":2}` {
		t.Errorf("key of another event: %q", k)
	}
	trunc := Event{Source: source, Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpTruncate}}
	if _, err := r.Append(nil, &trunc); err != nil {
		t.Fatal(err)
	}
	if h := HeaderOf(r, &trunc); len(h) != 0 {
		t.Errorf("truncate headers %v, want none (no key; JSON needs no Content-Type)", h)
	}
}

func TestDebeziumOptionErrors(t *testing.T) {
	tests := []struct {
		o   Options
		key string
	}{
		{Options{Encoding: "avro"}, "encoding"},
		{Options{Settings: map[string]any{"decimal_handling_mode": "exact"}}, "decimal_handling_mode"},
		{Options{Settings: map[string]any{"time_precision_mode": "nanoseconds"}}, "time_precision_mode"},
		{Options{Settings: map[string]any{"binary_handling_mode": "base32"}}, "binary_handling_mode"},
		{Options{Settings: map[string]any{"interval_handling_mode": "iso"}}, "interval_handling_mode"},
		{Options{Settings: map[string]any{"schema": "yes"}}, "schema"},
		{Options{Settings: map[string]any{"key_header": "Bad Header"}}, "key_header"},
		{Options{Settings: map[string]any{"key_header": "Nats-Msg-Id"}}, "key_header"},
		{Options{Settings: map[string]any{"key_header": "content-type"}}, "key_header"},
		{Options{Settings: map[string]any{"unavailable_value_placeholder": "hex:zz"}}, "unavailable_value_placeholder"},
		{Options{Settings: map[string]any{"money_fraction_digits": -1}}, "money_fraction_digits"},
		{Options{Settings: map[string]any{"decimal.handling.mode": "string"}}, "decimal.handling.mode"},
	}
	for _, tt := range tests {
		_, err := New("debezium", tt.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Key != tt.key {
			t.Errorf("%+v: error %v, want an OptionError on %s", tt.o, err, tt.key)
		}
	}
}

func TestDebeziumErrors(t *testing.T) {
	r := newTestDebezium(t, nil)
	nan := typedRow("1")
	nan[3] = t_("NaN") // precise mode has no encoding for it, as in Debezium
	bad := user("1")
	bad[3] = t_("12abc")
	for _, ev := range []Event{
		{Change: &wire.Change{Op: wire.OpInsert, New: nan}, Rel: typed},
		{Change: &wire.Change{Op: wire.OpInsert, New: bad}, Rel: users},
		{Change: &wire.Change{Op: wire.OpInsert, New: user("1")[:3]}, Rel: users},
		{Change: &wire.Change{Op: wire.OpDelete, OldKind: 'Z', Old: user("1")}, Rel: users},
		{Change: &wire.Change{Op: 42}, Rel: users},
	} {
		ev.Source = source
		if ev.Tx == nil {
			ev.Tx = tx
		}
		b, err := r.Append([]byte("keep"), &ev)
		if err == nil || string(b) != "keep" {
			t.Errorf("%v: got %s, %v", ev.Change.Op, b, err)
		}
	}
	// NaN is fine as a string.
	ev := Event{Source: source, Tx: tx, Change: &wire.Change{Op: wire.OpInsert, New: nan}, Rel: typed}
	b, err := newTestDebezium(t, map[string]any{"decimal_handling_mode": "string"}).Append(nil, &ev)
	if err != nil || !strings.Contains(string(b), `"ratio":"NAN"`) {
		t.Errorf("string mode NaN: %s, %v", b, err)
	}
}

// checkDebeziumHostile renders the hostile events and checks body and key
// are valid JSON in valid UTF-8 and the header fits in one line.
func checkDebeziumHostile(t *testing.T, r Renderer, s string) {
	t.Helper()
	for _, ev := range hostileEvents(s) {
		c := ev.Change
		b, err := r.Append(nil, &ev)
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
		if p, ok := m["payload"].(map[string]any); ok {
			m = p
		}
		if want := string(opCode(c.Op)); m["op"] != want {
			t.Fatalf("%s %q: op became %v", c.Op, s, m["op"])
		}
		for name, vs := range HeaderOf(r, &ev) {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") || (name == DefaultKeyHeader && (!json.Valid([]byte(v)) || !utf8.ValidString(v))) {
					t.Fatalf("%s %q: header %s: %q", c.Op, s, name, v)
				}
			}
		}
	}
}

func TestDebeziumHostileContentIsValidJSON(t *testing.T) {
	for _, set := range debeziumOptionSets {
		r := newTestDebezium(t, set.settings)
		for _, s := range hostile {
			checkDebeziumHostile(t, r, s)
		}
	}
}

func FuzzDebeziumHostileContent(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, false)
	}
	f.Add("x", true)
	plain := newTestDebezium(f, nil)
	withSchema := newTestDebezium(f, map[string]any{"schema": true})
	f.Fuzz(func(t *testing.T, s string, schema bool) {
		r := plain
		if schema {
			r = withSchema
		}
		checkDebeziumHostile(t, r, s)
	})
}

// BenchmarkDebeziumInsert renders the insert of BenchmarkNativeInsert:
// the body alone, as that benchmark does, and with the key header.
func BenchmarkDebeziumInsert(b *testing.B) {
	b.Run("body", func(b *testing.B) { benchmarkDebezium(b, nil, false) })
	b.Run("body+header", func(b *testing.B) { benchmarkDebezium(b, nil, true) })
	b.Run("schema", func(b *testing.B) { benchmarkDebezium(b, map[string]any{"schema": true}, false) })
}

func benchmarkDebezium(b *testing.B, settings map[string]any, header bool) {
	ev := benchInsert()
	r := newTestDebezium(b, settings)
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = r.Append(buf[:0], &ev); err != nil {
			b.Fatal(err)
		}
		if header {
			HeaderOf(r, &ev)
		}
	}
	b.SetBytes(int64(len(buf)))
}
