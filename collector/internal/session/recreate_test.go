package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// recordingProbe remembers what the sessions told it.
type recordingProbe struct {
	mu       sync.Mutex
	notReady string
	streamed int // sessions that reached streaming
	gaps     []Gap
	invalid  string
}

func (p *recordingProbe) NATS(*nats.Conn) {}
func (p *recordingProbe) NotReady(why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notReady = why
}
func (p *recordingProbe) Streaming(*rawstream.Publisher, *replication.Reader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notReady = ""
	p.streamed++
}
func (p *recordingProbe) streaming() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streamed
}
func (p *recordingProbe) Reconnected()              {}
func (p *recordingProbe) Phantoms(*resume.Phantoms) {}
func (p *recordingProbe) SlotInvalidated(reason string, _ uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.invalid = reason
}
func (p *recordingProbe) Gap(g Gap) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gaps = append(p.gaps, g)
}
func (p *recordingProbe) why() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notReady
}

// slotFixture is a Postgres with a table and a JetStream server.
type slotFixture struct {
	pg   *pgtest.Cluster
	conn *pgx.Conn
	srv  interface{ ClientURL() string }
	js   jetstream.JetStream
	// reads are the keys that reads of the last rows call held.
	reads map[string]bool
}

func newSlotFixture(t *testing.T) *slotFixture {
	ctx := context.Background()
	pg := pgtest.Run(t)
	if err := pg.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t)
	srv, _, js := natstest.Start(t)
	return &slotFixture{pg: pg, conn: conn, srv: srv, js: js}
}

func (f *slotFixture) config(pr Probe) Config {
	return Config{
		DSN: f.pg.DSN(""), Slot: "recreated", Publication: "recreated", Tables: []string{"public.t"}, Source: "app",
		NATS: natsconn.Config{URL: f.srv.ClientURL()}, RawStream: wire.DefaultRawStream, RawMaxAge: time.Hour, RawDupes: time.Minute,
		RawReplicas: 1, AckTimeout: 10 * time.Second, MaxQueue: 8 << 20, MaxMessage: 1 << 20, Probe: pr,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// start runs a collector with cfg until the returned stop is called.
func start(cfg Config) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not stop within 30 s")
		}
	}
}

