package check

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natstest"
)

func TestDrain(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"postgres.>"}}); err != nil {
		t.Fatal(err)
	}
	publish := func(table string, index int, id string) {
		t.Helper()
		data := fmt.Sprintf(`{"op":"insert","source":"s","schema":"public","table":%q,"lsn":"0/A0","xid":5,"index":%d,"after":{"id":%d}}`, table, index, index)
		if _, err := js.Publish(ctx, "postgres.public."+table+".insert", []byte(data), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	publish("users", 0, "s:a0:0")
	publish("other", 1, "s:a0:1")
	publish("users", 2, "s:a0:2")
	publish("users", 3, "s:a0:3")
	// Beyond the expected count: Drain must still pick it up.
	publish("users", 3, "replayed")

	evs, err := Drain(ctx, js, "OUT", "postgres.public.users.>", 3, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("drained %d events, want 4: %+v", len(evs), evs)
	}
	first, last := evs[0], evs[3]
	if first.Seq != 1 || first.MsgID != "s:a0:0" || first.Subject != "postgres.public.users.insert" || first.Table != "users" {
		t.Errorf("first event %+v", first)
	}
	if last.Seq != 5 || last.MsgID != "replayed" || last.Index != 3 {
		t.Errorf("last event %+v", last)
	}

	// Fewer messages than expected: return what there is when ctx ends.
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	evs, err = Drain(short, js, "OUT", "", 100, time.Second)
	if err != nil || len(evs) != 5 {
		t.Errorf("short drain: %d events, %v", len(evs), err)
	}

	// Unknown count: stop at the first quiet pause.
	evs, err = Drain(ctx, js, "OUT", "", 0, 200*time.Millisecond)
	if err != nil || len(evs) != 5 {
		t.Errorf("drain without a count: %d events, %v", len(evs), err)
	}

	if _, err := js.Publish(ctx, "postgres.public.users.insert", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Drain(ctx, js, "OUT", "", 0, 200*time.Millisecond); err == nil {
		t.Error("an undecodable event was not reported")
	}
	if _, err := Drain(ctx, js, "MISSING", "", 0, 200*time.Millisecond); err == nil {
		t.Error("a missing stream was not reported")
	}
}
