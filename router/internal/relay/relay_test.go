package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/waitfor"
	"github.com/pgjet/pgjet/shared/wire"
	"github.com/vmihailenco/msgpack/v5"
)

const (
	rawStream = "PGJET_RAW"
	outStream = "PGJET_EVENTS"
	durable   = "pgjet-router"
)

var (
	srcTest  = wire.Source{Name: "test", SystemID: 7300000000000000001, Timeline: 1, Database: "app", Slot: "pgjet"}
	srcOther = wire.Source{Name: "other", SystemID: 42, Timeline: 3, Database: "crm", Slot: "other"}

	users = wire.Relation{ID: 16384, Schema: "public", Table: "users", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "name", TypeOID: 25, TypeMod: -1},
	}}
	orders = wire.Relation{ID: 16390, Schema: "public", Table: "orders", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
	}}
	hostile = wire.Relation{ID: 16400, Schema: "we.ird", Table: "my >table*", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
	}}
)

func text(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

// rawRecords are two raw records of source "test" and one of source "other":
// every op, a truncate of two tables, a logical decoding message, and a table
// whose name would break a subject.
func rawRecords() []*wire.Message {
	return []*wire.Message{
		{
			Source:    srcTest,
			Relations: []wire.Relation{users, orders},
			Txs: []wire.Tx{
				{Xid: 700, CommitLSN: 0x1000, EndLSN: 0x1010, CommitTime: 1_700_000_000_000_000, Final: true, Changes: []wire.Change{
					{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("ann")}},
					{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("1"), text("bob")}},
					{Op: wire.OpDelete, Rel: 0, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}}},
				}},
				{Xid: 701, CommitLSN: 0x2000, EndLSN: 0x2010, CommitTime: 1_700_000_001_000_000, Final: true, Changes: []wire.Change{
					{Op: wire.OpTruncate, TruncateRels: []int32{0, 1}},
					{Op: wire.OpMessage, Prefix: "outbox", Content: []byte(`{"hello":"world"}`), Transactional: true},
				}},
			},
		},
		{
			Source:    srcTest,
			Relations: []wire.Relation{orders, hostile},
			Txs: []wire.Tx{
				// A later fragment of a large transaction: indexes continue.
				{Xid: 702, CommitLSN: 0x3000, EndLSN: 0x3010, CommitTime: 1_700_000_002_000_000, Fragment: 1, Final: true, FirstChange: 5, Changes: []wire.Change{
					{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("7")}},
					{Op: wire.OpInsert, Rel: 1, New: []wire.Value{text("8")}},
				}},
			},
		},
		{
			Source:    srcOther,
			Relations: []wire.Relation{orders},
			Txs: []wire.Tx{
				{Xid: 9, CommitLSN: 0x5_0000_0100, EndLSN: 0x5_0000_0110, CommitTime: 1_700_000_003_000_000, Final: true, Changes: []wire.Change{
					{Op: wire.OpDelete, Rel: 0, OldKind: wire.OldKey, Old: []wire.Value{text("7")}},
				}},
			},
		},
	}
}

// wantEvent is an output message as the relay must publish it.
type wantEvent struct{ subject, id string }

// wantEvents are the outputs of rawRecords, in order.
var wantEvents = []wantEvent{
	{"postgres.public.users.insert", "test.7300000000000000001.1:1000:0"},
	{"postgres.public.users.update", "test.7300000000000000001.1:1000:1"},
	{"postgres.public.users.delete", "test.7300000000000000001.1:1000:2"},
	{"postgres.public.users.truncate", "test.7300000000000000001.1:2000:0.0"},
	{"postgres.public.orders.truncate", "test.7300000000000000001.1:2000:0.1"},
	{"postgres._messages.outbox", "test.7300000000000000001.1:2000:1"},
	{"postgres.public.orders.insert", "test.7300000000000000001.1:3000:5"},
	{"postgres.we%2Eird.my%20%3Etable%2A.insert", "test.7300000000000000001.1:3000:6"},
	{"postgres.public.orders.delete", "other.42.3:500000100:0"},
}

// eventsPerRecord is how many outputs each of rawRecords has.
var eventsPerRecord = []int{6, 2, 1}

type env struct {
	t  *testing.T
	js jetstream.JetStream
	// logs holds what the relays started by the env logged, at debug
	// level: tests wait on what a relay says it is doing.
	logs *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, _, js := natstest.Start(t)
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"pgjet.raw.>"}, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, logs: &syncBuffer{}}
}

func (e *env) publishRaw(msgs ...*wire.Message) {
	e.t.Helper()
	for _, m := range msgs {
		data, err := wire.Marshal(m)
		if err != nil {
			e.t.Fatal(err)
		}
		e.publishBytes("pgjet.raw."+m.Source.Name, data)
	}
}

func (e *env) publishBytes(subj string, data []byte) {
	e.t.Helper()
	if _, err := e.js.Publish(context.Background(), subj, data); err != nil {
		e.t.Fatal(err)
	}
}

