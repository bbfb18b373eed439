package session

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// The session runs in-process against a real Postgres and a real JetStream
// server: committed changes reach the raw stream as records of the source,
// the slot is confirmed past them once stored, and cancelling the context
// stops it cleanly.
func TestSessionStreamsCommittedChanges(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	if err := pg.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t)
	srv := natstest.Run(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Config{
			DSN: pg.DSN(""), Slot: "insession", Publication: "insession", Tables: []string{"public.t"}, Source: "app",
			NATS: natsconn.Config{URL: srv.ClientURL()}, RawStream: wire.DefaultRawStream, RawMaxAge: time.Hour, RawDupes: time.Minute,
			RawReplicas: 1, AckTimeout: 10 * time.Second, MaxQueue: 8 << 20, MaxMessage: 1 << 20,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Streaming once the slot exists.
	waitUntil(t, "the slot", func() bool {
		var n int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'insession'`).Scan(&n)
		return n == 1
	})
	if err := pg.Exec(ctx, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	var changes int
	waitUntil(t, "100 changes in the raw stream", func() bool {
		s, err := js.Stream(ctx, wire.DefaultRawStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return false
		}
		changes = 0
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				return false
			}
			var msg wire.Message
			if err := wire.Unmarshal(m.Data, &msg); err != nil || msg.Source.Name != "app" || m.Subject != wire.RawSubject("app") {
				t.Fatalf("raw record %d on %s: %v", seq, m.Subject, err)
			}
			for _, tx := range msg.Txs {
				changes += len(tx.Changes)
			}
		}
		return changes == 100
	})
	waitUntil(t, "the slot confirmed past the insert", func() bool {
		var past bool
		_ = conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots WHERE slot_name = 'insession'`).Scan(&past)
		return past
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop within 30 s of cancel")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
