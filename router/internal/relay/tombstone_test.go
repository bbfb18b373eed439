package relay

import (
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
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