// running is a relay running in the background.
type running struct {
	r      *Relay
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(stdoutSink *stdout.Sink) *running {
	e.t.Helper()
	return e.startEnvelope(nil, stdoutSink)
}

// startEnvelope starts a relay rendering CloudEvents as ce says, or native
// events for nil.
func (e *env) startEnvelope(ce *envelope.CloudEventsConfig, stdoutSink *stdout.Sink) *running {
	e.t.Helper()
	var env envelope.Renderer
	if ce != nil {
		c, err := envelope.NewCloudEvents(*ce)
		if err != nil {
			e.t.Fatal(err)
		}
		env = c
	}
	r, err := New(e.js, Config{
		RawStream: rawStream, Durable: durable, Stream: outStream, Prefix: "postgres", Envelope: env,
		Stdout: stdoutSink, PublishTimeout: 2 * time.Second, Log: e.logger(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		<-run.done
	})
	return run
}

// stop cancels the relay and returns what Run returned.
func (run *running) stop(t *testing.T) error {
	t.Helper()
	run.cancel()
	select {
	case err := <-run.done:
		run.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop within 10 s of cancel")
		return nil
	}
}

// wait returns the error Run ends with on its own.
func (run *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-run.done:
		run.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop within 10 s")
		return nil
	}
}

func (e *env) outputs() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, outStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// consumer returns the relay's consumer, nil before the relay created it.
func (e *env) consumer() *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), rawStream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) waitOutputs(n int) []*jetstream.RawStreamMsg {
	e.t.Helper()
	var got []*jetstream.RawStreamMsg
	waitfor.Condition(e.t, fmt.Sprintf("%d output events", n), func() bool {
		got = e.outputs()
		return len(got) >= n
	})
	return got
}

func (e *env) waitAckFloor(seq uint64) {
	e.t.Helper()
	waitfor.Condition(e.t, fmt.Sprintf("raw ack floor %d", seq), func() bool {
		ci := e.consumer()
		return ci != nil && ci.AckFloor.Stream >= seq && ci.NumAckPending == 0
	})
}

func checkOutputs(t *testing.T, got []*jetstream.RawStreamMsg, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		for _, m := range got {
			t.Logf("got %s %s %s", m.Subject, m.Header.Get(jetstream.MsgIDHeader), m.Data)
		}
		t.Fatalf("output stream holds %d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Subject != w.subject || got[i].Header.Get(jetstream.MsgIDHeader) != w.id {
			t.Errorf("event %d: subject %q id %q, want %q %q", i, got[i].Subject, got[i].Header.Get(jetstream.MsgIDHeader), w.subject, w.id)
		}
		if !json.Valid(got[i].Data) {
			t.Errorf("event %d: not JSON: %s", i, got[i].Data)
		}
		// The server refuses a message meant for the output stream that
		// would land in another one.
		if s := got[i].Header.Get(jetstream.ExpectedStreamHeader); s != outStream {
			t.Errorf("event %d: Nats-Expected-Stream %q, want %q", i, s, outStream)
		}
	}
}

func TestRelaysInOrderWithIDs(t *testing.T) {
	e := newEnv(t)
	e.publishRaw(rawRecords()...)
	var out bytes.Buffer
	run := e.start(stdout.New(&out, stdout.JSON, time.UTC))

	checkOutputs(t, e.waitOutputs(len(wantEvents)), wantEvents)
	e.waitAckFloor(3)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(wantEvents) {
		t.Fatalf("stdout has %d lines, want %d:\n%s", len(lines), len(wantEvents), out.String())
	}
	for i, m := range e.outputs() {
		if lines[i] != string(m.Data) {
			t.Errorf("stdout line %d = %s, want the stored event %s", i, lines[i], m.Data)
		}
	}
	st := run.r.Stats()
	if st.RawRecords != 3 || st.Events != uint64(len(wantEvents)) || st.Duplicates != 0 || st.DeadLetters != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The output stream refuses events beyond its first three: the relay must
// keep the raw record unacknowledged and republish until the events are
// stored, then acknowledge it, without storing any event twice.
func TestAcksRawRecordOnlyAfterItsEventsAreStored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		MaxMsgs: 3, Discard: jetstream.DiscardNew, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	run := e.start(nil)

	waitfor.Condition(t, "republish rounds", func() bool { return run.r.Stats().Republishes >= 2 })
	if got := len(e.outputs()); got != 3 {
		t.Fatalf("output holds %d events, want the 3 the stream accepts", got)
	}
	if ci := e.consumer(); ci.AckFloor.Stream != 0 || ci.NumAckPending == 0 {
		t.Fatalf("raw record acknowledged before its events were stored: ack floor %d, pending %d", ci.AckFloor.Stream, ci.NumAckPending)
	}

	_, err = e.js.UpdateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		MaxMsgs: -1, Discard: jetstream.DiscardNew, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, e.waitOutputs(len(wantEvents)), wantEvents)
	e.waitAckFloor(3)
}

