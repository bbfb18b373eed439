package relay

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

// With transaction and relation events, each transaction's events are
// bracketed by a begin and a commit event counting them, and a relation
// event precedes the route's first event of every table of every source,
// all in commit order with deterministic ids; a second run over the same
// records stores nothing twice.
func TestTransactionAndRelationEvents(t *testing.T) {
	e := newEnv(t)
	rt, err := route.New(route.Config{Prefix: "postgres", Transactions: true, Relations: true})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	run := e.startConfig(Config{Stream: outStream, Route: rt})
	const test, other = "test.7300000000000000001.1", "other.42.3"
	want := []wantEvent{
		{"postgres.transactions.begin.event", test + ":1000:begin"},
		{"postgres.public.users.relation", test + ":1000:0:rel"},
		wantEvents[0], wantEvents[1], wantEvents[2],
		{"postgres.transactions.commit.event", test + ":1000:commit"},
		{"postgres.transactions.begin.event", test + ":2000:begin"},
		wantEvents[3],
		{"postgres.public.orders.relation", test + ":2000:0.1:rel"},
		wantEvents[4], wantEvents[5],
		{"postgres.transactions.commit.event", test + ":2000:commit"},
		// A later fragment whose start is not in the stream: counted alone.
		{"postgres.transactions.begin.event", test + ":3000:begin"},
		wantEvents[6],
		{"postgres.we%2Eird.my%20%3Etable%2A.relation", test + ":3000:6:rel"},
		wantEvents[7],
		{"postgres.transactions.commit.event", test + ":3000:commit"},
		{"postgres.transactions.begin.event", other + ":500000100:begin"},
		{"postgres.public.orders.relation", other + ":500000100:0:rel"},
		wantEvents[8],
		{"postgres.transactions.commit.event", other + ":500000100:commit"},
	}
	e.waitAckFloor(3)
	got := e.outputs()
	checkOutputs(t, got, want)
	var commit struct {
		Op     string `json:"op"`
		Events int    `json:"events"`
		Tables []struct {
			Schema, Table string
			Events        int
		} `json:"tables"`
	}
	if err := json.Unmarshal(got[5].Data, &commit); err != nil || commit.Op != "commit" || commit.Events != 3 ||
		len(commit.Tables) != 1 || commit.Tables[0].Table != "users" || commit.Tables[0].Events != 3 {
		t.Errorf("commit event %s", got[5].Data)
	}
	if err := json.Unmarshal(got[11].Data, &commit); err != nil || commit.Events != 3 || len(commit.Tables) != 2 {
		t.Errorf("commit of a truncate of two tables and a message: %s", got[11].Data)
	}
	var rel struct {
		Op, Schema, Table, ReplicaIdentity string
		Columns                            []struct {
			Name, Type string
			Key        bool
		}
	}
	if err := json.Unmarshal(got[1].Data, &rel); err != nil || rel.Op != "relation" || rel.Table != "users" ||
		len(rel.Columns) != 2 || rel.Columns[0].Type != "int4" || !rel.Columns[0].Key || rel.Columns[1].Type != "text" {
		t.Errorf("relation event %s", got[1].Data)
	}

	// Everything again from the start: the output holds each event once.
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(context.Background(), rawStream, durable); err != nil {
		t.Fatal(err)
	}
	e.startConfig(Config{Stream: outStream, Route: rt})
	e.waitAckFloor(3)
	checkOutputs(t, e.outputs(), want)
}

// A relay that starts in the middle of a transaction (its first fragment
// acknowledged before) counts the earlier fragments from the raw stream:
// the commit event says the same as if it had seen them.
func TestCommitCountsEarlierFragments(t *testing.T) {
	e := newEnv(t)
	rt, err := route.New(route.Config{Prefix: "postgres", Transactions: true})
	if err != nil {
		t.Fatal(err)
	}
	first := &wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{
		{Xid: 800, CommitLSN: 0x9000, Fragment: 0, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("1"), text("a")}},
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("2"), text("b")}},
		}},
	}}
	last := &wire.Message{Source: srcTest, Relations: []wire.Relation{orders}, Txs: []wire.Tx{
		{Xid: 800, CommitLSN: 0x9000, Fragment: 1, Final: true, FirstChange: 2, Changes: []wire.Change{
			{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text("3")}},
		}},
	}}
	e.publishRaw(first)
	// The first fragment was handled by an earlier router.
	ctx := context.Background()
	cons, err := e.js.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: durable, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: wire.RawFilter,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	e.publishRaw(last)
	e.startConfig(Config{Stream: outStream, Route: rt})
	e.waitAckFloor(2)
	got := e.outputs()
	checkOutputs(t, got, []wantEvent{
		{"postgres.public.orders.insert", "test.7300000000000000001.1:9000:2"},
		{"postgres.transactions.commit.event", "test.7300000000000000001.1:9000:commit"},
	})
	var commit struct {
		Events int `json:"events"`
		Tables []struct {
			Table  string
			Events int
		} `json:"tables"`
	}
	if err := json.Unmarshal(got[1].Data, &commit); err != nil || commit.Events != 3 || len(commit.Tables) != 2 ||
		commit.Tables[0].Table != "users" || commit.Tables[0].Events != 2 || commit.Tables[1].Events != 1 {
		t.Errorf("commit event %s, want 3 events: 2 of users, 1 of orders", got[1].Data)
	}
}
