package relay

import (
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/shared/wire"
)

func TestCountEvents(t *testing.T) {
	r, err := New(nil, Config{RawStream: "RAW", Durable: "d", Stream: "OUT", Log: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	change := func(op wire.Op) render.Msg { return render.Msg{Event: envelope.Event{Change: &wire.Change{Op: op}}} }
	outs := []render.Msg{
		change(wire.OpInsert), change(wire.OpInsert), change(wire.OpUpdate), change(wire.OpDelete),
		{Event: envelope.Event{Change: &wire.Change{Op: wire.OpDelete}}, Kind: render.Tombstone},
		change(wire.OpTruncate), change(wire.OpMessage),
		{Event: envelope.Event{Kind: envelope.KindBegin}}, {Event: envelope.Event{Kind: envelope.KindCommit}},
		{Event: envelope.Event{Kind: envelope.KindRelation}}, {Kind: render.Group},
		{Event: envelope.Event{Change: &wire.Change{Op: wire.OpInsert}}, Kind: render.DeadLetter},
	}
	r.countEvents(outs)
	r.countEvents(outs[:1])
	want := map[string]uint64{"insert": 3, "update": 1, "delete": 1, "truncate": 1, "message": 1, "begin": 1, "commit": 1, "relation": 1, "tombstone": 1, "group": 1}
	got := r.EventCounts()
	for k, name := range EventOps {
		if got[k] != want[name] {
			t.Errorf("%s: %d, want %d", name, got[k], want[name])
		}
	}
	if r.Stats().Events != 12 || r.Progress().Events != 12 {
		t.Errorf("Stats().Events %d, Progress().Events %d, want the sum 12", r.Stats().Events, r.Progress().Events)
	}
	if err := r.Ready(); err == nil || err.Error() != "setting up" {
		t.Errorf("a new relay: %v", err)
	}
}