// stoppedHalfWay leaves the raw records half relayed: a relay publishes
// them into an output stream that takes 4 messages, is stopped once it
// republishes (the raw records unacknowledged), and the output then takes
// every message, after wait (to let the duplicate window pass).
func (e *env) stoppedHalfWay(t *testing.T, dupWindow, wait time.Duration) {
	t.Helper()
	ctx := context.Background()
	cfg := jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		MaxMsgs: 4, Discard: jetstream.DiscardNew, Duplicates: dupWindow,
	}
	if _, err := e.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	first := e.start(nil)
	waitfor.Condition(t, "a republish round", func() bool { return first.r.Stats().Republishes >= 1 })
	if err := first.stop(t); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if ci := e.consumer(); ci.AckFloor.Stream != 0 {
		t.Fatalf("abandoned raw record was acknowledged (ack floor %d)", ci.AckFloor.Stream)
	}
	time.Sleep(wait) // time passing is the point, not a condition
	cfg.MaxMsgs = -1
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// A relay stopped in the middle of a raw record (its events partly stored)
// leaves it unacknowledged; the next relay repeats it and the stream
// dedupes. Then a replay of everything stores nothing new.
func TestRestartAndReplayStoreNoDuplicates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.stoppedHalfWay(t, 10*time.Minute, 0)
	second := e.start(nil)
	checkOutputs(t, e.waitOutputs(len(wantEvents)), wantEvents)
	e.waitAckFloor(3)
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := second.r.Stats(); st.Skipped != 4 || st.Duplicates != 0 {
		t.Errorf("second relay stats %+v: want the 4 events the first one stored skipped by position, none republished", st)
	}

	// Replay the raw stream from the start into the same output.
	if err := e.js.DeleteConsumer(ctx, rawStream, durable); err != nil {
		t.Fatal(err)
	}
	third := e.start(nil)
	e.waitAckFloor(3)
	if err := third.stop(t); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, e.outputs(), wantEvents)
	// Each source's stored events are skipped by its position, or
	// deduplicated by the window.
	if st := third.r.Stats(); st.Skipped == 0 || st.Skipped+st.Duplicates != uint64(len(wantEvents)) {
		t.Errorf("replay stats %+v: want every event skipped or deduplicated", st)
	}
}

// A router killed with a record's events half published and restarted
// after the output duplicate window has passed stores each event once: the
// window cannot catch this, the resume point does.
func TestRestartAfterDuplicateWindowIsExact(t *testing.T) {
	e := newEnv(t)
	e.stoppedHalfWay(t, 200*time.Millisecond, 500*time.Millisecond) // restarted past the duplicate window
	second := e.start(nil)
	e.waitAckFloor(3)
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, e.outputs(), wantEvents)
}

// A router killed after storing events of records of two sources, before
// acknowledging any of them, restarted after the output duplicate window:
// each stored event is skipped by its own source's position (the window no
// longer catches them), none is stored twice.
func TestRestartSkipsStoredEventsOfEverySource(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage, Duplicates: 200 * time.Millisecond,
	}
	if _, err := e.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	recs := rawRecords()
	recs = append(recs[2:], recs[:2]...) // the record of source "other" first
	want := append([]wantEvent{wantEvents[len(wantEvents)-1]}, wantEvents[:len(wantEvents)-1]...)
	e.publishRaw(recs...)
	// What the killed router left: the first three events, of both sources.
	e.storeAsKilledRouter(want[:3])
	time.Sleep(500 * time.Millisecond) // past the duplicate window
	run := e.start(nil)
	e.waitAckFloor(3)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, e.outputs(), want)
	if st := run.r.Stats(); st.Skipped != 3 || st.Duplicates != 0 {
		t.Errorf("relay stats %+v: want the 3 stored events skipped by position, none republished", st)
	}
}

// A republish later than half the output stream's duplicate window after a
// record's first publish could store its events twice (the server may no
// longer know their ids): publishAll asks for a resync instead, which finds
// what is stored from the stream itself. Sooner, or on a first attempt that
// merely takes long, it publishes.
func TestLateRepublishResyncs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: outStream, Subjects: []string{"postgres.>"}, Duplicates: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(e.js, Config{RawStream: rawStream, Durable: durable, Stream: outStream, Prefix: "postgres", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ensureOutput(ctx); err != nil {
		t.Fatal(err)
	}
	if r.dupWindow != time.Second {
		t.Fatalf("duplicate window %s, want the stream's 1s", r.dupWindow)
	}
	for i, tt := range []struct {
		name       string
		failed     bool
		age        time.Duration // since the record was taken
		wantResync bool
	}{
		{"retry within half the window", true, 100 * time.Millisecond, false},
		{"retry past half the window", true, 600 * time.Millisecond, true},
		{"first attempt, however late", false, 5 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := nats.NewMsg("postgres.public.orders.insert")
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("test.1.1:1:%d", i))
			m.Data = []byte(`{}`)
			rec := &record{b: &batch{msgs: []nats.Msg{*m}}, failed: tt.failed, start: time.Now().Add(-tt.age)}
			before, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = r.publishAll(ctx, rec, 0)
			after, ierr := s.Info(ctx)
			if ierr != nil {
				t.Fatal(ierr)
			}
			stored := after.State.Msgs - before.State.Msgs
			if tt.wantResync {
				if !errors.Is(err, errResync) || stored != 0 {
					t.Errorf("publishAll: %v, %d stored; want a resync and nothing published", err, stored)
				}
				return
			}
			if err != nil || stored != 1 {
				t.Errorf("publishAll: %v, %d stored; want the event stored", err, stored)
			}
		})
	}
}

