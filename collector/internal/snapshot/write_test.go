package snapshot

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/wire"
)

var testRel = &wire.Relation{ID: 1, Schema: "public", Table: "t", Columns: []wire.Column{{Name: "id", Key: true}, {Name: "v"}}}

func row(id, v string) []wire.Value {
	return []wire.Value{{Kind: wire.KindText, Data: []byte(id)}, {Kind: wire.KindText, Data: []byte(v)}}
}

// collect is an Emitter keeping the fragments and running their Stored
// callbacks, as the publisher does once they are acknowledged.
type collect struct{ frags []*pgoutput.Fragment }

func (c *collect) emit(_ context.Context, f *pgoutput.Fragment) error {
	c.frags = append(c.frags, f)
	return nil
}

func (c *collect) store() {
	for _, f := range c.frags {
		if f.Stored != nil {
			f.Stored()
			f.Stored = nil
		}
	}
}

// A transaction of reads: fragments under the size bound, consecutive
// indexes and fragment numbers, marks on the first and last change, Final
// on the last fragment, stored once after the last one; a row too large
// for a fragment travels in pieces with its marks.
func TestTxWriter(t *testing.T) {
	var c collect
	w := NewTxWriter(c.emit, 1200, 0x1007, 0, wire.Snapshot{Kind: wire.SnapshotInitial, ID: "initial"})
	var rows [][]wire.Value
	for i := range 20 {
		rows = append(rows, row(strings.Repeat("1", i+1), "value"))
	}
	stored := 0
	if err := w.Write(context.Background(), testRel, rows, time.Now(), wire.SnapshotFirst, wire.SnapshotLastInTable, false, func() { stored++ }); err != nil {
		t.Fatal(err)
	}
	big := row("big", strings.Repeat("x", 5000))
	if err := w.Write(context.Background(), testRel, [][]wire.Value{big}, time.Now(), wire.SnapshotFirstInTable, wire.SnapshotLast, true, func() { stored++ }); err != nil {
		t.Fatal(err)
	}
	if len(c.frags) < 4 {
		t.Fatalf("%d fragments: the rows should not fit in one", len(c.frags))
	}
	var next uint64
	for i, f := range c.frags {
		tx := &f.Tx
		if tx.CommitLSN != 0x1007 || tx.Fragment != uint32(i) || tx.Snapshot == nil || tx.EndLSN != 0 {
			t.Fatalf("fragment %d: %+v", i, tx)
		}
		if !tx.IsPiece() {
			if f.Size > 1200 {
				t.Errorf("fragment %d is %d bytes, bound 1200", i, f.Size)
			}
			if tx.FirstChange != next {
				t.Fatalf("fragment %d starts at %d, want %d", i, tx.FirstChange, next)
			}
			next += uint64(len(tx.Changes))
		}
		wantFinal := i == len(c.frags)-1
		if tx.Final != wantFinal {
			t.Errorf("fragment %d Final %v", i, tx.Final)
		}
	}
	if first := c.frags[0].Tx.Snapshot.Marks; first != wire.SnapshotFirst {
		t.Errorf("first fragment marks %04b", first)
	}
	var pieces []*pgoutput.Fragment
	for _, f := range c.frags {
		if f.Tx.IsPiece() {
			pieces = append(pieces, f)
		} else if f != c.frags[0] && f.Tx.Snapshot.Marks&wire.SnapshotFirst != 0 {
			t.Error("first mark on a later fragment")
		}
	}
	if len(pieces) < 2 || pieces[0].Tx.FirstChange != 20 || pieces[0].Tx.Snapshot.Marks != wire.SnapshotFirstInTable|wire.SnapshotLast {
		t.Fatalf("the large row: %d pieces, first %+v", len(pieces), pieces[0].Tx)
	}
	if w.Written != 21 {
		t.Errorf("written %d", w.Written)
	}
	if stored != 0 {
		t.Fatal("stored before the publisher acknowledged")
	}
	c.store()
	if stored != 2 {
		t.Fatalf("stored called %d times, want once per Write", stored)
	}
}

