package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

// groupPart is a grouping route's message in the wrapper form.
type groupPart struct {
	Source     string            `json:"source"`
	LSN        string            `json:"lsn"`
	Xid        uint32            `json:"xid"`
	FirstIndex uint64            `json:"first_index"`
	LastIndex  uint64            `json:"last_index"`
	Last       bool              `json:"last"`
	Events     []json.RawMessage `json:"events"`
}

func groupingRelay(t *testing.T, js jetstream.JetStream, stream, durableName string, env envelope.Renderer) *Relay {
	t.Helper()
	rt, err := route.New(route.Config{Prefix: "grp", Group: true, Relations: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(js, Config{RawStream: rawStream, Durable: durableName, Stream: stream, Route: rt, Envelope: env,
		PublishTimeout: 2 * time.Second, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A grouping route publishes each transaction's events as one message, in
// order, whose events are exactly the events a per-event route publishes,
// regrouped; a second run over the same records stores nothing twice.
func TestGroupsAreTheEventsRegrouped(t *testing.T) {
	e := newEnv(t)
	e.publishRaw(rawRecords()...)
	rt, err := route.New(route.Config{Prefix: "postgres", Relations: true})
	if err != nil {
		t.Fatal(err)
	}
	e.startConfig(Config{Stream: outStream, Route: rt})
	e.waitAckFloor(3)
	perEvent := e.outputs()

	run := func() *running {
		r := groupingRelay(t, e.js, "GROUPS", "grouper", nil)
		ctx, cancel := context.WithCancel(context.Background())
		run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
		go func() { run.done <- r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-run.done })
		return run
	}
	first := run()
	var groups []*jetstream.RawStreamMsg
	waitFor(t, "4 groups", func() bool {
		groups = streamMsgs(t, e.js, "GROUPS")
		return len(groups) >= 4
	})
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	var regrouped [][]byte
	wantIDs := []string{"1000:2:grp", "2000:1:grp", "3000:6:grp", "500000100:0:grp"}
	for i, m := range groups {
		var p groupPart
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatalf("group %d: %v: %s", i, err, m.Data)
		}
		if !p.Last || m.Subject != "grp.transactions."+p.Source {
			t.Errorf("group %d on %s: %+v", i, m.Subject, p)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); !bytes.HasSuffix([]byte(id), []byte(wantIDs[i])) {
			t.Errorf("group %d id %s, want ...%s", i, id, wantIDs[i])
		}
		for _, ev := range p.Events {
			regrouped = append(regrouped, ev)
		}
	}
	if len(regrouped) != len(perEvent) {
		t.Fatalf("%d events in groups, %d published one by one", len(regrouped), len(perEvent))
	}
	for i := range perEvent {
		if !bytes.Equal(regrouped[i], perEvent[i].Data) {
			t.Errorf("event %d differs:\n%s\n%s", i, regrouped[i], perEvent[i].Data)
		}
	}

	// From the start again: nothing stored twice.
	if err := e.js.DeleteConsumer(context.Background(), rawStream, "grouper"); err != nil {
		t.Fatal(err)
	}
	second := run()
	waitFor(t, "the second run to finish", func() bool {
		c, err := e.js.Consumer(context.Background(), rawStream, "grouper")
		if err != nil {
			return false
		}
		ci, err := c.Info(context.Background())
		return err == nil && ci.AckFloor.Stream == 3
	})
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := len(streamMsgs(t, e.js, "GROUPS")); n != len(groups) {
		t.Errorf("%d groups after a second run, want %d", n, len(groups))
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// A transaction too large for one message goes in parts, each within the
// max payload, the last one marked; resuming after a stored part skips
// exactly its events and renders the same next part.
func TestGroupPartsAndResume(t *testing.T) {
	r := groupingRelay(t, nil, outStream, durable, nil)
	tx := wire.Tx{Xid: 9, CommitLSN: 0xA0, CommitTime: 1, Final: true}
	for i := range 40 {
		tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text(fmt.Sprint(i)), text("name " + fmt.Sprint(i))}})
	}
	m := &wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{tx}}
	const maxPayload = 2048
	render := func() *batch { return r.render(m, 1<<10, 1, maxPayload, nil) }
	b := render()
	if len(b.outs) < 3 || b.dead > 0 {
		t.Fatalf("%d messages (%d dead letters) for 41 events in 2 KiB parts", len(b.outs), b.dead)
	}
	events := 0
	var ids []string
	for i, o := range b.outs {
		if len(o.msg.Data)+headerSize(o.msg.Header)+64 > maxPayload {
			t.Errorf("part %d has %d bytes, over the max payload %d", i, len(o.msg.Data), maxPayload)
		}
		var p groupPart
		if err := json.Unmarshal(o.msg.Data, &p); err != nil {
			t.Fatal(err)
		}
		if p.Last != (i == len(b.outs)-1) {
			t.Errorf("part %d: last=%v", i, p.Last)
		}
		events += len(p.Events)
		ids = append(ids, o.msg.Header.Get(jetstream.MsgIDHeader))
	}
	if events != 41 { // a relation event and 40 inserts
		t.Errorf("%d events in the parts, want 41", events)
	}

	// The output stream held the first part: the next ones come again, the
	// same.
	stored, ok := wire.ParseEventID(ids[0])
	if !ok {
		t.Fatalf("unparsable id %s", ids[0])
	}
	r.resume = map[string]*wire.EventID{stored.Source: &stored}
	r.relSigs = nil
	again := render()
	if len(again.outs) != len(b.outs)-1 {
		t.Fatalf("%d parts after resuming past the first, want %d", len(again.outs), len(b.outs)-1)
	}
	for i, o := range again.outs {
		if got := o.msg.Header.Get(jetstream.MsgIDHeader); got != ids[i+1] || !bytes.Equal(o.msg.Data, b.outs[i+1].msg.Data) {
			t.Errorf("part %d after resuming: %s, want %s", i+1, got, ids[i+1])
		}
	}
}

// A transaction whose last raw record holds none of the route's events
// still ends with a part that says so: empty, last, at the commit.
func TestGroupEndsInALaterRecord(t *testing.T) {
	rt, err := route.New(route.Config{Prefix: "grp", Group: true, Include: []string{"public.users"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, Config{RawStream: rawStream, Durable: durable, Stream: outStream, Route: rt, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	first := &wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{{Xid: 5, CommitLSN: 0xB0, Changes: []wire.Change{
		{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("a")}},
	}}}}
	last := &wire.Message{Source: srcTest, Relations: []wire.Relation{orders}, Txs: []wire.Tx{{Xid: 5, CommitLSN: 0xB0, Fragment: 1, Final: true, FirstChange: 1, Changes: []wire.Change{
		{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2")}},
	}}}}
	var parts []groupPart
	var ids []string
	for _, m := range []*wire.Message{first, last} {
		for _, o := range r.render(m, 1<<10, 1, 1<<20, nil).outs {
			var p groupPart
			if err := json.Unmarshal(o.msg.Data, &p); err != nil {
				t.Fatal(err)
			}
			parts, ids = append(parts, p), append(ids, o.msg.Header.Get(jetstream.MsgIDHeader))
		}
	}
	if len(parts) != 2 || parts[0].Last || len(parts[0].Events) != 1 || !parts[1].Last || len(parts[1].Events) != 0 ||
		ids[1] != "test.7300000000000000001.1:b0:commit:grp" {
		t.Fatalf("parts %+v, ids %v: want the users insert, then an empty last part at the commit", parts, ids)
	}
}