// A router killed while holding a raw record leaves it unacknowledged on the
// consumer; the next one must get it at once, not after the 60 s ack wait.
func TestPendingRecordOfKilledRouterIsRedeliveredAtOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publishRaw(rawRecords()...)
	cons, err := e.js.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: durable, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxAckPending: 1, FilterSubject: wire.RawFilter,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
		// Taken and never acknowledged, like a router killed with -9.
	}
	if ci := e.consumer(); ci.NumAckPending != 1 {
		t.Fatalf("setup: %d pending, want 1", ci.NumAckPending)
	}
	e.start(nil)
	checkOutputs(t, e.waitOutputs(len(wantEvents)), wantEvents)
	e.waitAckFloor(3)
}

// Invariant: a record the consumer delivered but the relay never received
// (the connection dropped with it in flight) comes again within seconds, not
// after the ack wait: with one record allowed unacknowledged, nothing else
// would flow until then.
func TestLostDeliveryIsRedeliveredBeforeTheAckWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cons, err := e.js.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: durable, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxAckPending: 1, FilterSubject: wire.RawFilter,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A pull request queued before the relay's takes the first record and
	// never acknowledges it: to the relay, a delivery lost on the way.
	stolen := make(chan int, 1)
	go func() {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
		n := 0
		if err == nil {
			for range batch.Messages() {
				n++
			}
		}
		stolen <- n
	}()
	waitfor.Condition(t, "the stray pull request", func() bool { ci := e.consumer(); return ci != nil && ci.NumWaiting == 1 })
	run := e.start(nil)
	waitfor.Condition(t, "the relay's pull request", func() bool { return e.consumer().NumWaiting >= 2 })
	start := time.Now()
	e.publishRaw(rawRecords()...)
	if n := <-stolen; n != 1 {
		t.Fatalf("the stray pull request took %d records, want 1", n)
	}
	waitfor.Within(t, 30*time.Second, "the events of the lost record, well before its ack wait (1 min)", func() bool {
		return len(e.outputs()) >= len(wantEvents)
	})
	checkOutputs(t, e.outputs(), wantEvents)
	t.Logf("the lost record arrived %s after it was published", time.Since(start).Round(100*time.Millisecond))
	e.waitAckFloor(3)
	if st := run.r.Stats(); st.Events != uint64(len(wantEvents)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestGapStopsTheRelay(t *testing.T) {
	tests := []struct {
		name string
		// relayed records are relayed by an earlier router before the deletion.
		relayed     int
		deleteSeqs  []uint64
		first, last uint64
		deleted     bool // from the middle, not the head
		// events stored before the stop.
		events int
	}{
		{name: "deleted in the middle before first read", deleteSeqs: []uint64{2}, first: 2, last: 2, deleted: true, events: 6},
		{name: "expired at the head while the router was down", relayed: 1, deleteSeqs: []uint64{1, 2}, first: 2, last: 2, events: 6},
		{name: "several missing after a restart", relayed: 1, deleteSeqs: []uint64{2, 3}, first: 2, last: 3, deleted: true, events: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			recs := rawRecords()
			// A fourth record, so a gap before it is seen on delivery.
			recs = append(recs, &wire.Message{Source: srcTest, Relations: []wire.Relation{orders}, Txs: []wire.Tx{
				{Xid: 800, CommitLSN: 0x9000, Final: true, Changes: []wire.Change{{Op: wire.OpInsert, New: []wire.Value{text("9")}}}},
			}})
			e.publishRaw(recs[:tt.relayed]...)
			if tt.relayed > 0 {
				run := e.start(nil)
				e.waitAckFloor(uint64(tt.relayed))
				if err := run.stop(t); err != nil {
					t.Fatal(err)
				}
			}
			e.publishRaw(recs[tt.relayed:]...)
			s, err := e.js.Stream(context.Background(), rawStream)
			if err != nil {
				t.Fatal(err)
			}
			for _, seq := range tt.deleteSeqs {
				if err := s.DeleteMsg(context.Background(), seq); err != nil {
					t.Fatal(err)
				}
			}
			run := e.start(nil)
			err = run.wait(t)
			var gap *GapError
			if !errors.As(err, &gap) || !errors.Is(err, ErrGap) {
				t.Fatalf("Run = %v, want a gap error", err)
			}
			if gap.First != tt.first || gap.Last != tt.last || gap.Deleted != tt.deleted {
				t.Errorf("gap %d-%d (deleted %v), want %d-%d (deleted %v)", gap.First, gap.Last, gap.Deleted, tt.first, tt.last, tt.deleted)
			}
			flag := "--accept-gap " + gap.Range()
			if want := fmt.Sprintf("records %s", gap.Range()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), flag) ||
				!strings.Contains(err.Error(), "consumer "+durable) {
				t.Errorf("error %q does not name %q, the consumer and %q", err, want, flag)
			}
			if got := len(e.outputs()); got != tt.events {
				t.Errorf("%d events stored, want %d", got, tt.events)
			}

			// A restart does not pass it silently (JetStream moves the
			// consumer's ack floor over deleted records), nor accepts a
			// range that does not cover it.
			again := e.startConfig(Config{Stream: outStream, AcceptGaps: SeqRanges{{tt.last + 1, tt.last + 1}}})
			if err := again.wait(t); !errors.As(err, &gap) || gap.Range() != (SeqRange{tt.first, tt.last}).String() {
				t.Fatalf("restart: Run = %v, want the same gap again", err)
			}

			// Told to accept exactly that gap, the relay goes past it.
			accepting := e.startConfig(Config{Stream: outStream, AcceptGaps: SeqRanges{{tt.first, tt.last}}})
			e.waitAckFloor(4)
			if st := accepting.r.Stats(); st.GapRecords != tt.last-tt.first+1 {
				t.Errorf("stats %+v: want %d gap records", st, tt.last-tt.first+1)
			}
			e.waitLog("going past missing raw records, as --accept-gap says")
		})
	}
}

func TestUndecodableValueGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x1_0000_2000, CommitTime: 1_700_000_000_000_000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("abc"), text("x")}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text("y")}},
		}}},
	})
	e.start(nil)
	got := e.waitOutputs(2)
	checkOutputs(t, got, []wantEvent{
		{"postgres._deadletter", "test.7300000000000000001.1:100002000:0:dlq"},
		{"postgres.public.users.insert", "test.7300000000000000001.1:100002000:1"},
	})
	var d struct {
		Error  string `json:"error"`
		ID     string `json:"id"`
		LSN    string `json:"lsn"`
		Index  uint64 `json:"index"`
		Op     string `json:"op"`
		Schema string `json:"schema"`
		Table  string `json:"table"`
		Source struct {
			Name     string `json:"name"`
			SystemID string `json:"system_id"`
		} `json:"source"`
		New []struct {
			Column string `json:"column"`
			Kind   string `json:"kind"`
			Data   []byte `json:"data"`
		} `json:"new"`
	}
	if err := json.Unmarshal(got[0].Data, &d); err != nil {
		t.Fatalf("dead letter %s: %v", got[0].Data, err)
	}
	if d.Error == "" || d.ID != "test.7300000000000000001.1:100002000:0" || d.LSN != "1/2000" || d.Index != 0 || d.Op != "insert" ||
		d.Schema != "public" || d.Table != "users" || d.Source.Name != "test" || d.Source.SystemID != "7300000000000000001" {
		t.Errorf("dead letter %s", got[0].Data)
	}
	if len(d.New) != 2 || d.New[0].Column != "id" || d.New[0].Kind != "text" || string(d.New[0].Data) != "abc" {
		t.Errorf("dead letter values %+v", d.New)
	}
	if !strings.Contains(string(got[0].Data), `"data":"YWJj"`) {
		t.Errorf("dead letter does not carry the raw value in base64: %s", got[0].Data)
	}
	e.waitAckFloor(1)
}

// A row whose event would exceed the server's max_payload (control
// characters grow sixfold in JSON) is dead-lettered without its values.
func TestEventTooLargeGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	huge := strings.Repeat("\x01", 300_000)
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x2000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text(huge)}},
		}}},
	})
	e.start(nil)
	got := e.waitOutputs(1)
	checkOutputs(t, got, []wantEvent{{"postgres._deadletter", "test.7300000000000000001.1:2000:0:dlq"}})
	doc := string(got[0].Data)
	if !strings.Contains(doc, "max_payload") || !strings.Contains(doc, `"values_omitted":true`) || !strings.Contains(doc, `"raw_seq":1,`) || len(doc) > 2000 {
		t.Errorf("dead letter: %.500s", doc)
	}
	e.waitAckFloor(1)
}

// piecesOf cuts c, of the transaction at lsn, into pieces of size bytes.
func piecesOf(t *testing.T, lsn, index uint64, c wire.Change, size int) []wire.Tx {
	t.Helper()
	enc, err := wire.EncodeChange(&c, wire.Version)
	if err != nil {
		t.Fatal(err)
	}
	var txs []wire.Tx
	for off := 0; off < len(enc); off += size {
		end := min(off+size, len(enc))
		txs = append(txs, wire.Tx{Xid: 9, CommitLSN: lsn, Fragment: uint32(1 + off/size), FirstChange: index,
			PieceOffset: uint64(off), PieceTotal: uint64(len(enc)), Changes: []wire.Change{{Op: c.Op, Rel: c.Rel, Content: enc[off:end]}}})
	}
	return txs
}

