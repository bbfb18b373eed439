package rawstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/wire"
)

// publisherRig runs a Publisher against a real in-process JetStream server
// (file store, fsync on every write) and reads back what it stored.
type publisherRig struct {
	t      *testing.T
	js     jetstream.JetStream
	stream jetstream.Stream
	p      *Publisher
	errc   chan error
}

func newPublisherRig(t *testing.T, c PublisherConfig) *publisherRig {
	t.Helper()
	s := natstest.Run(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Ensure(ctx, js, StreamConfig{Name: "RAW", MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "RAW")
	if err != nil {
		t.Fatal(err)
	}
	c.Stream = "RAW"
	c.Subject = wire.RawSubject(benchSrc.Name)
	c.Source = benchSrc
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 8 << 20
	}
	c.AckTimeout = 10 * time.Second
	c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &publisherRig{t: t, js: js, stream: stream, p: NewPublisher(js, c), errc: make(chan error, 1)}
	runCtx, stop := context.WithCancel(context.Background())
	go func() { r.errc <- r.p.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-r.errc; err != nil {
			t.Errorf("publisher: %v", err)
		}
	})
	return r
}

func (r *publisherRig) add(f *pgoutput.Fragment) {
	r.t.Helper()
	if err := r.p.Add(context.Background(), f, 10*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

// waitIdle waits until every added fragment is acknowledged, for at most d.
func (r *publisherRig) waitIdle(d time.Duration) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.p.Drain(ctx); err != nil {
		r.t.Fatalf("publisher not idle after %v: %v", d, err)
	}
}

// messages reads every stored raw message in stream order.
func (r *publisherRig) messages() []wire.Message {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := r.stream.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []wire.Message
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := r.stream.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatalf("raw message %d: %v", seq, err)
		}
		var m wire.Message
		if err := wire.Unmarshal(raw.Data, &m); err != nil {
			r.t.Fatalf("raw message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// commitLSNs lists the commit LSNs of the transactions in msgs, in order.
func commitLSNs(msgs []wire.Message) []uint64 {
	var out []uint64
	for i := range msgs {
		for j := range msgs[i].Txs {
			out = append(out, msgs[i].Txs[j].CommitLSN)
		}
	}
	return out
}

// Every transaction is stored once, in commit order, and the confirmed
// position reaches the end of the last one only once it is stored.
func TestPublisherStoresEveryTransactionInOrder(t *testing.T) {
	r := newPublisherRig(t, PublisherConfig{MaxMessageBytes: 4 << 10})
	frags := oltpFragments(t, 300)
	var want []uint64
	var end uint64
	for _, f := range frags {
		want = append(want, f.Tx.CommitLSN)
		end = f.Tx.EndLSN
		r.add(f)
	}
	r.waitIdle(30 * time.Second)
	msgs := r.messages()
	got := commitLSNs(msgs)
	if len(got) != len(want) {
		t.Fatalf("stored %d transactions in %d messages, want %d", len(got), len(msgs), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("transaction %d: commit LSN %X, want %X", i, got[i], want[i])
		}
	}
	if len(msgs) < 2 {
		t.Errorf("300 transactions in %d message(s) of at most 4 KiB: the size bound was ignored", len(msgs))
	}
	if c := r.p.Confirmed(); c != end {
		t.Errorf("confirmed %X, want the last end LSN %X", c, end)
	}
	if changes, messages := r.p.Stats(); changes != 300 || messages != uint64(len(msgs)) {
		t.Errorf("stats: %d changes in %d messages, want 300 in %d", changes, messages, len(msgs))
	}
	tot := r.p.Totals()
	if txs, stored := tot.Transactions.Load(), tot.StoredLag.Snapshot().Count(); txs != 300 || stored != 300 {
		t.Errorf("totals: %d transactions, %d stored lags, want 300", txs, stored)
	}
	if n := r.p.InFlightBytes(); n != 0 {
		t.Errorf("%d bytes in flight once idle", n)
	}
}

// The totals of a process's publishers (one per replication session) add
// up, and each publish's latency is observed once.
func TestPublishersShareTotals(t *testing.T) {
	var tot Totals
	var lat countObserver
	for session := range 2 {
		r := newPublisherRig(t, PublisherConfig{Totals: &tot, PublishLatency: &lat})
		for _, f := range oltpFragments(t, 50) {
			r.add(f)
		}
		r.waitIdle(30 * time.Second)
		if changes, _ := r.p.Stats(); changes != uint64(50*(session+1)) {
			t.Fatalf("session %d: %d changes in the totals, want %d", session, changes, 50*(session+1))
		}
	}
	if tot.Transactions.Load() != 100 || tot.ReadLag.Snapshot().Count() != 100 || lat.n != tot.Messages.Load() {
		t.Fatalf("totals: %d transactions, %d read lags; %d latencies for %d messages",
			tot.Transactions.Load(), tot.ReadLag.Snapshot().Count(), lat.n, tot.Messages.Load())
	}
}

type countObserver struct{ n uint64 }

func (c *countObserver) Observe(float64) { c.n++ }

// Transactions trickling in one by one share raw messages when a linger is
// set (at most one message per linger, plus the first), and none waits much
// longer than the linger.
func TestLingerBatchesTrickle(t *testing.T) {
	for _, linger := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprintf("linger=%v", linger), func(t *testing.T) {
			r := newPublisherRig(t, PublisherConfig{Linger: linger})
			began := time.Now()
			for _, f := range oltpFragments(t, 40) {
				r.add(f)
				time.Sleep(5 * time.Millisecond)
			}
			added := time.Now()
			r.waitIdle(30 * time.Second)
			if waited := time.Since(added); waited > linger+2*time.Second {
				t.Errorf("the last transaction waited %v after it was added", waited)
			}
			msgs := r.messages()
			if got := len(commitLSNs(msgs)); got != 40 {
				t.Fatalf("stored %d transactions, want 40", got)
			}
			// Without a linger only the fsync of the message in flight
			// gathers transactions: how many depends on the disk.
			if linger == 0 {
				return
			}
			most := int(time.Since(began)/linger) + 2
			if len(msgs) < 2 || len(msgs) > most {
				t.Errorf("40 transactions trickling for %v in %d raw messages, want 2 to %d", added.Sub(began), len(msgs), most)
			}
		})
	}
}

// A full raw message does not wait for the linger: a backlog drains at the
// speed of the server, not one message per linger.
func TestLingerDoesNotHoldFullMessages(t *testing.T) {
	r := newPublisherRig(t, PublisherConfig{Linger: time.Hour, MaxMessageBytes: 2 << 10})
	frags := oltpFragments(t, 200)
	var want []uint64
	for _, f := range frags {
		want = append(want, f.Tx.CommitLSN)
		r.add(f)
	}
	// Full messages go out; what is left (less than a full message) waits
	// for the linger or the next full message.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, messages := r.p.Stats()
		if messages >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s only %d raw messages stored with a 1 h linger: full messages waited", messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs := r.messages()
	got := commitLSNs(msgs)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("transaction %d: commit LSN %X, want %X", i, got[i], want[i])
		}
	}
}

