package check

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A small history: two transactions touching two tables, an update with an
// unchanged TOAST column, a delete under REPLICA IDENTITY DEFAULT and a truncate.
func history() []Change {
	return []Change{
		{ID: 1, Xid: 1<<32 | 700, Op: "insert", Schema: "public", Table: "users",
			After: []byte(`{"id": 1, "name": "ada", "bio": "long text", "score": 1.50, "at": "2024-01-02T03:04:05.5+00:00"}`)},
		{ID: 2, Xid: 1<<32 | 700, Op: "insert", Schema: "public", Table: "orders",
			After: []byte(`{"id": 10, "user_id": 1, "amount": 9.99}`)},
		{ID: 3, Xid: 1<<32 | 700, Op: "insert", Schema: "public", Table: "users",
			After: []byte(`{"id": 2, "name": "bob", "bio": "x", "score": 2, "at": null}`)},
		{ID: 4, Xid: 1<<32 | 701, Op: "update", Schema: "public", Table: "users",
			Before: []byte(`{"id": 1, "name": "ada", "bio": "long text", "score": 1.50, "at": "2024-01-02T03:04:05.5+00:00"}`),
			After:  []byte(`{"id": 1, "name": "ada l.", "bio": "long text", "score": 1.50, "at": "2024-01-02T03:04:05.5+00:00"}`)},
		{ID: 5, Xid: 1<<32 | 702, Op: "delete", Schema: "public", Table: "orders",
			Before: []byte(`{"id": 10, "user_id": 1, "amount": 9.99}`)},
		{ID: 6, Xid: 1<<32 | 703, Op: "truncate", Schema: "public", Table: "users"},
	}
}

// faithful renders the events a correct router would publish for history(),
// with renderings that differ from to_jsonb's but mean the same.
func faithful() []Event {
	return []Event{
		ev("0/1000", 700, 0, "insert", "users", `{"id": 1}`, ``,
			`{"id": 1, "name": "ada", "bio": "long text", "score": 1.5, "at": "2024-01-02T03:04:05.500Z"}`),
		ev("0/1000", 700, 1, "insert", "orders", `{"id": 10}`, ``, `{"id": 10, "user_id": 1, "amount": 9.990}`),
		ev("0/1000", 700, 2, "insert", "users", `{"id": 2}`, ``, `{"id": 2, "name": "bob", "bio": "x", "score": 2, "at": null}`),
		withUnchanged(ev("0/2000", 701, 0, "update", "users", `{"id": 1}`, `null`,
			`{"id": 1, "name": "ada l.", "score": 1.50, "at": "2024-01-02 03:04:05.5+00"}`), "bio"),
		ev("0/3000", 702, 0, "delete", "orders", `{"id": 10}`, `{"id": 10}`, `null`),
		ev("0/4000", 703, 0, "truncate", "users", ``, ``, ``),
	}
}

var seq uint64

func ev(lsn string, xid uint32, index uint64, op, table, key, before, after string) Event {
	seq++
	raw := func(s string) json.RawMessage {
		if s == "" {
			return nil
		}
		return json.RawMessage(s)
	}
	return Event{Op: op, Source: "t", Schema: "public", Table: table, LSN: lsn, Xid: xid, Index: index,
		Key: raw(key), Before: raw(before), After: raw(after),
		MsgID: fmt.Sprintf("t.1.1:%s:%d", strings.ReplaceAll(lsn, "/", ""), index), Seq: seq}
}

func withUnchanged(e Event, cols ...string) Event {
	e.Unchanged = cols
	return e
}

func TestCheckAcceptsFaithfulEvents(t *testing.T) {
	r := Check(history(), faithful())
	if !r.OK() || r.Committed != 6 || r.Delivered != 6 {
		t.Fatalf("want OK with 6 of 6, got %s", r)
	}
	if got := r.String(); got != "committed=6 delivered=6 lost=0 duplicated=0 extra=0 out_of_order=0 value_mismatches=0" {
		t.Errorf("summary: %s", got)
	}
}

func TestCheckAcceptsEventsInAnotherTablesOrder(t *testing.T) {
	// Audit ids of a cascade follow trigger order, not WAL order: matching is
	// per table, so interleaving across tables does not matter.
	h := history()
	h[0].ID, h[1].ID = h[1].ID, h[0].ID
	if r := Check(h, faithful()); !r.OK() {
		t.Fatal(r)
	}
}

