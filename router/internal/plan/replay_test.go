package plan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/wire"
)

// A replay into a purged stream stores every event again: the purge makes
// the server forget the ids of the duplicate window, checked by asking it,
// and the stream keeps its window.
func TestPurgeForgetsDuplicateIDs(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	publish := func() (stored int) {
		for i := range 5 {
			ack, err := js.Publish(ctx, "out.x", []byte("e"), jetstream.WithMsgID(fmt.Sprintf("id-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			if !ack.Duplicate {
				stored++
			}
		}
		return stored
	}
	if n := publish(); n != 5 {
		t.Fatalf("stored %d of 5", n)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := prepareOutput(ctx, js, "OUT", false, log)
	if err == nil || !strings.Contains(err.Error(), "output stream OUT holds 5 messages") {
		t.Fatalf("without --purge: %v", err)
	}
	for round := range 3 {
		if err := prepareOutput(ctx, js, "OUT", true, log); err != nil {
			t.Fatal(err)
		}
		if n := publish(); n != 5 {
			t.Fatalf("round %d: after the purge, %d of 5 events stored again, the others taken for duplicates", round, n)
		}
	}
	s, err := js.Stream(ctx, "OUT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != 2*time.Minute || info.State.Msgs != 5 {
		t.Errorf("after the purges: duplicate window %s, %d messages; want 2m0s and 5", info.Config.Duplicates, info.State.Msgs)
	}
}

// A replay from a raw record that continues a change stored in pieces would
// leave that change out (the relay renders it from its first piece): the
// start is refused, naming the way to include it; a start at the first
// piece, or by the transaction's LSN, is taken.
func TestReplayFromInsidePiecesIsRefused(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{wire.RawFilter}})
	if err != nil {
		t.Fatal(err)
	}
	src := wire.Source{Name: "app", SystemID: 7300000000000000001, Timeline: 1}
	rel := wire.Relation{ID: 1, Schema: "public", Table: "t", Columns: []wire.Column{{Name: "v", TypeOID: 25}}}
	c := wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{{Kind: wire.KindText, Data: []byte(strings.Repeat("x", 3000))}}}
	enc, err := wire.EncodeChange(&c, wire.Version)
	if err != nil {
		t.Fatal(err)
	}
	piece := func(off, end int) wire.Tx {
		return wire.Tx{Xid: 9, CommitLSN: 0x4000, Fragment: uint32(1 + off), FirstChange: 1,
			PieceOffset: uint64(off), PieceTotal: uint64(len(enc)), Changes: []wire.Change{{Op: c.Op, Rel: c.Rel, Content: enc[off:end]}}}
	}
	half := len(enc) / 2
	for _, m := range []*wire.Message{
		{Source: src, Relations: []wire.Relation{rel}, Txs: []wire.Tx{{Xid: 8, CommitLSN: 0x3000, EndLSN: 0x3010, Final: true, Changes: []wire.Change{{Op: wire.OpInsert, Rel: 0, New: []wire.Value{{Kind: wire.KindText, Data: []byte("a")}}}}}}},
		{Source: src, Relations: []wire.Relation{rel}, Txs: []wire.Tx{piece(0, half)}},
		{Source: src, Relations: []wire.Relation{rel}, Txs: []wire.Tx{piece(half, len(enc))}},
	} {
		data, err := wire.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, wire.RawSubject("app"), data); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		from    Point
		problem string
	}{
		{Point{Seq: 1}, ""},
		{Point{Seq: 2}, ""},
		{Point{Seq: 3}, "--from-seq 3 lands inside a change stored in pieces (change 1 of the transaction at 0/4000, source app): a replay from there would leave that change out; start at the record of its first piece, or give --from-lsn 0/4000"},
		{Point{LSN: 0x4000}, ""},
	} {
		b, err := resolve(ctx, raw, ReplayRequest{From: tt.from})
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("from %+v: %v", tt.from, err)
		case tt.problem != "" && (err == nil || err.Error() != tt.problem):
			t.Errorf("from %+v: %v, want %q", tt.from, err, tt.problem)
		case tt.from.LSN != 0 && b.FromSeq > 2:
			t.Errorf("from %+v starts at raw seq %d, after the first piece (2)", tt.from, b.FromSeq)
		}
	}
}
