package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

// Invariant: a grouping route (--group transaction) publishes exactly the
// events a per-event route publishes for the same changes, regrouped: the
// events of its messages, in order, are byte for byte the per-event
// route's messages; each transaction's parts end with one marked last.
func TestGroupsAreTheEventsRegroupedEndToEnd(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	e.collector()
	e.router()
	e.router("--group", "transaction", "--stream", "GROUPS", "--durable", "grouper", "--subject-prefix", "grouped")
	e.mixed(1)
	e.exec(`INSERT INTO bulk SELECT g, repeat('y', 200) FROM generate_series(1, 5000) g`)
	live := e.verify(time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	perEvent := readStream(ctx, t, js, "PGJET_EVENTS", live.Committed)
	var regrouped [][]byte
	open := 0 // parts of the current transaction not yet closed by a last one
	groups := readStream(ctx, t, js, "GROUPS", 1)
	for _, m := range groups {
		var p struct {
			LSN    string            `json:"lsn"`
			Last   bool              `json:"last"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(m.Data(), &p); err != nil {
			t.Fatalf("group on %s: %v", m.Subject(), err)
		}
		for _, ev := range p.Events {
			regrouped = append(regrouped, ev)
		}
		if open++; p.Last {
			open = 0
		}
	}
	if open != 0 {
		t.Errorf("the last transaction's parts end without one marked last")
	}
	if len(regrouped) != len(perEvent) {
		t.Fatalf("%d events in %d groups, %d published one by one", len(regrouped), len(groups), len(perEvent))
	}
	for i, m := range perEvent {
		if !bytes.Equal(regrouped[i], m.Data()) {
			t.Fatalf("event %d differs:\n%s\n%s", i, regrouped[i], m.Data())
		}
	}
	t.Logf("%d events in %d group messages", len(regrouped), len(groups))
}
