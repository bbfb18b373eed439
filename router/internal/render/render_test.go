package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func text(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

var (
	app   = wire.Source{Name: "app", SystemID: 7300000000000000001, Timeline: 1, Database: "shop", Slot: "pgjet"}
	crm   = wire.Source{Name: "crm", SystemID: 42, Timeline: 3, Database: "crm", Slot: "crm"}
	users = wire.Relation{ID: 16384, Schema: "public", Table: "users", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "name", TypeOID: 25, TypeMod: -1},
		{Name: "email", TypeOID: 25, TypeMod: -1},
	}}
	orders = wire.Relation{ID: 16390, Schema: "public", Table: "orders", ReplicaIdentity: 'f', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "total", TypeOID: 1700, TypeMod: -1},
	}}
	hostile = wire.Relation{ID: 16400, Schema: "we.ird", Table: "my >table*", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
	}}
)

// records are the raw records every case renders, as the raw stream holds
// them (encoded, then decoded as the relay decodes them): every operation,
// a truncate of two tables, logical decoding messages in and outside a
// transaction, a transaction over two records, a hostile table name, an
// undecodable value, a second source and an update that changes a key.
func records(t *testing.T) []*wire.Message {
	t.Helper()
	msgs := []*wire.Message{
		{Source: app, Relations: []wire.Relation{users, orders}, Txs: []wire.Tx{
			{Xid: 700, CommitLSN: 0x1000, EndLSN: 0x1010, CommitTime: 1_700_000_000_000_000, Final: true, Changes: []wire.Change{
				{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("ann"), text("ann@example.com")}},
				{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("1"), text("bob"), {Kind: wire.KindUnchanged}}},
				{Op: wire.OpInsert, Rel: 1, New: []wire.Value{text("10"), text("12.50")}},
				{Op: wire.OpDelete, Rel: 0, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}, {Kind: wire.KindNull}}},
			}},
			{Xid: 701, CommitLSN: 0x2000, EndLSN: 0x2010, CommitTime: 1_700_000_001_000_000, Final: true, Changes: []wire.Change{
				{Op: wire.OpTruncate, TruncateRels: []int32{0, 1}, TruncateOptions: wire.TruncateCascade},
				{Op: wire.OpMessage, Prefix: "outbox", Content: []byte(`{"hello":"world"}`), Transactional: true},
			}},
			{Xid: 0, CommitLSN: 0x2100, EndLSN: 0x2100, CommitTime: 1_700_000_001_500_000, Final: true, Changes: []wire.Change{
				{Op: wire.OpMessage, Prefix: "audit", Content: []byte("not transactional")},
			}},
			// The first fragment of a transaction that the next record ends.
			{Xid: 702, CommitLSN: 0x3000, EndLSN: 0x3010, CommitTime: 1_700_000_002_000_000, Changes: []wire.Change{
				{Op: wire.OpUpdate, Rel: 1, OldKind: wire.OldFull, Old: []wire.Value{text("10"), text("12.50")}, New: []wire.Value{text("10"), text("13.00")}},
				{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text("cy"), text("cy@example.com")}},
			}},
		}},
		{Source: app, Relations: []wire.Relation{orders, hostile, users}, Txs: []wire.Tx{
			{Xid: 702, CommitLSN: 0x3000, EndLSN: 0x3010, CommitTime: 1_700_000_002_000_000, Fragment: 1, Final: true, FirstChange: 2, Changes: []wire.Change{
				{Op: wire.OpInsert, Rel: 1, New: []wire.Value{text("8")}},
				// Not an int4: the event cannot be rendered.
				{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("eleven"), text("1.00")}},
				{Op: wire.OpDelete, Rel: 2, OldKind: wire.OldKey, Old: []wire.Value{text("2"), {Kind: wire.KindNull}, {Kind: wire.KindNull}}},
			}},
		}},
		{Source: crm, Relations: []wire.Relation{users}, Txs: []wire.Tx{
			{Xid: 9, CommitLSN: 0x5_0000_0100, EndLSN: 0x5_0000_0110, CommitTime: 1_700_000_003_000_000, Final: true, Changes: []wire.Change{
				{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("7"), text("dee"), text("dee@example.org")}},
				// The key changes: Debezium publishes a delete and a create.
				{Op: wire.OpUpdate, Rel: 0, OldKind: wire.OldKey, Old: []wire.Value{text("7"), {Kind: wire.KindNull}, {Kind: wire.KindNull}},
					New: []wire.Value{text("70"), text("dee"), text("dee@example.org")}},
			}},
		}},
	}
	out := make([]*wire.Message, len(msgs))
	for i, m := range msgs {
		b, err := wire.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &wire.Message{}
		if err := wire.Unmarshal(b, out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type renderCase struct {
	name     string
	route    route.Config
	envelope string
	settings map[string]any
	encoding string
	stream   string
	// maxPayload defaults to 1 MiB.
	maxPayload int64
	// resume, when set, is the last event id the output holds.
	resume string
	bounds *Bounds
	// traced: each record has a traceparent (tracing on).
	traced bool
}

var cases = []renderCase{
	{name: "native", route: route.Config{}},
	{name: "transactions-relations", route: route.Config{Transactions: true, Relations: true}},
	{name: "filters-masks", route: route.Config{Include: []string{"public.*"}, Exclude: []string{"public.orders"}, Ops: []string{"insert", "delete", "message"},
		MessagePrefixes: []string{"out*"}, Columns: []route.ColumnRule{{Table: "public.users", Drop: []string{"email"}, Mask: map[string]string{"name": "***"}}}}},
	{name: "subject-templates", route: route.Config{Prefix: "acme.cdc", Subject: "{prefix}.{source}.{table}", MessageSubject: "{prefix}.msg.{message_prefix}"}},
	{name: "group", route: route.Config{Group: true, Relations: true}},
	{name: "group-small-parts", route: route.Config{Group: true}, maxPayload: 1100},
	{name: "group-too-large", route: route.Config{Group: true}, maxPayload: 700},
	{name: "group-cloudevents", route: route.Config{Group: true}, envelope: "cloudevents"},
	{name: "cloudevents-change", route: route.Config{}, envelope: "cloudevents"},
	{name: "cloudevents-native-binary", route: route.Config{}, envelope: "cloudevents", settings: map[string]any{"data": "native", "mode": "binary"}},
	{name: "debezium-tombstones", route: route.Config{}, envelope: "debezium", settings: map[string]any{"tombstones_on_delete": true}},
	{name: "native-msgpack", route: route.Config{Include: []string{"public.users"}}, encoding: "msgpack"},
	{name: "partition", route: route.Config{Partition: 1, Partitions: 2}},
	{name: "stdout-only", route: route.Config{}, stream: "-"},
	{name: "too-large", route: route.Config{}, maxPayload: 400},
	{name: "resume", route: route.Config{Transactions: true}, resume: "app.7300000000000000001.1:2000:0.1"},
	{name: "resume-group", route: route.Config{Group: true}, resume: "app.7300000000000000001.1:1000:3:grp"},
	{name: "bounds", route: route.Config{}, bounds: &Bounds{FromLSN: 0x2000, ToLSN: 0x2100, LSNSource: "app"}},
	{name: "traced", route: route.Config{Transactions: true}, traced: true},
	{name: "traced-cloudevents", route: route.Config{}, envelope: "cloudevents", traced: true},
	{name: "traced-cloudevents-binary", route: route.Config{}, envelope: "cloudevents", settings: map[string]any{"mode": "binary"}, traced: true},
	{name: "traced-group", route: route.Config{Group: true}, traced: true},
}

// Every message a route publishes, rendered from raw records, is exactly
// the golden file's: subjects, headers, bodies, dead letters and skipped
// events (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := renderAll(t, c, records(t))
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("differs from %s (go test -update to accept):\n%s", path, got)
			}
		})
	}
}

