package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

// With Debezium's tombstones_on_delete, each delete is followed on its
// subject by a tombstone: an empty message with the delete's key and its
// own id; a second run stores no tombstone twice.
func TestDebeziumTombstonesFollowDeletes(t *testing.T) {
	e := newEnv(t)
	env, err := envelope.New("debezium", envelope.Options{Settings: map[string]any{"tombstones_on_delete": true}})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	e.startConfig(Config{Stream: outStream, Envelope: env})
	e.waitAckFloor(3)
	want := append([]wantEvent{}, wantEvents[:3]...)
	want = append(want, wantEvent{"postgres.public.users.delete", wantEvents[2].id + ":tomb"})
	want = append(want, wantEvents[3:]...)
	want = append(want, wantEvent{"postgres.public.orders.delete", wantEvents[8].id + ":tomb"})
	got := e.outputs()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Subject != w.subject || got[i].Header.Get("Nats-Msg-Id") != w.id {
			t.Errorf("message %d: %s %s, want %s %s", i, got[i].Subject, got[i].Header.Get("Nats-Msg-Id"), w.subject, w.id)
		}
	}
	tomb := got[3]
	if len(tomb.Data) != 0 || tomb.Header.Get(envelope.DefaultKeyHeader) != `{"id":1}` || tomb.Header.Get(envelope.DefaultKeyHeader) != got[2].Header.Get(envelope.DefaultKeyHeader) {
		t.Errorf("tombstone %q with headers %v, want an empty body and the delete's key", tomb.Data, tomb.Header)
	}
}

// With the debezium envelope an update that changes the row's key is
// published as Debezium publishes it: a delete of the old key (and its
// tombstone, with tombstones_on_delete), then a create of the new one, as
// parts of the change (ids <index>.0, <index>.0:tomb, <index>.1), on the
// delete and insert subjects, counted as two events by the transaction's
// END; a second run stores none of them twice.
func TestDebeziumKeyChangeIsDeleteThenCreate(t *testing.T) {
	e := newEnv(t)
	newEnvelope := func() envelope.Renderer {
		env, err := envelope.New("debezium", envelope.Options{Settings: map[string]any{"tombstones_on_delete": true}, Transactions: true})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	e.publishRaw(&wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{
		{Xid: 800, CommitLSN: 0x7000, EndLSN: 0x7010, CommitTime: 1_700_000_000_000_000, Final: true, Changes: []wire.Change{
			{Op: wire.OpUpdate, Rel: 0, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}}, New: []wire.Value{text("2"), text("ann")}},
			{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("2"), text("bob")}},
		}},
	}})
	rt, err := route.New(route.Config{Prefix: "postgres", Transactions: true})
	if err != nil {
		t.Fatal(err)
	}
	run := e.startConfig(Config{Stream: outStream, Envelope: newEnvelope(), Route: rt})
	e.waitAckFloor(1)
	const id = "test.7300000000000000001.1:7000:"
	want := []wantEvent{
		{"postgres.transactions.begin.event", id + "begin"},
		{"postgres.public.users.delete", id + "0.0"},
		{"postgres.public.users.delete", id + "0.0:tomb"},
		{"postgres.public.users.insert", id + "0.1"},
		{"postgres.public.users.update", id + "1"},
		{"postgres.transactions.commit.event", id + "commit"},
	}
	check := func(got []*jetstream.RawStreamMsg) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d messages, want %d", len(got), len(want))
		}
		for i, w := range want {
			if got[i].Subject != w.subject || got[i].Header.Get("Nats-Msg-Id") != w.id {
				t.Errorf("message %d: %s %s, want %s %s", i, got[i].Subject, got[i].Header.Get("Nats-Msg-Id"), w.subject, w.id)
			}
		}
	}
	got := e.outputs()
	check(got)
	if len(got) == len(want) {
		if k, nk := got[1].Header.Get(envelope.DefaultKeyHeader), got[1].Header.Get("__debezium.newkey"); k != `{"id":1}` || nk != `{"id":2}` {
			t.Errorf("delete keys %s, new %s", k, nk)
		}
		if k, ok := got[3].Header.Get(envelope.DefaultKeyHeader), got[3].Header.Get("__debezium.oldkey"); k != `{"id":2}` || ok != `{"id":1}` {
			t.Errorf("create keys %s, old %s", k, ok)
		}
		if !strings.Contains(string(got[5].Data), `"event_count":3`) {
			t.Errorf("END %s: want 3 events (delete, create, update)", got[5].Data)
		}
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	// Replayed from the start: the output stream keeps one of each.
	if err := e.js.DeleteConsumer(context.Background(), rawStream, durable); err != nil {
		t.Fatal(err)
	}
	replay := e.startConfig(Config{Stream: outStream, Envelope: newEnvelope(), Route: rt})
	e.waitAckFloor(1)
	if err := replay.stop(t); err != nil {
		t.Fatal(err)
	}
	check(e.outputs())
	if st := replay.r.Stats(); st.Events != 0 {
		t.Errorf("replay stats %+v: want nothing published again", st)
	}
}

// Invariant: a restart publishes every event the output lacks of the
// records that come again, a delete's tombstone too. A router killed after
// the output stored a delete and before it stored the tombstone after it,
// restarted past the duplicate window, skips the delete as stored: the
// tombstone must still come, right after it, and nothing twice.
func TestTombstoneOfAStoredDeleteComesAfterARestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage, Duplicates: 200 * time.Millisecond,
	}); err != nil {
		t.Fatal(err)
	}
	env, err := envelope.New("debezium", envelope.Options{Settings: map[string]any{"tombstones_on_delete": true}})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	// What the killed router left: the user's insert, update and delete.
	e.storeAsKilledRouter(wantEvents[:3])
	time.Sleep(500 * time.Millisecond) // past the duplicate window: time passing is the point
	run := e.startConfig(Config{Stream: outStream, Envelope: env})
	e.waitAckFloor(3)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	want := append([]wantEvent{}, wantEvents[:3]...)
	want = append(want, wantEvent{"postgres.public.users.delete", wantEvents[2].id + ":tomb"})
	want = append(want, wantEvents[3:]...)
	want = append(want, wantEvent{"postgres.public.orders.delete", wantEvents[8].id + ":tomb"})
	got := e.outputs()
	for i, m := range got {
		if i >= len(want) || m.Subject != want[i].subject || m.Header.Get(jetstream.MsgIDHeader) != want[i].id {
			for _, m := range got {
				t.Logf("got %s %s", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
			}
			t.Fatalf("message %d: %s %s; want %d messages: %v", i, m.Subject, m.Header.Get(jetstream.MsgIDHeader), len(want), want)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d: %v", len(got), len(want), want)
	}
	if tomb := got[3]; len(tomb.Data) != 0 || tomb.Header.Get(envelope.DefaultKeyHeader) != `{"id":1}` {
		t.Errorf("tombstone %q with headers %v, want an empty body and the delete's key", tomb.Data, tomb.Header)
	}
}