// Two slots of one database, each its own source, stream a transaction
// touching tables of both: each numbers its own changes from 0 at the same
// commit LSN. Those are different changes, not one delivered twice.
func TestCheckTellsSourcesApart(t *testing.T) {
	h := []Change{
		{ID: 1, Xid: 700, Op: "insert", Schema: "public", Table: "users", After: []byte(`{"id": 1}`)},
		{ID: 2, Xid: 700, Op: "insert", Schema: "public", Table: "orders", After: []byte(`{"id": 10}`)},
	}
	users := ev("0/1000", 700, 0, "insert", "users", `{"id": 1}`, ``, `{"id": 1}`)
	users.Source, users.MsgID = "a", "a.1.1:1000:0"
	orders := ev("0/1000", 700, 0, "insert", "orders", `{"id": 10}`, ``, `{"id": 10}`)
	orders.Source, orders.MsgID = "b", "b.1.1:1000:0"
	if r := Check(h, []Event{users, orders}); !r.OK() {
		t.Fatal(r)
	}
	// Within one source, the same position under another id (a re-sent
	// transaction after a failover: its id names the new timeline) is
	// still a duplicate.
	again := users
	again.MsgID = "a.1.2:1000:0"
	if r := Check(h, []Event{users, orders, again}); r.Duplicated != 1 {
		t.Fatalf("re-sent change not counted as a duplicate: %s", r)
	}
}