// After a quiet spell longer than the linger, the next transaction is
// published at once, not a linger after the publisher last looked.
func TestLingerAfterQuietSpell(t *testing.T) {
	const linger = time.Second
	r := newPublisherRig(t, PublisherConfig{Linger: linger})
	frags := oltpFragments(t, 2)
	r.add(frags[0])
	r.waitIdle(30 * time.Second)
	time.Sleep(linger + linger/5)
	added := time.Now()
	r.add(frags[1])
	r.waitIdle(30 * time.Second)
	if waited := time.Since(added); waited > linger/2 {
		t.Errorf("the transaction after a quiet spell waited %v for its publish (linger %v)", waited, linger)
	}
}

// MaxMessageChanges (a pipeline file's batch.max_events) bounds the changes
// of every raw message, and a full count does not wait for the linger.
func TestMaxMessageChangesBoundsEveryMessage(t *testing.T) {
	const most = 7
	r := newPublisherRig(t, PublisherConfig{Linger: time.Hour, MaxMessageChanges: most})
	frags := oltpFragments(t, 50)
	changes := 0
	for _, f := range frags {
		changes += len(f.Tx.Changes)
		r.add(f)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored, _ := r.p.Stats()
		// What is left after the last full message waits for the linger.
		if int(stored) > changes-most {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s only %d of %d changes stored with a 1 h linger: full messages waited", stored, changes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, m := range r.messages() {
		n := 0
		for _, tx := range m.Txs {
			n += len(tx.Changes)
		}
		if n > most {
			t.Errorf("raw message %d holds %d changes, more than %d", i, n, most)
		}
	}
}

// store publishes frags of src on the rig's subject as a collector reading
// src would, bypassing the rig's publisher.
func (r *publisherRig) store(src wire.Source, frags []*pgoutput.Fragment) {
	r.t.Helper()
	var asm Assembler
	m := asm.Assemble(src, frags)
	data, err := wire.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	first, _ := m.First()
	last, _ := m.Last()
	msg := &nats.Msg{Subject: wire.RawSubject(benchSrc.Name), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, wire.RawMsgID(src, first, last))
	if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
		r.t.Fatal(err)
	}
}

// A source has one writer: a record of another collector on the subject
// between two publishes stops the publisher with a *SubjectMovedError
// naming that record's writer, and nothing more is stored.
func TestPublisherStopsOnAnotherWriter(t *testing.T) {
	r := newPublisherRig(t, PublisherConfig{})
	frags := oltpFragments(t, 20)
	for _, f := range frags[:10] {
		r.add(f)
	}
	r.waitIdle(30 * time.Second)

	other := benchSrc
	other.Slot = "other_slot"
	r.store(other, frags[10:11])
	before := len(r.messages())

	for _, f := range frags[11:] {
		if err := r.p.Add(context.Background(), f, time.Second); err != nil && err != ErrQueueFull {
			t.Fatal(err)
		}
	}
	var runErr error
	select {
	case runErr = <-r.errc:
		r.errc <- nil // for the rig's cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the publisher went on publishing after another writer's record")
	}
	var moved *SubjectMovedError
	if !errors.As(runErr, &moved) || !moved.Found || moved.Last.Source.Slot != "other_slot" {
		t.Fatalf("publisher ended with %v, want a SubjectMovedError naming other_slot", runErr)
	}
	if after := len(r.messages()); after != before {
		t.Errorf("%d records stored after the other writer's", after-before)
	}
	if r.p.Idle() {
		t.Error("the refused fragments count as acknowledged")
	}
}

// An attempt whose ack got lost but which was stored is not a conflict:
// the retry finds its own record at the end of the subject, takes its
// sequence, and stores nothing twice.
func TestPublisherRetryFindsItsOwnRecord(t *testing.T) {
	r := newPublisherRig(t, PublisherConfig{Linger: time.Hour, MaxMessageChanges: 1})
	frags := oltpFragments(t, 3)
	// What the publisher's first publish will be, stored already, as if
	// by an attempt whose ack never came back. JetStream checks the
	// expected sequence before the duplicate window: that check fails,
	// and the publisher must see its own record.
	r.store(benchSrc, frags[:1])
	for _, f := range frags {
		r.add(f)
	}
	r.waitIdle(30 * time.Second)
	if got := commitLSNs(r.messages()); len(got) != 3 {
		t.Fatalf("stored transactions %X, want 3 once each", got)
	}
}
