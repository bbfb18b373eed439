package backfill

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/wire"
)

func TestSnapshotVisibility(t *testing.T) {
	s, err := parseSnapshot("100:110:102,105")
	if err != nil {
		t.Fatal(err)
	}
	for xid, want := range map[uint32]bool{50: true, 99: true, 100: true, 101: true, 102: false, 105: false, 109: true, 110: false, 500: false} {
		if got := s.visible(xid); got != want {
			t.Errorf("visible(%d) = %v, want %v", xid, got, want)
		}
	}
	// Around the 32-bit wrap: 2^32-5 precedes 3.
	w, err := parseSnapshot("4294967290:4294967300:4294967295")
	if err != nil {
		t.Fatal(err)
	}
	for xid, want := range map[uint32]bool{4294967289: true, 4294967291: true, 4294967295: false, 2: true, 4: false} {
		if got := w.visible(xid); got != want {
			t.Errorf("wrapped visible(%d) = %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "a:2:", "1:2:x"} {
		if _, err := parseSnapshot(bad); err == nil {
			t.Errorf("parseSnapshot(%q) accepted", bad)
		}
	}
}

var rel = &wire.Relation{ID: 1, Schema: "public", Table: "t", ReplicaIdentity: 'd', Columns: []wire.Column{{Name: "id", Key: true}, {Name: "v"}}}

func text(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

// trackerRun follows a stream through the tracker: the changes given, the
// chunk's watermarks around them, and returns the ids of the rows it
// emitted (nil when it asked for the chunk again).
func trackerRun(t *testing.T, snap string, chunkIDs []string, stream func(tr *Tracker)) []string {
	t.Helper()
	var frags []*pgoutput.Fragment
	emit := func(_ context.Context, f *pgoutput.Fragment) error { frags = append(frags, f); return nil }
	tr := NewTracker(emit, 1<<20, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	table := &snapshot.Table{Schema: "public", Name: "t", Rel: rel, Key: []int{0}}
	tr.Watch(table)
	ctx := context.Background()
	p := &pendingChunk{id: "j/r/0", job: &snapshot.Job{ID: "j"}, done: make(chan chunkResult, 1), stored: func(int) {}}
	tr.expect(p)
	stream(tr) // before the low watermark
	msg := func(mark string) {
		if err := tr.Message(ctx, 1, 0, &pglogrepl.LogicalDecodingMessage{Prefix: WatermarkPrefix, Content: []byte("j/r/0 " + mark), Transactional: true}); err != nil {
			t.Fatal(err)
		}
		if err := tr.Committed(ctx, 1, 0x100, 0x138); err != nil {
			t.Fatal(err)
		}
	}
	msg("low")
	s, err := parseSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]wire.Value
	for _, id := range chunkIDs {
		rows = append(rows, []wire.Value{text(id), text("chunk")})
	}
	tr.read(p, &snapshot.Chunk{Table: table, Rows: rows}, s)
	msg("high")
	res := <-p.done
	if res.retry {
		return nil
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	ids := []string{}
	for _, f := range frags {
		// Right after the watermark's commit, and following it: a
		// collector restarted after the chunk resumes what the next
		// transaction follows from it (Debezium's source.sequence).
		if f.Tx.CommitLSN != 0x101 || f.Tx.PrevCommitLSN != 0x138 || f.Tx.Snapshot == nil || !f.Tx.Final {
			t.Fatalf("chunk emitted at %X: %+v", f.Tx.CommitLSN, f.Tx)
		}
		for _, c := range f.Tx.Changes {
			ids = append(ids, string(c.New[0].Data))
		}
	}
	return ids
}

// A chunk leaves out exactly the rows a transaction its snapshot does not
// see changed before its high watermark (an insert, an update, a delete, a
// key moved away or to it), keeps those only seen ones changed, drops all
// after an unseen truncate, and is read again when a key was unknown.
func TestTrackerFilter(t *testing.T) {
	upd := func(xid uint32, id string) func(tr *Tracker) {
		return func(tr *Tracker) {
			tr.Row(xid, rel, &wire.Change{Op: wire.OpUpdate, New: []wire.Value{text(id), text("new")}})
		}
	}
	tests := []struct {
		name   string
		snap   string
		stream func(tr *Tracker)
		want   []string // nil: read again
	}{
		{"no changes", "100:100:", func(*Tracker) {}, []string{"1", "2", "3"}},
		{"seen update kept", "100:100:", upd(99, "2"), []string{"1", "2", "3"}},
		{"unseen update dropped", "100:100:", upd(100, "2"), []string{"1", "3"}},
		{"in progress at the snapshot dropped", "90:100:95", upd(95, "3"), []string{"1", "2"}},
		{"unseen delete dropped", "100:100:", func(tr *Tracker) {
			tr.Row(120, rel, &wire.Change{Op: wire.OpDelete, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}}})
		}, []string{"2", "3"}},
		{"key moved: both keys dropped", "100:100:", func(tr *Tracker) {
			tr.Row(130, rel, &wire.Change{Op: wire.OpUpdate, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}}, New: []wire.Value{text("3"), text("x")}})
		}, []string{"2"}},
		{"other table ignored", "100:100:", func(tr *Tracker) {
			other := &wire.Relation{Schema: "public", Table: "u", Columns: rel.Columns}
			tr.Row(130, other, &wire.Change{Op: wire.OpInsert, New: []wire.Value{text("2"), text("x")}})
		}, []string{"1", "2", "3"}},
		{"unseen truncate drops all", "100:100:", func(tr *Tracker) { tr.Truncate(150, []*wire.Relation{rel}) }, []string{}},
		{"seen truncate keeps", "200:200:", func(tr *Tracker) { tr.Truncate(150, []*wire.Relation{rel}) }, []string{"1", "2", "3"}},
		{"unknown key: read again", "100:100:", func(tr *Tracker) {
			tr.Row(150, rel, &wire.Change{Op: wire.OpUpdate, New: []wire.Value{{Kind: wire.KindUnchanged}, text("x")}})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := trackerRun(t, tt.snap, []string{"1", "2", "3"}, tt.stream)
			if (got == nil) != (tt.want == nil) || len(got) != len(tt.want) {
				t.Fatalf("emitted %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("emitted %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// The tracker takes its watermarks and the SQL requests out of the stream,
// and nothing else; a high watermark without its low one reads the chunk
// again.
func TestTrackerMessages(t *testing.T) {
	var requests []string
	tr := NewTracker(nil, 1<<20, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tr.OnRequest(func(_ context.Context, lsn uint64, content []byte) error {
		requests = append(requests, string(content))
		return nil
	})
	for prefix, want := range map[string]bool{WatermarkPrefix: true, RequestPrefix: true, "outbox": false, "pgjet.other": false} {
		if tr.Intercepts(prefix) != want {
			t.Errorf("Intercepts(%q) = %v", prefix, !want)
		}
	}
	ctx := context.Background()
	if err := tr.Message(ctx, 1, 0x10, &pglogrepl.LogicalDecodingMessage{Prefix: RequestPrefix, Content: []byte("public.t"), Transactional: true}); err != nil || len(requests) != 1 {
		t.Fatalf("request: %v, %v", err, requests)
	}
	p := &pendingChunk{id: "x", done: make(chan chunkResult, 1), hwAt: time.Now()}
	tr.expect(p)
	if err := tr.Message(ctx, 1, 0x20, &pglogrepl.LogicalDecodingMessage{Prefix: WatermarkPrefix, Content: []byte("x high"), Transactional: true}); err != nil {
		t.Fatal(err)
	}
	if res := <-p.done; !res.retry {
		t.Fatalf("high before low: %+v", res)
	}
}

func TestSQLRequest(t *testing.T) {
	for in, want := range map[string]string{
		`public.a, public.b`:                        "public.a,public.b|",
		`{"tables": ["public.a"], "sinks": ["s1"]}`: "public.a|s1",
		` {"tables": ["public.a", "s.b"]} `:         "public.a,s.b|",
	} {
		r, err := parseSQLRequest([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := join(r.Tables) + "|" + join(r.Sinks); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if _, err := parseSQLRequest([]byte(`{"tables": ["a"], "sink": ["x"]}`)); err == nil {
		t.Error("unknown key accepted")
	}
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}