// Each case breaks the faithful events in one way and says which count must
// show it, and that nothing else is reported.
func TestCheckDetects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func([]Event) []Event
		want   func(Report) int
		count  int
		text   string
	}{
		{"missing first", func(e []Event) []Event { return e[1:] },
			func(r Report) int { return r.Lost }, 1, "lost: insert public.users xid 700"},
		{"missing middle of a transaction", func(e []Event) []Event { return append(e[:1:1], e[3:]...) },
			func(r Report) int { return r.Lost }, 2, "lost: insert public.orders"},
		{"missing truncate", func(e []Event) []Event { return e[:5] },
			func(r Report) int { return r.Lost }, 1, "lost: truncate public.users"},
		{"duplicate id", func(e []Event) []Event { return append(e, e[3]) },
			func(r Report) int { return r.Duplicated }, 1, "duplicate: update public.users"},
		{"same change under another id", func(e []Event) []Event {
			d := e[1]
			d.MsgID = "other"
			return append(e, d)
		}, func(r Report) int { return r.Duplicated }, 1, `under another id "other"`},
		{"redelivery of a whole batch", func(e []Event) []Event { return append(e, e[:3]...) },
			func(r Report) int { return r.Duplicated }, 3, "duplicate"},
		{"reordered transactions", func(e []Event) []Event {
			e[2], e[3] = e[3], e[2] // the users update of 0/2000 before the last users insert of 0/1000
			return e
		}, func(r Report) int { return r.OutOfOrder }, 1, "out of order: insert public.users xid 700 lsn 0/1000 index 2"},
		{"reordered within a transaction", func(e []Event) []Event {
			e[0], e[2] = e[2], e[0]
			return e
		}, func(r Report) int { return r.OutOfOrder }, 1, "out of order"},
		{"wrong value", func(e []Event) []Event {
			e[3].After = json.RawMessage(`{"id": 1, "name": "ada", "score": 1.50, "at": "2024-01-02 03:04:05.5+00"}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, `after.name: want "ada l.", got "ada"`},
		{"number rounded", func(e []Event) []Event {
			e[1].After = json.RawMessage(`{"id": 10, "user_id": 1, "amount": 9.9900001}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "after.amount"},
		{"timestamp shifted", func(e []Event) []Event {
			e[0].After = json.RawMessage(`{"id": 1, "name": "ada", "bio": "long text", "score": 1.5, "at": "2024-01-02T03:04:05.500"}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "after.at"},
		{"missing column", func(e []Event) []Event {
			e[2].After = json.RawMessage(`{"id": 2, "name": "bob", "score": 2, "at": null}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "after.bio: missing"},
		{"extra column", func(e []Event) []Event {
			e[1].After = json.RawMessage(`{"id": 10, "user_id": 1, "amount": 9.99, "x": 1}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "after.x: not a column"},
		{"unchanged column that changed", func(e []Event) []Event {
			e[3].Unchanged = []string{"bio", "name"}
			e[3].After = json.RawMessage(`{"id": 1, "score": 1.50, "at": "2024-01-02 03:04:05.5+00"}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "unchanged: name was changed by the update"},
		{"unchanged column also in after", func(e []Event) []Event {
			e[3].After = json.RawMessage(`{"id": 1, "name": "ada l.", "bio": "long text", "score": 1.50, "at": "2024-01-02 03:04:05.5+00"}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "after.bio: listed as unchanged but present"},
		{"delete with a wrong old key", func(e []Event) []Event {
			e[4].Before = json.RawMessage(`{"id": 11}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "before.id"},
		{"delete with null non-key columns", func(e []Event) []Event {
			e[4].Before = json.RawMessage(`{"id": 10, "user_id": null, "amount": null}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "before.amount"},
		{"delete without before", func(e []Event) []Event {
			e[4].Before = nil
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "before: want the old row or key"},
		{"insert with a before", func(e []Event) []Event {
			e[0].Before = e[0].After
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "before: want null"},
		{"wrong key", func(e []Event) []Event {
			e[2].Key = json.RawMessage(`{"id": 1}`)
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "key.id"},
		{"wrong op", func(e []Event) []Event {
			e[3].Op = "insert"
			e[3].Unchanged = nil
			return e
		}, func(r Report) int { return r.ValueMismatches }, 1, "op: want update, got insert"},
		{"event of a rolled-back transaction", func(e []Event) []Event {
			return append(e, ev("0/5000", 999, 0, "insert", "users", `{"id": 3}`, ``, `{"id": 3}`))
		}, func(r Report) int { return r.Extra }, 1, "extra: insert public.users xid 999"},
		{"phantom change inside a transaction", func(e []Event) []Event {
			p := ev("0/1000", 700, 3, "insert", "users", `{"id": 9}`, ``, `{"id": 9, "name": "z", "bio": "", "score": 0, "at": null}`)
			return append(e[:3:3], append([]Event{p}, e[3:]...)...)
		}, func(r Report) int { return r.Extra }, 1, "extra: insert public.users xid 700 lsn 0/1000 index 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(history(), tc.mutate(faithful()))
			if r.OK() {
				t.Fatalf("not detected: %s", r)
			}
			if got := tc.want(r); got != tc.count {
				t.Errorf("count = %d, want %d: %s", got, tc.count, r)
			}
			total := r.Lost + r.Duplicated + r.Extra + r.OutOfOrder + r.ValueMismatches
			if total != tc.count {
				t.Errorf("other problems reported too: %s", r)
			}
			if !strings.Contains(r.String(), tc.text) {
				t.Errorf("report lacks %q:\n%s", tc.text, r)
			}
		})
	}
}

func TestCheckEmpty(t *testing.T) {
	if r := Check(nil, nil); !r.OK() {
		t.Fatal(r)
	}
	r := Check(history(), nil)
	if r.Lost != 6 || r.OK() {
		t.Fatal(r)
	}
}

// A large transaction with one lost row and every value wrong must stay fast
// (the look-ahead is bounded) and report exactly that.
func TestCheckLargeTransaction(t *testing.T) {
	const n = 20000
	var changes []Change
	var events []Event
	for i := range n {
		changes = append(changes, Change{ID: int64(i + 1), Xid: 42, Op: "insert", Schema: "public", Table: "t",
			After: fmt.Appendf(nil, `{"id": %d, "v": "a"}`, i)})
		if i == 7 {
			continue
		}
		events = append(events, Event{Op: "insert", Schema: "public", Table: "t", LSN: "1/0", Xid: 42,
			Index: uint64(i), After: json.RawMessage(fmt.Sprintf(`{"id": %d, "v": "b"}`, i)), MsgID: fmt.Sprint(i)})
	}
	r := Check(changes, events)
	if r.Lost != 1 || r.ValueMismatches != n-1 || r.Extra != 0 {
		t.Fatalf("want 1 lost and %d mismatches: %s", n-1, r)
	}
	if len(r.Problems) != maxProblems || !strings.Contains(r.String(), fmt.Sprintf("%d more problems", n-5)) {
		t.Errorf("problems not capped: %d kept\n%s", len(r.Problems), r)
	}
}

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent([]byte(`{"op":"update","source":"s","schema":"public","table":"users","lsn":"0/16B3748","xid":734,
		"commit_time":"2024-01-01T00:00:00Z","index":3,"key":{"id":1},"before":null,"after":{"id":1},"unchanged":["bio"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Op != "update" || e.Xid != 734 || e.Index != 3 || e.Unchanged[0] != "bio" || string(e.Key) != `{"id":1}` || !isNull(e.Before) {
		t.Errorf("parsed %+v", e)
	}
	for _, bad := range []string{`{}`, `{"op":"insert","table":"t","lsn":"zz"}`, `not json`} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%s) accepted", bad)
		}
	}
}