func newRenderer(t testing.TB, c renderCase) *Renderer {
	t.Helper()
	if c.route.Name == "" {
		c.route.Name = c.name
	}
	rt, err := route.New(c.route)
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.New(cmp(c.envelope, "native"), envelope.Options{Encoding: c.encoding, Settings: c.settings})
	if err != nil {
		t.Fatal(err)
	}
	stream := cmp(c.stream, "EVENTS")
	if stream == "-" {
		stream = ""
	}
	r := New(Config{Route: rt, Envelope: env, Stream: stream, Bounds: c.bounds, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if c.resume != "" {
		p, ok := wire.ParseEventID(c.resume)
		if !ok {
			t.Fatalf("bad resume id %s", c.resume)
		}
		var st Stored
		st.Add(p)
		r.Resume(map[string]*Stored{p.Source: &st})
	}
	return r
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// renderAll renders msgs with a route as c says, describing every message.
func renderAll(t *testing.T, c renderCase, msgs []*wire.Message) []byte {
	t.Helper()
	r := newRenderer(t, c)
	maxPayload := c.maxPayload
	if maxPayload == 0 {
		maxPayload = 1 << 20
	}
	var out bytes.Buffer
	var b Batch
	for i, m := range msgs {
		raw := Raw{Seq: uint64(i + 1), Size: 256}
		if c.traced {
			raw.TraceParent = fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		}
		r.Record(&b, m, raw, maxPayload)
		fmt.Fprintf(&out, "# raw record %d: %d messages, %d dead letters, %d skipped\n", i+1, len(b.Msgs), b.Dead, b.Skipped)
		for j := range b.Msgs {
			describe(&out, &b.Msgs[j], c.encoding == "msgpack")
			checkHeaderSize(t, r.env, &b.Msgs[j])
		}
	}
	return out.Bytes()
}

// checkHeaderSize checks that the bytes the envelope says its headers of
// m take, which count against the max payload, are what they take.
func checkHeaderSize(t *testing.T, env envelope.Renderer, m *Msg) {
	t.Helper()
	if m.Kind != Event {
		return
	}
	h := envelope.Header{}
	if n := env.AddHeader(h, &m.Event); n != h.Size() {
		t.Errorf("event %s: the envelope says its headers take %d bytes, they take %d: %v", m.Event.ID, n, h.Size(), h)
	}
}

var kindNames = map[Kind]string{Event: "event", DeadLetter: "dead letter", Group: "group", Tombstone: "tombstone"}

func describe(w *bytes.Buffer, m *Msg, binary bool) {
	fmt.Fprintf(w, "%s %s (%s)\n", kindNames[m.Kind], m.Subject, Ops[m.Op()])
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(m.Header[k], ", "))
	}
	switch {
	case len(m.Data) == 0:
		fmt.Fprintf(w, "  (empty)\n")
	case binary && m.Kind != DeadLetter:
		fmt.Fprintf(w, "  %q\n", m.Data)
	case m.Kind == DeadLetter:
		// The error, then the document without it: readable and stable.
		var d map[string]any
		if err := json.Unmarshal(m.Data, &d); err != nil {
			fmt.Fprintf(w, "  bad dead letter %v: %s\n", err, m.Data)
			return
		}
		fmt.Fprintf(w, "  error: %s\n", d["error"])
		fallthrough
	default:
		fmt.Fprintf(w, "  %s\n", m.Data)
	}
}

// groupPart is a grouping route's message in the wrapper form.
type groupPart struct {
	Source     string            `json:"source"`
	FirstIndex uint64            `json:"first_index"`
	LastIndex  uint64            `json:"last_index"`
	Last       bool              `json:"last"`
	Events     []json.RawMessage `json:"events"`
}

// A transaction too large for one message goes in parts, each within the
// max payload, the last one marked; resuming after a stored part skips
// exactly its events and renders the same next parts.
func TestGroupPartsAndResume(t *testing.T) {
	tx := wire.Tx{Xid: 9, CommitLSN: 0xA0, CommitTime: 1, Final: true}
	for i := range 40 {
		tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text(fmt.Sprint(i)), text("name " + fmt.Sprint(i)), {Kind: wire.KindNull}}})
	}
	m := &wire.Message{Source: app, Relations: []wire.Relation{users}, Txs: []wire.Tx{tx}}
	const maxPayload = 2048
	c := renderCase{name: "parts", route: route.Config{Group: true, Relations: true}}
	r := newRenderer(t, c)
	var b Batch
	r.Record(&b, m, Raw{Seq: 1, Size: 1 << 10}, maxPayload)
	if len(b.Msgs) < 3 || b.Dead > 0 {
		t.Fatalf("%d messages (%d dead letters) for 41 events in 2 KiB parts", len(b.Msgs), b.Dead)
	}
	events := 0
	var ids []string
	var parts [][]byte
	for i, o := range b.Msgs {
		if len(o.Data)+o.Header.Size()+64 > maxPayload {
			t.Errorf("part %d has %d bytes, over the max payload %d", i, len(o.Data), maxPayload)
		}
		var p groupPart
		if err := json.Unmarshal(o.Data, &p); err != nil {
			t.Fatalf("part %d: %v: %s", i, err, o.Data)
		}
		if p.Last != (i == len(b.Msgs)-1) || p.LastIndex-p.FirstIndex+1 != uint64(len(p.Events))-boolInt(i == 0) {
			t.Errorf("part %d: last=%v, first_index %d, last_index %d, %d events", i, p.Last, p.FirstIndex, p.LastIndex, len(p.Events))
		}
		events += len(p.Events)
		ids = append(ids, o.Header.Get(MsgIDHeader))
		parts = append(parts, bytes.Clone(o.Data))
	}
	if events != 41 { // a relation event and 40 inserts
		t.Errorf("%d events in the parts, want 41", events)
	}

	// The output stream held the first part: the next ones come again, the
	// same, from a renderer that starts afresh.
	c.resume = ids[0]
	r = newRenderer(t, c)
	r.Record(&b, m, Raw{Seq: 1, Size: 1 << 10}, maxPayload)
	if len(b.Msgs) != len(ids)-1 {
		t.Fatalf("%d parts after resuming past the first, want %d", len(b.Msgs), len(ids)-1)
	}
	for i, o := range b.Msgs {
		if got := o.Header.Get(MsgIDHeader); got != ids[i+1] || !bytes.Equal(o.Data, parts[i+1]) {
			t.Errorf("part %d after resuming: %s, want %s", i+1, got, ids[i+1])
		}
	}
}