// Invariant: a change that travels in pieces across several raw records
// (interleaved with another source's records, the last piece not yet
// published when the first arrives) becomes exactly one event, in commit
// order, and every record is acknowledged.
func TestChangeInPiecesBecomesOneEvent(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("0123456789abcdef", 20_000)
	p := piecesOf(t, 0x4000, 1, wire.Change{Op: wire.OpInsert, Rel: 1, New: []wire.Value{text("2"), text(big)}}, 60_000)
	if len(p) != 6 {
		t.Fatalf("%d pieces", len(p))
	}
	before := wire.Tx{Xid: 9, CommitLSN: 0x4000, Changes: []wire.Change{{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1")}}}}
	after := wire.Tx{Xid: 9, CommitLSN: 0x4000, EndLSN: 0x4010, Final: true, Fragment: 7, FirstChange: 2,
		Changes: []wire.Change{{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3")}}}}
	rels := []wire.Relation{orders, users}
	e.publishRaw(
		&wire.Message{Source: srcTest, Relations: rels, Txs: []wire.Tx{before, p[0], p[1]}},
		rawRecords()[2], // another source in between
		&wire.Message{Source: srcTest, Relations: rels, Txs: []wire.Tx{p[2], p[3], p[4]}},
	)
	e.start(nil)
	// Twice: it looked, waited, and looked again.
	waitfor.Condition(t, "the relay to look for the last piece twice", func() bool {
		return strings.Count(e.logs.String(), "next piece of a large change not stored yet") >= 2
	})
	// The record with the first piece goes out as a whole, once complete.
	if got := e.outputs(); len(got) != 0 {
		t.Fatalf("%d events before the last piece was published, want none", len(got))
	}
	e.publishRaw(&wire.Message{Source: srcTest, Relations: rels, Txs: []wire.Tx{p[5], after}})
	got := e.waitOutputs(4)
	checkOutputs(t, got, []wantEvent{
		{"postgres.public.orders.insert", "test.7300000000000000001.1:4000:0"},
		{"postgres.public.users.insert", "test.7300000000000000001.1:4000:1"},
		{"postgres.public.orders.delete", "other.42.3:500000100:0"},
		{"postgres.public.orders.insert", "test.7300000000000000001.1:4000:2"},
	})
	if !strings.Contains(string(got[1].Data), `"name":"`+big+`"`) {
		t.Errorf("pieced event does not carry the value: %.300s", got[1].Data)
	}
	e.waitAckFloor(4)
}

// A change in pieces whose event cannot fit max_payload is dead-lettered
// without rendering it, naming the record of its first piece.
func TestChangeInPiecesTooLargeGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("x", 3<<20) // natstest servers allow 1 MB
	p := piecesOf(t, 0x4000, 0, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text(big)}}, 300_000)
	rec := func(txs ...wire.Tx) *wire.Message {
		return &wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: txs}
	}
	if len(p) != 11 {
		t.Fatalf("%d pieces", len(p))
	}
	e.publishRaw(rec(p[0]), rec(p[1], p[2], p[3]), rec(p[4:7]...), rec(p[7:10]...), rec(p[10]))
	e.start(nil)
	got := e.waitOutputs(1)
	checkOutputs(t, got, []wantEvent{{"postgres._deadletter", "test.7300000000000000001.1:4000:0:dlq"}})
	doc := string(got[0].Data)
	if !strings.Contains(doc, "makes an event larger than the 1048576 bytes") || !strings.Contains(doc, "max_payload") || !strings.Contains(doc, `"values_omitted":true`) ||
		!strings.Contains(doc, `"raw_seq":1,`) {
		t.Errorf("dead letter: %.500s", doc)
	}
	e.waitAckFloor(5)
}

// Invariant: a snapshot read a stopped collector left half stored in
// pieces is dropped, whatever follows its last piece: the final fragment
// the next collector closes an initial snapshot's reads with (from the
// next index), or the changes after a backfill chunk. No event for it, the
// reads before it and the changes after it go out, every record is
// acknowledged, and the relay goes on.
func TestAbandonedPiecedReadIsDropped(t *testing.T) {
	for _, kind := range []wire.SnapshotKind{wire.SnapshotInitial, wire.SnapshotIncremental} {
		t.Run(kind.String(), func(t *testing.T) {
			e := newEnv(t)
			snap := &wire.Snapshot{Kind: kind, ID: "s"}
			p := piecesOf(t, 0x3FFF, 1, wire.Change{Op: wire.OpRead, Rel: 1, New: []wire.Value{text("2"), text(strings.Repeat("x", 5000))}}, 1000)
			for i := range p {
				p[i].Xid, p[i].Snapshot = 0, snap
			}
			read := wire.Tx{CommitLSN: 0x3FFF, Snapshot: snap, Changes: []wire.Change{{Op: wire.OpRead, Rel: 0, New: []wire.Value{text("1")}}}}
			change := wire.Tx{Xid: 10, CommitLSN: 0x4000, EndLSN: 0x4010, Final: true,
				Changes: []wire.Change{{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3")}}}}
			rels := []wire.Relation{orders, users}
			recs := []*wire.Message{
				{Source: srcTest, Relations: rels, Txs: []wire.Tx{read, p[0], p[1]}},
				{Source: srcTest, Relations: rels, Txs: []wire.Tx{p[2]}},
			}
			if kind == wire.SnapshotInitial {
				closing := wire.Tx{CommitLSN: 0x3FFF, Fragment: p[2].Fragment + 1, FirstChange: 2, Final: true, Snapshot: snap}
				recs = append(recs, &wire.Message{Source: srcTest, Relations: rels, Txs: []wire.Tx{closing}})
			}
			recs = append(recs, &wire.Message{Source: srcTest, Relations: rels, Txs: []wire.Tx{change}})
			e.publishRaw(recs...)
			run := e.start(nil)
			got := e.waitOutputs(2)
			checkOutputs(t, got, []wantEvent{
				{"postgres.public.orders.read", "test.7300000000000000001.1:3fff:0"},
				{"postgres.public.orders.insert", "test.7300000000000000001.1:4000:0"},
			})
			e.waitAckFloor(uint64(len(recs)))
			if !strings.Contains(e.logs.String(), "left incomplete by a stopped collector") {
				t.Errorf("no warning for the dropped read:\n%s", e.logs.String())
			}
			if n := run.r.Stats().AbandonedReads; n != 1 {
				t.Errorf("AbandonedReads = %d, want 1", n)
			}
		})
	}
}

// A piece that does not continue where the change stands stops the relay:
// the change cannot be put together.
func TestMissingPieceStopsTheRelay(t *testing.T) {
	e := newEnv(t)
	p := piecesOf(t, 0x4000, 0, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text(strings.Repeat("x", 5000))}}, 1000)
	e.publishRaw(
		&wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{p[0], p[1]}},
		&wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{p[3]}},
	)
	run := e.start(nil)
	err := run.wait(t)
	if err == nil || !strings.Contains(err.Error(), "piece at byte 2000") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want the missing piece named", err)
	}
}