// records reads every raw record of the source.
func (f *slotFixture) records(t *testing.T) []wire.Message {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, wire.DefaultRawStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Message
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var msg wire.Message
		if err := wire.Unmarshal(m.Data, &msg); err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

// rows counts the changes of records, returns their notices and commit
// positions, and notes the keys read (by a backfill) in f.reads.
func (f *slotFixture) rows(t *testing.T, records []wire.Message) (rows int, notices []wire.Notice, order []uint64) {
	t.Helper()
	f.reads = map[string]bool{}
	for _, m := range records {
		for _, tx := range m.Txs {
			order = append(order, tx.CommitLSN)
			for i := range tx.Changes {
				if c := &tx.Changes[i]; wire.IsNotice(c) {
					n, err := wire.ParseNotice(c)
					if err != nil {
						t.Fatal(err)
					}
					notices = append(notices, n)
				} else if c.Op == wire.OpRead {
					f.reads[string(c.New[0].Data)] = true
				} else {
					rows++
				}
			}
		}
	}
	return rows, notices, order
}

func (f *slotFixture) insert(t *testing.T, from, to int) {
	t.Helper()
	if err := f.pg.Exec(context.Background(), `INSERT INTO t SELECT g, 'v' || g FROM generate_series($1::int, $2::int) g`, from, to); err != nil {
		t.Fatal(err)
	}
}

// dropSlot drops the slot once the stopped collector's walsender let go.
func (f *slotFixture) dropSlot(t *testing.T) {
	t.Helper()
	var err error
	waitUntil(t, "the slot dropped", func() bool {
		_, err = f.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot('recreated')`)
		return err == nil
	})
}

// Invariant: a slot dropped while the raw stream holds records of it is
// created again only with --recreate-slot, and then never silently: a gap
// notice naming the range is stored before anything the new slot streams,
// the probe is told, the changes committed while no slot existed are the
// only ones missing, and a backfill of the published tables, requested by
// the collector, reads every row again (those of the gap included).
func TestRecreateDroppedSlotTellsTheGap(t *testing.T) {
	f := newSlotFixture(t)
	pr := &recordingProbe{}
	stop := start(f.config(pr))
	waitUntil(t, "streaming", func() bool { return pr.streaming() == 1 })
	f.insert(t, 1, 10)
	waitUntil(t, "10 rows stored", func() bool { n, _, _ := f.rows(t, f.records(t)); return n == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	f.dropSlot(t)
	f.insert(t, 11, 20) // lost: no slot holds them

	cfg := f.config(pr)
	cfg.RecreateSlot = true
	stop = start(cfg)
	waitUntil(t, "streaming again", func() bool { return pr.streaming() == 2 })
	f.insert(t, 21, 30)
	waitUntil(t, "20 rows stored, and rows 1-20 read by the backfill after the gap", func() bool {
		n, _, _ := f.rows(t, f.records(t))
		for k := 1; k <= 20; k++ {
			if !f.reads[strconv.Itoa(k)] {
				return false
			}
		}
		return n == 20
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rows, notices, order := f.rows(t, f.records(t))
	if rows != 20 || len(notices) != 1 {
		t.Fatalf("%d rows and notices %+v; want the 20 rows committed while a slot existed and one gap notice", rows, notices)
	}
	n := notices[0]
	if n.Kind != wire.NoticeGap || n.FromLSN == "" || n.ToLSN == "" || !strings.Contains(n.Message, "dropped") {
		t.Errorf("notice %+v", n)
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Errorf("raw records out of commit order: %X after %X", order[i], order[i-1])
		}
	}
	if len(pr.gaps) != 1 || pr.gaps[0].Reason != "dropped" || pr.gaps[0].Bytes() == 0 {
		t.Fatalf("probe told of gaps %+v", pr.gaps)
	}
	from, _ := pglogrepl.ParseLSN(n.FromLSN)
	if uint64(from) != pr.gaps[0].From {
		t.Errorf("notice from %s, probe's gap from %X", n.FromLSN, pr.gaps[0].From)
	}

	// Given again, --recreate-slot creates nothing while the slot exists.
	stop = start(cfg)
	waitUntil(t, "streaming a third time", func() bool { return pr.streaming() == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, notices, _ := f.rows(t, f.records(t)); len(notices) != 1 {
		t.Errorf("%d notices after a restart with the slot in place", len(notices))
	}
}

// Invariant: without --recreate-slot, a collector whose slot was dropped
// does not go on; told to wait (WaitWhenStuck, as with --metrics) it stays
// up, not ready, with the reason, and returns the error when stopped.
func TestDroppedSlotWaitsForTheOperator(t *testing.T) {
	f := newSlotFixture(t)
	pr := &recordingProbe{}
	stop := start(f.config(pr))
	waitUntil(t, "streaming", func() bool { return pr.streaming() == 1 })
	f.insert(t, 1, 5)
	waitUntil(t, "5 rows stored", func() bool { n, _, _ := f.rows(t, f.records(t)); return n == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	f.dropSlot(t)

	cfg := f.config(pr)
	cfg.WaitWhenStuck = true
	stop = start(cfg)
	waitUntil(t, "not ready with the reason", func() bool { return strings.Contains(pr.why(), "does not exist") })
	time.Sleep(500 * time.Millisecond) // still up: nothing ends it but the operator
	err := stop()
	var missing *pgsetup.SlotMissingError
	if !errors.As(err, &missing) {
		t.Fatalf("Run returned %v, want the missing slot", err)
	}
	var n int
	if err := f.conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'recreated'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("slot recreated (%d, %v)", n, err)
	}
}

// A gap notice is told once: an attempt that stored it and stopped before
// the slot was created again is recognized on restart (the same invalidated
// slot), a notice of an earlier re-creation is not taken for this one.
func TestToldAlready(t *testing.T) {
	notice := func(from, to uint64) *wire.Message {
		tx, err := wire.NoticeTx(wire.Notice{Kind: wire.NoticeGap, FromLSN: pglogrepl.LSN(from).String(), ToLSN: pglogrepl.LSN(to).String()}, to)
		if err != nil {
			t.Fatal(err)
		}
		return &wire.Message{Txs: []wire.Tx{tx}}
	}
	invalid := pgsetup.SlotState{Exists: true, Invalidation: "wal_removed", ConfirmedFlush: 0x1000}
	for _, tc := range []struct {
		name string
		st   pgsetup.SlotState
		last *wire.Message
		want bool
	}{
		{"this invalidation, told", invalid, notice(0x1000, 0x5000), true},
		{"an earlier re-creation's notice, the new slot invalidated since", pgsetup.SlotState{Exists: true, Invalidation: "wal_removed", ConfirmedFlush: 0x6000}, notice(0x1000, 0x5000), false},
		{"the slot dropped since", pgsetup.SlotState{}, notice(0x1000, 0x5000), false},
		{"a row change last", invalid, &wire.Message{Txs: []wire.Tx{{CommitLSN: 0x900, Final: true, Changes: []wire.Change{{Op: wire.OpInsert}}}}}, false},
		{"nothing stored", invalid, nil, false},
	} {
		if _, got := toldAlready(tc.st, tc.last); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