func boolInt(b bool) uint64 {
	if b {
		return 1 // the relation event shares the index of the change it precedes
	}
	return 0
}

// A transaction whose last raw record holds none of the route's events
// still ends with a part that says so: empty, last, at the commit.
func TestGroupEndsInALaterRecord(t *testing.T) {
	r := newRenderer(t, renderCase{name: "later", route: route.Config{Group: true, Include: []string{"public.users"}}})
	first := &wire.Message{Source: app, Relations: []wire.Relation{users}, Txs: []wire.Tx{{Xid: 5, CommitLSN: 0xB0, Changes: []wire.Change{
		{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("a"), text("a@b")}},
	}}}}
	last := &wire.Message{Source: app, Relations: []wire.Relation{orders}, Txs: []wire.Tx{{Xid: 5, CommitLSN: 0xB0, Fragment: 1, Final: true, FirstChange: 1, Changes: []wire.Change{
		{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text("3")}},
	}}}}
	var parts []groupPart
	var ids []string
	var b Batch
	for _, m := range []*wire.Message{first, last} {
		r.Record(&b, m, Raw{Seq: 1, Size: 1 << 10}, 1<<20)
		for _, o := range b.Msgs {
			var p groupPart
			if err := json.Unmarshal(o.Data, &p); err != nil {
				t.Fatal(err)
			}
			parts, ids = append(parts, p), append(ids, o.Header.Get(MsgIDHeader))
		}
	}
	if len(parts) != 2 || parts[0].Last || len(parts[0].Events) != 1 || !parts[1].Last || len(parts[1].Events) != 0 ||
		ids[1] != "app.7300000000000000001.1:b0:commit:grp" {
		t.Fatalf("parts %+v, ids %v: want the users insert, then an empty last part at the commit", parts, ids)
	}
}

