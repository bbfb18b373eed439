package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/waitfor"
	"github.com/pgjet/pgjet/shared/wire"
)

// recordsFrom are n raw records of one insert each, commit LSNs from lsn.
func recordsFrom(lsn uint64, n int) []*wire.Message {
	var out []*wire.Message
	for i := range n {
		out = append(out, &wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{
			{Xid: uint32(lsn) + uint32(i), CommitLSN: lsn + uint64(i)*0x10, Final: true, Changes: []wire.Change{
				{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text(fmt.Sprint(i)), text("n")}},
			}},
		}})
	}
	return out
}

func (e *env) startReplica(ttl time.Duration) *running {
	e.t.Helper()
	return e.startConfig(Config{Stream: outStream, StandbyTTL: ttl})
}

// Replicas of a route on one durable: the first is active, the second
// relays nothing while it runs, and takes over once it stops; the output
// holds every event exactly once, in order.
func TestStandbyReplicaTakesOver(t *testing.T) {
	e := newEnv(t)
	const ttl = 3 * time.Second
	e.publishRaw(recordsFrom(0x1000, 5)...)
	active := e.startReplica(ttl)
	e.waitAckFloor(5)
	standby := e.startReplica(ttl)
	waitfor.Condition(t, "the standby to stand by", func() bool {
		ci := e.consumer()
		return ci != nil && ci.NumWaiting >= 2
	})
	e.publishRaw(recordsFrom(0x2000, 5)...)
	e.waitAckFloor(10)
	if s := standby.r.Stats(); s.RawRecords != 0 || s.Events != 0 {
		t.Fatalf("the standby relayed %+v while the active ran", s)
	}
	if err := active.stop(t); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	e.publishRaw(recordsFrom(0x3000, 5)...)
	waitfor.Within(t, ttl+20*time.Second, "the standby to take over and relay 5 records", func() bool {
		ci := e.consumer()
		return ci != nil && ci.AckFloor.Stream >= 15
	})
	t.Logf("takeover and 5 records relayed %s after the active stopped (pin TTL %s)", time.Since(stopped).Round(time.Millisecond), ttl)
	got := e.outputs()
	if len(got) != 15 {
		t.Fatalf("%d events, want 15", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, _ := wire.ParseEventID(got[i-1].Header.Get(jetstream.MsgIDHeader))
		b, _ := wire.ParseEventID(got[i].Header.Get(jetstream.MsgIDHeader))
		if a.Compare(b) >= 0 {
			t.Errorf("event %d (%s) not after event %d (%s)", i, got[i].Header.Get(jetstream.MsgIDHeader), i-1, got[i-1].Header.Get(jetstream.MsgIDHeader))
		}
	}
	if s := standby.r.Stats(); s.Events != 5 {
		t.Errorf("the replica that took over stored %d events, want 5", s.Events)
	}
}
