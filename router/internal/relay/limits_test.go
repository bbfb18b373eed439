package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// An output stream an operator created with a max_msg_size below the
// server's max_payload refuses an event the relay rendered for the
// server's limit, while it stores the events around it. Republishing it
// can never succeed, and once the retries pass half the duplicate window
// the relay resyncs, where the stored event after it is the resume point:
// the refused event must not vanish there. It is a dead letter, like an
// event over max_payload, and every other event is stored once.
func TestEventOverTheStreamsMaxMsgSizeGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		MaxMsgSize: 1024, Duplicates: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x2000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("small")}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text(strings.Repeat("x", 2000))}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3"), text("small")}},
		}}},
	})
	run := e.start(nil)
	e.waitAckFloor(1)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	got := e.outputs()
	checkOutputs(t, got, []wantEvent{
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:0"},
		{"postgres._deadletter", "test.7300000000000000001.1:2000:1:dlq"},
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:2"},
	})
	if doc := string(got[1].Data); !strings.Contains(doc, "1024") || !strings.Contains(doc, `"values_omitted":true`) {
		t.Errorf("dead letter: %.500s", doc)
	}
}