// A relay that starts in the middle of a transaction counts the route's
// events of its earlier fragments for the commit event.
func TestCountEarlier(t *testing.T) {
	r := newRenderer(t, renderCase{name: "earlier", route: route.Config{Transactions: true, Include: []string{"public.users"}}})
	msgs := records(t)
	rest := msgs[1] // continues the transaction at 0x3000
	if !r.NeedsEarlier(rest) {
		t.Fatal("a later fragment of an unseen transaction needs its earlier ones counted")
	}
	if n := r.CountEarlier(rest, msgs[:1]); n != 1 {
		t.Errorf("%d events of the route in the earlier fragment, want 1 (the users insert)", n)
	}
	var b Batch
	r.Record(&b, rest, Raw{Seq: 2, Size: 1 << 10}, 1<<20)
	last := b.Msgs[len(b.Msgs)-1]
	if last.Event.Kind != envelope.KindCommit || !bytes.Contains(last.Data, []byte(`"events":2`)) {
		t.Errorf("commit event %s: want 2 events, the earlier insert and this delete", last.Data)
	}
}

// A copy of an old record published again is not rendered again: its
// transactions lie before what the route rendered of their source. A
// failover's new timeline (lower LSNs) and another system identifier
// (another database's history) are not backwards; a lower timeline is.
func TestPositionsGoingBackwards(t *testing.T) {
	msgs := records(t)
	r := newRenderer(t, renderCase{name: "order"})
	var b Batch
	render := func(m *wire.Message) (msgs, backwards int) {
		r.Record(&b, m, Raw{Seq: 1, Size: 1 << 10}, 1<<20)
		return len(b.Msgs), b.Backwards
	}
	for _, m := range msgs {
		if _, back := render(m); back != 0 {
			t.Fatalf("records in order: %d fragments taken for going backwards", back)
		}
	}
	if n, back := render(msgs[0]); n != 0 || back != 4 || b.BackFrom != 0x1000 || b.BackTo != 0x3000 {
		t.Errorf("a copy of the first record: %d messages, %d fragments backwards (%x-%x), want none and 4 (1000-3000)", n, back, b.BackFrom, b.BackTo)
	}
	// The first fragment of the transaction the second record ends, again.
	again := *msgs[0]
	again.Txs = again.Txs[3:]
	if n, back := render(&again); n != 0 || back != 1 {
		t.Errorf("an earlier fragment of a transaction: %d messages, %d backwards", n, back)
	}

	failover := func(m *wire.Message, timeline int32, system uint64, lsn uint64) *wire.Message {
		c := *m
		c.Source.Timeline, c.Source.SystemID = timeline, system
		c.Txs = slices.Clone(m.Txs[:1])
		c.Txs[0].CommitLSN = lsn
		return &c
	}
	if n, back := render(failover(msgs[0], 2, app.SystemID, 0x0800)); n == 0 || back != 0 {
		t.Errorf("a new timeline below the old one's LSNs: %d messages, %d backwards; want it rendered", n, back)
	}
	if n, back := render(failover(msgs[0], 1, app.SystemID, 0x9000)); n != 0 || back != 1 {
		t.Errorf("the old timeline after the new one: %d messages, %d backwards; want it skipped", n, back)
	}
	if n, back := render(failover(msgs[0], 1, 99, 0x0100)); n == 0 || back != 0 {
		t.Errorf("another system identifier: %d messages, %d backwards; want its own history", n, back)
	}

	// Starting over (a resync) forgets: the records come again from the
	// consumer's ack floor, and the resume points skip what is stored.
	r.Reset()
	if _, back := render(msgs[0]); back != 0 {
		t.Errorf("after a reset: %d fragments backwards", back)
	}
}
