package envelope

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/shared/wire"
)

// metaEvents are a transaction's begin and commit events and a relation
// event, as the relay makes them.
func metaEvents() map[string]*Event {
	src := &wire.Source{Name: "app", SystemID: 7, Timeline: 1}
	tx := &wire.Tx{Xid: 734, CommitLSN: 0x16B3748, CommitTime: 1_700_000_000_123_456, Final: true}
	rel := &wire.Relation{Schema: "public", Table: "users", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "name", TypeOID: 25, TypeMod: -1},
		{Name: "price", TypeOID: 1700, TypeMod: 12<<16 | 2 + 4},
		{Name: "mood", TypeOID: 16500, TypeMod: -1, Type: wire.TypeInfo{Schema: "shop", Name: "mood", Kind: 'e'}},
		{Name: "tags", TypeOID: 1009, TypeMod: -1},
	}}
	return map[string]*Event{
		"begin":    {Source: src, Tx: tx, Kind: KindBegin, ID: "app.7.1:16b3748:begin"},
		"commit":   {Source: src, Tx: tx, Kind: KindCommit, Count: 3, ID: "app.7.1:16b3748:commit", Tables: []TableCount{{"public", "users", 2}, {"public", "orders", 1}}},
		"relation": {Source: src, Tx: tx, Rel: rel, Index: 4, Kind: KindRelation, ID: "app.7.1:16b3748:4:rel"},
	}
}

// Transaction and relation events in the native envelope (golden), and in
// CloudEvents of both forms and modes, where sdk-go reads and validates
// them and their data is the native document.
func TestMetaEvents(t *testing.T) {
	for name, ev := range metaEvents() {
		t.Run(name, func(t *testing.T) {
			native, err := NewNative().Append(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(native) {
				t.Fatalf("not JSON: %s", native)
			}
			golden(t, filepath.Join("testdata", "meta", name+".golden"), append(native, '\n'))
			for _, data := range []string{"change", "native"} {
				for _, mode := range []string{"structured", "binary"} {
					r := newTestCE(t, map[string]any{"data": data, "type_prefix": "com.acme"}, mode)
					body, err := r.Append(nil, ev)
					if err != nil {
						t.Fatal(err)
					}
					h := HeaderOf(r, ev)
					var e *event.Event
					if mode == "binary" {
						e, err = binding.ToEvent(context.Background(), cejs.NewMessage(&nats.Msg{Header: nats.Header(h), Data: body}))
					} else {
						e = new(event.Event)
						err = e.UnmarshalJSON(body)
					}
					if err != nil {
						t.Fatalf("%s %s: %v\n%s", data, mode, err, body)
					}
					if err := e.Validate(); err != nil {
						t.Fatalf("%s %s: %v", data, mode, err)
					}
					wantType := map[string]string{"begin": "com.acme.transaction.begin", "commit": "com.acme.transaction.commit", "relation": "com.acme.relation"}[name]
					if e.Type() != wantType || e.ID() != ev.ID || string(e.Data()) != string(native) {
						t.Errorf("%s %s: type %q id %q data %s", data, mode, e.Type(), e.ID(), e.Data())
					}
					if data == "change" {
						if lsn := e.Extensions()["pgjetlsn"]; lsn != "0/16B3748" {
							t.Errorf("%s %s: pgjetlsn %v", data, mode, lsn)
						}
						if _, has := e.Extensions()["pgjetindex"]; has != (name == "relation") {
							t.Errorf("%s %s: pgjetindex %v", data, mode, e.Extensions()["pgjetindex"])
						}
					}
				}
			}
		})
	}
}

// Debezium renders a transaction's begin and commit events as its
// transaction metadata events, key {"id": ...} in the key header, with and
// without the schema part, and refuses relation events.
func TestDebeziumTransactionEvents(t *testing.T) {
	evs := metaEvents()
	for _, schema := range []bool{false, true} {
		r, err := New("debezium", Options{Settings: map[string]any{"schema": schema}})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"begin", "commit"} {
			body, err := r.Append(nil, evs[name])
			if err != nil {
				t.Fatal(err)
			}
			key := HeaderOf(r, evs[name]).Get(DefaultKeyHeader)
			if !json.Valid(body) || !json.Valid([]byte(key)) {
				t.Fatalf("not JSON: %s / %s", body, key)
			}
			suffix := ""
			if schema {
				suffix = "_schema"
			}
			golden(t, filepath.Join("testdata", "meta", "debezium_"+name+suffix+".golden"), []byte(key+"\n"+string(body)+"\n"))
		}
		if _, err := r.Append(nil, evs["relation"]); err == nil {
			t.Error("debezium rendered a relation event")
		}
	}
	if Renders("debezium", KindRelation) || !Renders("debezium", KindCommit) || !Renders("cloudevents", KindRelation) {
		t.Error("Renders does not say what the envelopes render")
	}
}
