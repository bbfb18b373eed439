package relay

import (
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

func TestCountEvents(t *testing.T) {
	r, err := New(nil, Config{RawStream: "RAW", Durable: "d", Stream: "OUT", Log: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	change := func(op wire.Op) out { return out{ev: envelope.Event{Change: &wire.Change{Op: op}}} }
	outs := []out{
		change(wire.OpInsert), change(wire.OpInsert), change(wire.OpUpdate), change(wire.OpDelete),
		{ev: envelope.Event{Change: &wire.Change{Op: wire.OpDelete}}, tombstone: true},
		change(wire.OpTruncate), change(wire.OpMessage),
		{ev: envelope.Event{Kind: envelope.KindBegin}}, {ev: envelope.Event{Kind: envelope.KindCommit}},
		{ev: envelope.Event{Kind: envelope.KindRelation}}, {group: true},
		{ev: envelope.Event{Change: &wire.Change{Op: wire.OpInsert}}, dead: true},
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
