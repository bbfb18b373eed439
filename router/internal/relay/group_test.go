package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/waitfor"
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
	waitfor.Condition(t, "4 groups", func() bool {
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
	waitfor.Condition(t, "the second run to finish", func() bool {
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
