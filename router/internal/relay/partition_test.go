package relay

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/waitfor"
	"github.com/pgjet/pgjet/shared/wire"
)

func (e *env) startPartition(i, n int, durableName string) *running {
	e.t.Helper()
	rt, err := route.New(route.Config{Prefix: "postgres", Partition: i, Partitions: n})
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := New(e.js, Config{RawStream: rawStream, Durable: durableName, Stream: outStream, Route: rt,
		PublishTimeout: 2 * time.Second, Log: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-run.done })
	return run
}

func (e *env) waitDurable(name string, seq uint64) {
	e.t.Helper()
	waitfor.Condition(e.t, name+" at "+string(rune('0'+seq)), func() bool {
		c, err := e.js.Consumer(context.Background(), rawStream, name)
		if err != nil {
			return false
		}
		ci, err := c.Info(context.Background())
		return err == nil && ci.AckFloor.Stream >= seq && ci.NumAckPending == 0
	})
}

// Two partitions of one route share its output: together they publish
// every event exactly once, each marked with its share, every row's events
// through one of them in order; and a partition started again from the
// start, after the duplicate window, finds its own last events among the
// other's and stores nothing twice.
func TestPartitionsShareOneOutput(t *testing.T) {
	e := newEnv(t)
	if _, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Duplicates: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	recs := append(rawRecords(), recordsFrom(0x9000, 40)...)
	e.publishRaw(recs...)
	p0 := e.startPartition(0, 2, "part0")
	e.startPartition(1, 2, "part1")
	e.waitDurable("part0", uint64(len(recs)))
	e.waitDurable("part1", uint64(len(recs)))
	got := e.outputs()
	want := len(wantEvents) + 40
	if len(got) != want {
		t.Fatalf("%d events, want %d", len(got), want)
	}
	seen := map[string]bool{}
	last := map[string]wire.EventID{} // by partition
	shares := map[string]int{}
	for _, m := range got {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if seen[id] {
			t.Errorf("event %s twice", id)
		}
		seen[id] = true
		part := m.Header.Get(wire.PartitionHeader)
		shares[part]++
		p, _ := wire.ParseEventID(id)
		if prev, ok := last[part+p.Source]; ok && prev.Compare(p) >= 0 {
			t.Errorf("partition %s: %s after a later event", part, id)
		}
		last[part+p.Source] = p
	}
	if shares["0/2"] == 0 || shares["1/2"] == 0 || len(shares) != 2 {
		t.Errorf("shares %v: want both partitions to publish", shares)
	}
	t.Logf("shares: %v", shares)

	if err := p0.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(context.Background(), rawStream, "part0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the output's duplicate window
	again := e.startPartition(0, 2, "part0")
	e.waitDurable("part0", uint64(len(recs)))
	if n := len(e.outputs()); n != want {
		t.Errorf("%d events after partition 0 ran again from the start, want %d", n, want)
	}
	if s := again.r.Stats(); s.Skipped != uint64(shares["0/2"]) {
		t.Errorf("partition 0 skipped %d stored events, want %d", s.Skipped, shares["0/2"])
	}
}
