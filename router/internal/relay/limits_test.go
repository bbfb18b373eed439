package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/shared/wire"
)

// An output stream an operator created with a max_msg_size below the
// server's max_payload refuses an event the relay rendered for the
// server's limit, while it stores the events around it. Republishing it
// can never succeed, and once the retries pass half the duplicate window
// the relay resyncs, where the stored event after it is the resume point:
// the refused event must not vanish there. It is a dead letter, like an
// event over max_payload, and every other event is stored once.
func TestEventOverTheStreamsMaxMsgSizeGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage,
		MaxMsgSize: 1024, Duplicates: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x2000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("small")}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text(strings.Repeat("x", 2000))}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3"), text("small")}},
		}}},
	})
	run := e.start(nil)
	e.waitAckFloor(1)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	got := e.outputs()
	checkOutputs(t, got, []wantEvent{
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:0"},
		{"postgres._deadletter", "test.7300000000000000001.1:2000:1:dlq"},
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:2"},
	})
	if doc := string(got[1].Data); !strings.Contains(doc, "1024") || !strings.Contains(doc, `"values_omitted":true`) {
		t.Errorf("dead letter: %.500s", doc)
	}
}

// storeAsKilledRouter stores messages with the given subjects and ids, as
// a router killed before acknowledging their raw records left them.
func (e *env) storeAsKilledRouter(want []wantEvent) {
	e.t.Helper()
	for _, w := range want {
		m := nats.NewMsg(w.subject)
		m.Header.Set(jetstream.MsgIDHeader, w.id)
		m.Header.Set(jetstream.ExpectedStreamHeader, outStream)
		m.Data = []byte(`{}`)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			e.t.Fatal(err)
		}
	}
}

// A router killed after storing the events of a record and the dead letter
// of the undecodable record after it (--dead-letter-raw), before
// acknowledging either, restarted after the output's duplicate window: the
// resume point still comes from the stored events, although the stream's
// last message, the raw record's dead letter, names no source. Nothing is
// stored twice, the dead letter neither.
func TestResumePointBehindARawDeadLetter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage, Duplicates: 200 * time.Millisecond,
	}); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()[0])
	e.publishBytes("pgjet.raw.test", []byte("not a raw record"))
	want := append(wantEvents[:eventsPerRecord[0]:eventsPerRecord[0]], wantEvent{"postgres._deadletter", render.RawDeadLetterID(rawStream, 2)})
	e.storeAsKilledRouter(want)
	time.Sleep(500 * time.Millisecond) // past the duplicate window: time passing is the point
	run := e.startConfig(Config{Stream: outStream, DeadLetterRaw: SeqRanges{{2, 2}}})
	e.waitAckFloor(2)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	got := e.outputs()
	if len(got) != len(want) {
		for _, m := range got {
			t.Logf("got %s %s", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
		}
		t.Fatalf("output holds %d messages, want the %d stored before, none twice", len(got), len(want))
	}
	if st := run.r.Stats(); st.Skipped != uint64(len(want)) || st.RawDeadLetters != 0 {
		t.Errorf("stats %+v: want the %d stored events skipped by position and the stored dead letter by its raw record", st, eventsPerRecord[0])
	}
}

// Invariant: an event the output refused while storing the events after it
// is never skipped as stored. The stream here takes one message per
// subject and refuses the next (an operator's limit, as full as a stream
// with max_bytes and discard new gets): the second insert is refused, the
// update after it stored. The republish fails past half the duplicate
// window, the relay resyncs and reads the update as its source's resume
// point; the refused insert must still come once the stream takes it.
func TestRefusedEventBeforeAStoredOneIsNotSkipped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := jetstream.StreamConfig{
		Name: outStream, Subjects: []string{"postgres.>"}, Storage: jetstream.FileStorage, Duplicates: time.Second,
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
	}
	if _, err := e.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x2000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("a")}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text("b")}},
			{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("1"), text("c")}},
		}}},
	})
	run := e.start(nil)
	e.waitLog("re-reading the raw stream from the consumer's ack floor")
	cfg.MaxMsgsPerSubject = 10
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.waitAckFloor(1)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, e.outputs(), []wantEvent{
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:0"},
		{"postgres.public.users.update", "test.7300000000000000001.1:2000:2"},
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:1"},
	})
}