func TestUnreadableRawRecordStopsTheRelay(t *testing.T) {
	newer := rawRecords()[0]
	newer.Version = wire.Version + 1
	newerBytes, err := msgpack.Marshal(newer)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"newer format version", newerBytes, "upgrade pgjet"},
		{"not msgpack", []byte("hello"), "--dead-letter-raw 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.publishRaw(rawRecords()[1])
			e.publishBytes("pgjet.raw.test", tt.data)
			run := e.start(nil)
			err := run.wait(t)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "raw record 2") {
				t.Fatalf("Run = %v, want an error naming raw record 2 and %q", err, tt.want)
			}
			if ci := e.consumer(); ci.AckFloor.Stream != 1 {
				t.Errorf("ack floor %d, want 1: the unreadable record must stay unacknowledged", ci.AckFloor.Stream)
			}
			if got := len(e.outputs()); got != 2 {
				t.Errorf("%d events, want the 2 of the first record", got)
			}

			// Told to, the relay sends the record's bytes to the dead-letter
			// subject and goes on.
			e.publishRaw(rawRecords()[2])
			e.startConfig(Config{Stream: outStream, DeadLetterRaw: SeqRanges{{2, 2}}})
			e.waitAckFloor(3)
			got := e.outputs()
			if len(got) != 4 || got[2].Subject != "postgres._deadletter" || got[2].Header.Get(jetstream.MsgIDHeader) != "raw-record.PGJET_RAW:2:dlq" {
				t.Fatalf("outputs %d, the third on %s: want the record's dead letter between the others' events", len(got), got[2].Subject)
			}
			var d struct {
				RawSeq     uint64 `json:"raw_seq"`
				RawSubject string `json:"raw_subject"`
				Raw        []byte `json:"raw"`
				Error      string `json:"error"`
			}
			if err := json.Unmarshal(got[2].Data, &d); err != nil || d.RawSeq != 2 || d.RawSubject != "pgjet.raw.test" || !bytes.Equal(d.Raw, tt.data) || d.Error == "" {
				t.Errorf("dead letter %s (%v): want the record's sequence, subject, bytes and error", got[2].Data, err)
			}
			e.waitLog("sent with its bytes to the dead-letter subject, as --dead-letter-raw says")
		})
	}
}

// An operator who deletes an undecodable record the relay stopped at gets
// a gap that says the record was deleted, and goes past it only by naming
// it, also after restarts.
func TestDeletedUndecodableRecordIsANamedGap(t *testing.T) {
	e := newEnv(t)
	e.publishRaw(rawRecords()[0])
	e.publishBytes("pgjet.raw.test", []byte("not a raw record"))
	e.publishRaw(rawRecords()[1:]...)
	var undecodable *UndecodableError
	if err := e.start(nil).wait(t); !errors.As(err, &undecodable) || undecodable.Seq != 2 {
		t.Fatalf("Run = %v, want raw record 2 undecodable", err)
	}
	s, err := e.js.Stream(context.Background(), rawStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var gap *GapError
		err := e.start(nil).wait(t)
		if !errors.As(err, &gap) || gap.Range() != "2" || !gap.Deleted || !strings.Contains(err.Error(), "were deleted from the stream") ||
			!strings.Contains(err.Error(), "--accept-gap 2") {
			t.Fatalf("Run = %v, want record 2 named as deleted, with --accept-gap 2", err)
		}
	}
	e.startConfig(Config{Stream: outStream, AcceptGaps: SeqRanges{{2, 2}}})
	e.waitAckFloor(4)
	checkOutputs(t, e.outputs(), wantEvents)
	if md := e.consumer().Config.Metadata; md[StoppedAtKey] != "" {
		t.Errorf("consumer metadata %v: the hole is passed, want it forgotten", md)
	}
}

// A copy of old raw records published again (after the output's duplicate
// window, which cannot catch it) is not relayed again: its transactions lie
// before what the relay relayed of their source. Skipped, warned about,
// counted.
func TestCopiesOfOldRecordsAreNotRelayedAgain(t *testing.T) {
	e := newEnv(t)
	if _, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Duplicates: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	run := e.start(nil)
	e.waitAckFloor(3)
	time.Sleep(1500 * time.Millisecond) // past the duplicate window
	e.publishRaw(rawRecords()[0])
	e.waitAckFloor(4)
	checkOutputs(t, e.outputs(), wantEvents)
	if st := run.r.Stats(); st.Backwards != 2 || st.Duplicates != 0 {
		t.Errorf("stats %+v: want the copy's 2 transactions skipped, nothing republished", st)
	}
	e.waitLog("raw record holds transactions at or before what this route relayed of their source already")
}