// The sequencer marks rows as Debezium does across tables read in
// parallel: the snapshot's first row, each table's first and last, the
// snapshot's last (held until every table ended), and records progress as
// the rows are stored.
func TestSequencerMarks(t *testing.T) {
	var c collect
	seq, p, ta, tb, tc := threeTables(&c)
	ctx := context.Background()
	now := time.Now()
	steps := []struct {
		chunk *Chunk
		first bool
	}{
		{&Chunk{Table: ta, Rows: [][]wire.Value{row("1", "a"), row("2", "a")}, More: true}, true},
		{&Chunk{Table: tb, Rows: [][]wire.Value{row("1", "b")}}, true},
		{&Chunk{Table: tc}, true}, // empty
		{&Chunk{Table: ta, Rows: [][]wire.Value{row("3", "a"), row("4", "a")}}, false},
	}
	for _, s := range steps {
		if err := seq.write(ctx, s.chunk, s.first, now); err != nil {
			t.Fatal(err)
		}
	}
	type read struct {
		table, id string
		marks     uint8
	}
	var got []read
	final := false
	for _, f := range c.frags {
		for i, ch := range f.Tx.Changes {
			var m uint8
			if i == 0 {
				m |= f.Tx.Snapshot.Marks & (wire.SnapshotFirst | wire.SnapshotFirstInTable)
			}
			if i == len(f.Tx.Changes)-1 {
				m |= f.Tx.Snapshot.Marks & (wire.SnapshotLast | wire.SnapshotLastInTable)
			}
			got = append(got, read{f.Rels[ch.Rel].Table, string(ch.New[1].Data) + string(ch.New[0].Data), m})
		}
		final = f.Tx.Final
	}
	F, FT, LT, L := wire.SnapshotFirst, wire.SnapshotFirstInTable, wire.SnapshotLastInTable, wire.SnapshotLast
	// b1 is held until a later table's row comes (a's last chunk): an
	// empty table (c) does not tell whether it is the snapshot's last.
	want := []read{{"t", "a1", F | FT}, {"t", "a2", 0}, {"t", "a3", 0}, {"t", "b1", FT | LT}, {"t", "a4", LT | L}}
	if len(got) != len(want) || !final {
		t.Fatalf("reads %v final %v, want %v final", got, final, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("read %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	before := p.Job()
	if before.Table("public.c").State != StateDone || before.Table("public.a").State == StateDone {
		t.Fatalf("before anything is stored: %+v", before.Tables)
	}
	c.store()
	for _, tp := range p.Job().Tables {
		if tp.State != StateDone {
			t.Errorf("%s %s after every row is stored", tp.Table, tp.State)
		}
	}
	after := p.Job()
	if a := after.Table("public.a"); a.Rows != 4 || strings.Join(a.LastKey, ",") != "4" {
		t.Errorf("progress of a: %+v", a)
	}
}

// The tables that end after the last one with rows are empty: the row
// held before them is the snapshot's last, and closes the transaction
// (before, an empty table let it go unmarked: no last mark, no final
// fragment).
func TestSequencerEmptyTablesLast(t *testing.T) {
	var c collect
	seq, p, ta, tb, tc := threeTables(&c)
	ctx, now := context.Background(), time.Now()
	for _, ch := range []*Chunk{{Table: ta, Rows: [][]wire.Value{row("1", "a"), row("2", "a")}}, {Table: tb}, {Table: tc}} {
		if err := seq.write(ctx, ch, true, now); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.frags) == 0 {
		t.Fatal("nothing written")
	}
	f := c.frags[len(c.frags)-1]
	want := wire.SnapshotLastInTable | wire.SnapshotLast
	if !f.Tx.Final || f.Tx.Snapshot.Marks&want != want || string(f.Tx.Changes[len(f.Tx.Changes)-1].New[0].Data) != "2" {
		t.Fatalf("last fragment: final %v marks %b changes %d, want the final fragment ending with a2 marked last", f.Tx.Final, f.Tx.Snapshot.Marks, len(f.Tx.Changes))
	}
	for _, f := range c.frags[:len(c.frags)-1] {
		if f.Tx.Final {
			t.Fatal("a fragment before the last is final")
		}
	}
	c.store()
	for _, tp := range p.Job().Tables {
		if tp.State != StateDone {
			t.Errorf("%s %s after every row is stored", tp.Table, tp.State)
		}
	}
}

// threeTables is an initial snapshot of tables public.a, b and c whose
// rows c collects: its sequencer and progress.
func threeTables(c *collect) (seq *sequencer, p *Progress, ta, tb, tc *Table) {
	ta = &Table{Schema: "public", Name: "a", Rel: testRel, Key: []int{0}}
	tb = &Table{Schema: "public", Name: "b", Rel: testRel, Key: []int{0}}
	tc = &Table{Schema: "public", Name: "c", Rel: testRel, Key: []int{0}}
	job := NewJob(InitialID, "app", KindInitial, "initial", []string{"public.a", "public.b", "public.c"}, nil)
	p = NewProgress(nil, job, 0, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	seq = &sequencer{w: NewTxWriter(c.emit, 1<<20, 7, 0, wire.Snapshot{Kind: wire.SnapshotInitial}), remaining: 3, progress: p}
	return seq, p, ta, tb, tc
}