// leftByKilledRouter creates the output stream with cfg (its name,
// subjects, storage and a short duplicate window filled in), publishes a
// raw record of an insert and two updates of one row, stores their three
// events as a router killed before acknowledging the record would have,
// and waits past the duplicate window: the restart must go by position.
func (e *env) leftByKilledRouter(cfg jetstream.StreamConfig) (jetstream.Stream, []wantEvent) {
	e.t.Helper()
	cfg.Name, cfg.Subjects, cfg.Storage, cfg.Duplicates = outStream, []string{"postgres.>"}, jetstream.FileStorage, 200*time.Millisecond
	s, err := e.js.CreateStream(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publishRaw(&wire.Message{
		Source:    srcTest,
		Relations: []wire.Relation{users},
		Txs: []wire.Tx{{Xid: 5, CommitLSN: 0x2000, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("a")}},
			{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("1"), text("b")}},
			{Op: wire.OpUpdate, Rel: 0, New: []wire.Value{text("1"), text("c")}},
		}}},
	})
	stored := []wantEvent{
		{"postgres.public.users.insert", "test.7300000000000000001.1:2000:0"},
		{"postgres.public.users.update", "test.7300000000000000001.1:2000:1"},
		{"postgres.public.users.update", "test.7300000000000000001.1:2000:2"},
	}
	e.storeAsKilledRouter(stored)
	time.Sleep(500 * time.Millisecond) // past the duplicate window: time passing is the point
	return s, stored
}

// restartAfterKill starts the relay on what leftByKilledRouter left, waits
// until the record is acknowledged, stops it, and checks the output holds
// want, the three events having been skipped as stored.
func (e *env) restartAfterKill(want []wantEvent) {
	e.t.Helper()
	run := e.startConfig(Config{Stream: outStream})
	e.waitAckFloor(1)
	if err := run.stop(e.t); err != nil {
		e.t.Fatal(err)
	}
	checkOutputs(e.t, e.outputs(), want)
	if st := run.r.Stats(); st.Skipped != 3 {
		e.t.Errorf("stats %+v: want the 3 events of the record skipped as stored", st)
	}
}

// Invariant: an event the output stored and then deleted is not published
// again after a restart, out of its order. The stream keeps one message per
// subject (a last-value stream, discard old): of two updates of a row the
// first is deleted when the second is stored. A router killed before
// acknowledging the record, restarted past the duplicate window, finds the
// first update missing between stored events; it must not take it for one
// the stream refused and republish it over the newer one.
func TestDeletedEventIsNotPublishedAgain(t *testing.T) {
	e := newEnv(t)
	_, stored := e.leftByKilledRouter(jetstream.StreamConfig{MaxMsgsPerSubject: 1})
	e.restartAfterKill([]wantEvent{stored[0], stored[2]})
}

// Invariant: an event the output stored and deleted is not published again
// even when the stream's head moves past the deletion while the router
// reads its last events (max_age expiry, a work-queue consumer's ack, an
// operator): the deleted sequence is no longer listed as deleted then,
// although the router read a message before it. Here a last-value stream
// (one message per subject, discard old) deleted the first of two updates
// of a row, and the insert before them goes just after the read; the first
// update must not come again over the second, the row's last value.
func TestDeletionSwallowedByTheHeadIsNotARefusal(t *testing.T) {
	e := newEnv(t)
	s, stored := e.leftByKilledRouter(jetstream.StreamConfig{MaxMsgsPerSubject: 1})
	afterResumeRead = func() {
		afterResumeRead = nil
		if err := s.DeleteMsg(context.Background(), 1); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterResumeRead = nil })
	e.restartAfterKill([]wantEvent{stored[2]})
}

// A last message that goes while the router reads the window up to it (a
// work-queue or interest consumer acknowledging it, an expiry) neither
// stalls the start (the read waited for it until the publish timeout, and
// a first start failed) nor is published again: it was seen stored.
func TestLastMessageGoneDuringTheResumeRead(t *testing.T) {
	e := newEnv(t)
	s, stored := e.leftByKilledRouter(jetstream.StreamConfig{})
	beforeResumeRead = func() {
		beforeResumeRead = nil
		if err := s.DeleteMsg(context.Background(), 3); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { beforeResumeRead = nil })
	e.restartAfterKill(stored[:2])
}
