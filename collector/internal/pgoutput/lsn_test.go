package pgoutput

import (
	"context"
	"slices"
	"testing"

	"github.com/pgjet/pgjet/shared/wire"
)

// at is a message with the WAL start its XLogData gives it.
type at struct {
	walStart uint64
	m        msg
}

func feedAt(t *testing.T, d *Decoder, msgs ...at) {
	t.Helper()
	for i, m := range msgs {
		if err := d.Handle(context.Background(), m.walStart, m.m); err != nil {
			t.Fatalf("message %d (%q): %v", i, m.m[0], err)
		}
	}
}

// Each change carries its own LSN, the WAL start of its message, which
// Debezium puts in source.lsn (PostgresStreamingChangeEventSource:
// lsn = stream.lastReceivedLsn() for every message), and each transaction
// the end of the commit before it, which Debezium's source.sequence starts
// with (updateCommitPosition on each COMMIT, whose WAL start is the commit's
// end LSN; PostgresConnectorIT.shouldHaveLastCommitLsn: the events of a
// transaction share it). Commits that leave no record count too, and a
// non-transactional message is its own commit (Debezium's commitMessage for
// a message that is the last event at its LSN).
func TestChangeLSNs(t *testing.T) {
	var s sink
	d := New(s.emit, nil, 1<<20)
	feedAt(t, d,
		at{0x0f00, relation(1, "public", "t", "id")},
		at{0x1000, begin(0x1100, 7, pgEpoch)},
		at{0x1008, insert(1, "1")},
		at{0x1040, update(1, nil, "2")},
		at{0x1080, truncate(0, 1)},
		at{0x10c0, message(true, 0x10c0, "p", "c")},
		at{0x1118, commit(0x1100, 0x1118)},
		at{0x1200, begin(0x1300, 8, pgEpoch)}, // all filtered out: no record
		at{0x1318, commit(0x1300, 0x1318)},
		at{0x1400, message(false, 0x1400, "audit", "loose")},
		at{0x1500, begin(0x1600, 9, pgEpoch)},
		at{0x1508, del(1, "2")},
		at{0x1618, commit(0x1600, 0x1618)},
	)
	if len(s.frags) != 3 {
		t.Fatalf("%d fragments, want 3", len(s.frags))
	}
	var lsns []uint64
	for _, c := range s.frags[0].Tx.Changes {
		lsns = append(lsns, c.LSN)
	}
	if want := []uint64{0x1008, 0x1040, 0x1080, 0x10c0}; !slices.Equal(lsns, want) {
		t.Errorf("change LSNs %x, want %x", lsns, want)
	}
	for i, want := range []struct{ prev, lsn uint64 }{
		{0, 0x1008},      // the first transaction of a source follows nothing known
		{0x1318, 0x1400}, // the message follows the empty transaction's commit
		{0x1400, 0x1508}, // and the next transaction follows the message
	} {
		tx := s.frags[i].Tx
		if tx.PrevCommitLSN != want.prev || tx.Changes[0].LSN != want.lsn {
			t.Errorf("record %d: previous commit %x, first change at %x; want %x, %x", i, tx.PrevCommitLSN, tx.Changes[0].LSN, want.prev, want.lsn)
		}
	}
}

// A restarted collector takes what the next transaction follows from the
// last stored record (Position.LastCommit), as Debezium keeps its
// lastCommitLsn in its offsets; every fragment of a transaction carries it,
// also one resumed in the middle.
func TestPrevCommitAfterRestart(t *testing.T) {
	input := []at{
		{0x0f00, relation(1, "public", "t", "id", "pad")},
		{0x1000, begin(0x1100, 7, pgEpoch)}, {0x1008, insert(1, "1", "x")}, {0x1118, commit(0x1100, 0x1118)},
		{0x1200, begin(0x1300, 8, pgEpoch)}, {0x1208, insert(1, "2", string(make([]byte, 3000)))}, {0x1240, insert(1, "3", string(make([]byte, 3000)))},
		{0x1318, commit(0x1300, 0x1318)},
	}
	run := func(skip *wire.Position) []*Fragment {
		var s sink
		d := New(s.emit, nil, 4096)
		if skip != nil {
			d.SkipThrough(*skip)
		}
		feedAt(t, d, input...)
		return s.frags
	}
	all := run(nil)
	if len(all) != 3 || all[1].Tx.PrevCommitLSN != 0x1118 || all[2].Tx.PrevCommitLSN != 0x1118 {
		t.Fatalf("fragments %d; the second transaction's follow %x, %x, want 0x1118", len(all), all[1].Tx.PrevCommitLSN, all[len(all)-1].Tx.PrevCommitLSN)
	}
	// Stored through the first transaction, whose record says where the
	// next one follows. Postgres resends from the slot's position, here the
	// first transaction again, skipped.
	m := wire.Message{Version: wire.Version, Txs: []wire.Tx{all[0].Tx}}
	p, _ := m.Last()
	again := run(&p)
	if len(again) != 2 || again[0].Tx.CommitLSN != 0x1300 || again[0].Tx.PrevCommitLSN != 0x1118 {
		t.Fatalf("after a restart: %d fragments, first %+v", len(again), again[0].Tx)
	}
	// Stored through the first fragment of the second transaction: the
	// resumed fragment carries the same as the stored one.
	m = wire.Message{Version: wire.Version, Txs: []wire.Tx{all[1].Tx}}
	p, _ = m.Last()
	rest := run(&p)
	if len(rest) != 1 || rest[0].Tx.Fragment != 1 || rest[0].Tx.PrevCommitLSN != 0x1118 {
		t.Fatalf("resumed mid-transaction: %d fragments, first %+v", len(rest), rest[0].Tx)
	}
}