func TestWaitsForTheRawStream(t *testing.T) {
	_, _, js := natstest.Start(t)
	e := &env{t: t, js: js, logs: &syncBuffer{}}
	run := e.start(nil)
	e.waitLog("raw stream PGJET_RAW does not exist yet, waiting for pgjet-collector to create it")
	select {
	case err := <-run.done:
		t.Fatalf("Run returned %v without a raw stream; want it to wait", err)
	default:
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: rawStream, Subjects: []string{"pgjet.raw.>"}}); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	checkOutputs(t, e.waitOutputs(len(wantEvents)), wantEvents)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{RawStream: rawStream, Durable: durable, Stream: outStream, Prefix: "postgres"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"multi-token prefix", func(c *Config) { c.Prefix = "acme.cdc" }, ""},
		{"prefix with wildcard", func(c *Config) { c.Prefix = "a.*" }, "prefix"},
		{"prefix overlapping raw", func(c *Config) { c.Prefix = "pgjet" }, "pgjet.raw"},
		{"prefix inside raw", func(c *Config) { c.Prefix = "pgjet.raw.x" }, "pgjet.raw"},
		{"stream with dot", func(c *Config) { c.Stream = "A.B" }, "output stream name"},
		{"empty durable", func(c *Config) { c.Durable = "" }, "durable name"},
		{"no output at all", func(c *Config) { c.Stream = "" }, "needs an output stream or stdout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			_, err := New(nil, c)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Check() = %v, want %q", err, tt.want)
			}
		})
	}
}

// logger is a relay's logger in an env: at debug level into e.logs, and
// into the test's log with -v.
func (e *env) logger() *slog.Logger {
	var w io.Writer = e.logs
	if testing.Verbose() {
		w = io.MultiWriter(e.logs, &testWriter{e.t})
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitLog waits for a relay of e to log a line holding s.
func (e *env) waitLog(s string) {
	e.t.Helper()
	waitfor.Condition(e.t, "a relay to log "+strconv.Quote(s), func() bool { return strings.Contains(e.logs.String(), s) })
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// The production case: records expire by the raw stream's max age while the
// router is down.
func TestGapFromMaxAgeExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.UpdateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"pgjet.raw.>"}, Storage: jetstream.FileStorage, MaxAge: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	recs := rawRecords()
	e.publishRaw(recs[0])
	run := e.start(nil)
	e.waitAckFloor(1)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(recs[1], recs[2])
	waitfor.Condition(t, "raw records to expire", func() bool {
		s, err := e.js.Stream(ctx, rawStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	e.publishRaw(recs[0])
	err := e.start(nil).wait(t)
	var gap *GapError
	if !errors.As(err, &gap) || gap.First != 2 || gap.Last != 3 {
		t.Fatalf("Run = %v, want records 2-3 missing", err)
	}
}

// Invariant: a change a stopped collector left half stored in pieces, after
// which its slot was lost and created again (a gap notice follows the
// pieces), is dropped: Postgres will never send its other pieces again.
// The notice and the changes after it go out, every record is
// acknowledged, and the relay goes on instead of stopping on the missing
// piece at every start.
func TestChangeInPiecesCutByAGapIsDropped(t *testing.T) {
	e := newEnv(t)
	p := piecesOf(t, 0x4000, 0, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text(strings.Repeat("x", 5000))}}, 1000)
	notice, err := wire.NoticeTx(wire.Notice{Kind: wire.NoticeGap, Message: "gap", SourceID: srcTest.ID(), FromLSN: "0/4000", ToLSN: "0/9000"}, 0x9000)
	if err != nil {
		t.Fatal(err)
	}
	change := wire.Tx{Xid: 10, CommitLSN: 0x9100, EndLSN: 0x9110, Final: true,
		Changes: []wire.Change{{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3"), text("c")}}}}
	rels := []wire.Relation{users}
	recs := []*wire.Message{
		{Source: srcTest, Relations: rels, Txs: []wire.Tx{p[0], p[1]}},
		{Source: srcTest, Txs: []wire.Tx{notice}},
		{Source: srcTest, Relations: rels, Txs: []wire.Tx{change}},
	}
	e.publishRaw(recs...)
	run := e.start(nil)
	var got []*jetstream.RawStreamMsg
	waitfor.Condition(t, "the gap notice and the insert after it", func() bool {
		select {
		case err := <-run.done:
			run.done <- err // for the cleanup's stop
			t.Fatalf("the relay stopped: %v", err)
		default:
		}
		got = e.outputs()
		return len(got) >= 2
	})
	if got[0].Subject != "postgres._notices.gap" || got[1].Subject != "postgres.public.users.insert" {
		t.Fatalf("outputs on %s, %s: want the gap notice, then the insert after it", got[0].Subject, got[1].Subject)
	}
	e.waitAckFloor(uint64(len(recs)))
	if !strings.Contains(e.logs.String(), "a change in pieces was left incomplete") {
		t.Errorf("no error line for the dropped change:\n%s", e.logs.String())
	}
}
