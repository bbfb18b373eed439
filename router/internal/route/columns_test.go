package route

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func usersRel() *wire.Relation {
	return &wire.Relation{ID: 16390, Schema: "public", Table: "users", ReplicaIdentity: 'd', Columns: []wire.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "email", TypeOID: 1043, TypeMod: 259},
		{Name: "name", TypeOID: 25, TypeMod: -1},
		{Name: "ssn", TypeOID: 25, TypeMod: -1},
		{Name: "bio", TypeOID: 25, TypeMod: -1},
		{Name: "mood", TypeOID: 70000, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e'}},
	}}
}

func txt(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

var (
	null      = wire.Value{Kind: wire.KindNull}
	unchanged = wire.Value{Kind: wire.KindUnchanged}
)

func usersRow() []wire.Value {
	return []wire.Value{txt("1"), txt("ann@example.com"), txt("Ann"), txt("123-45-6789"), txt("likes tea"), txt("happy")}
}

func hmacHex(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

func event(op wire.Op, r *wire.Relation, oldKind byte, old, new []wire.Value) *envelope.Event {
	return &envelope.Event{Source: testSource, Tx: testTx, Rel: r, Index: 3,
		Change: &wire.Change{Op: op, OldKind: oldKind, Old: old, New: new}}
}

// render renders ev with the native envelope, decoded for comparison.
func render(t *testing.T, ev *envelope.Event) (map[string]any, string) {
	t.Helper()
	b, err := envelope.NewNative().Append(nil, ev)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("rendered JSON %s: %v", b, err)
	}
	return doc, string(b)
}

func names(r *wire.Relation) []string {
	var out []string
	for _, c := range r.Columns {
		out = append(out, c.Name)
	}
	return out
}

func strs(vals []wire.Value) []string {
	var out []string
	for _, v := range vals {
		switch v.Kind {
		case wire.KindNull:
			out = append(out, "<null>")
		case wire.KindUnchanged:
			out = append(out, "<unchanged>")
		default:
			out = append(out, string(v.Data))
		}
	}
	return out
}

var usersRule = ColumnRule{Table: "public.users", Drop: []string{"ssn"}, Mask: map[string]string{"email": "***"}, Hash: []string{"name"}}

func TestTransformTuples(t *testing.T) {
	annHash := hmacHex(testKey, "Ann")
	keyOnly := func(id string) []wire.Value {
		return []wire.Value{txt(id), null, null, null, null, null}
	}
	for _, tc := range []struct {
		name     string
		rules    []ColumnRule
		ev       *envelope.Event
		cols     []string
		new, old []string // nil: the tuple is nil
		doc      string   // the rendered event from "key" on
	}{
		{
			name: "insert", rules: []ColumnRule{usersRule}, ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow()),
			cols: []string{"id", "email", "name", "bio", "mood"},
			new:  []string{"1", "***", annHash, "likes tea", "happy"},
			doc:  `"key":{"id":1},"before":null,"after":{"id":1,"email":"***","name":"` + annHash + `","bio":"likes tea","mood":"happy"}}`,
		},
		{
			name: "snapshot read", rules: []ColumnRule{usersRule}, ev: event(wire.OpRead, usersRel(), 0, nil, usersRow()),
			cols: []string{"id", "email", "name", "bio", "mood"},
			new:  []string{"1", "***", annHash, "likes tea", "happy"},
			doc:  `"key":{"id":1},"before":null,"after":{"id":1,"email":"***","name":"` + annHash + `","bio":"likes tea","mood":"happy"}}`,
		},
		{
			name: "update with old key", rules: []ColumnRule{usersRule}, ev: event(wire.OpUpdate, usersRel(), wire.OldKey, keyOnly("1"), usersRow()),
			cols: []string{"id", "email", "name", "bio", "mood"},
			new:  []string{"1", "***", annHash, "likes tea", "happy"},
			old:  []string{"1", "<null>", "<null>", "<null>", "<null>"},
			doc:  `"key":{"id":1},"before":{"id":1},"after":{"id":1,"email":"***","name":"` + annHash + `","bio":"likes tea","mood":"happy"}}`,
		},
		{
			name: "update with replica identity full", rules: []ColumnRule{usersRule},
			ev:   event(wire.OpUpdate, usersRel(), wire.OldFull, usersRow(), []wire.Value{txt("1"), txt("new@example.com"), txt("Bob"), txt("987-65-4321"), unchanged, txt("sad")}),
			cols: []string{"id", "email", "name", "bio", "mood"},
			new:  []string{"1", "***", hmacHex(testKey, "Bob"), "<unchanged>", "sad"},
			old:  []string{"1", "***", annHash, "likes tea", "happy"},
			doc: `"key":{"id":1},"before":{"id":1,"email":"***","name":"` + annHash + `","bio":"likes tea","mood":"happy"},` +
				`"after":{"id":1,"email":"***","name":"` + hmacHex(testKey, "Bob") + `","mood":"sad"},"unchanged":["bio"]}`,
		},
		{
			name: "delete with old key", rules: []ColumnRule{usersRule}, ev: event(wire.OpDelete, usersRel(), wire.OldKey, keyOnly("7"), nil),
			cols: []string{"id", "email", "name", "bio", "mood"},
			old:  []string{"7", "<null>", "<null>", "<null>", "<null>"},
			doc:  `"key":{"id":7},"before":{"id":7},"after":null}`,
		},
		{
			name: "null and unchanged TOAST stay", rules: []ColumnRule{{Table: "public.users", Mask: map[string]string{"email": "***", "bio": "-"}, Hash: []string{"name", "ssn"}}},
			ev:   event(wire.OpUpdate, usersRel(), 0, nil, []wire.Value{txt("1"), null, null, unchanged, unchanged, null}),
			cols: []string{"id", "email", "name", "ssn", "bio", "mood"},
			new:  []string{"1", "<null>", "<null>", "<unchanged>", "<unchanged>", "<null>"},
			doc:  `"key":{"id":1},"before":null,"after":{"id":1,"email":null,"name":null,"mood":null},"unchanged":["ssn","bio"]}`,
		},
		{
			name: "masked key column", rules: []ColumnRule{{Table: "public.users", Mask: map[string]string{"id": "0"}, Drop: []string{"email", "name", "ssn", "bio", "mood"}}},
			ev:   event(wire.OpUpdate, usersRel(), wire.OldKey, keyOnly("5"), usersRow()),
			cols: []string{"id"}, new: []string{"0"}, old: []string{"0"},
			doc: `"key":{"id":"0"},"before":{"id":"0"},"after":{"id":"0"}}`,
		},
		{
			name: "dropped key column", rules: []ColumnRule{{Table: "public.users", Drop: []string{"id", "ssn"}}},
			ev:   event(wire.OpDelete, usersRel(), wire.OldFull, usersRow(), nil),
			cols: []string{"email", "name", "bio", "mood"}, old: []string{"ann@example.com", "Ann", "likes tea", "happy"},
			doc: `"key":null,"before":{"email":"ann@example.com","name":"Ann","bio":"likes tea","mood":"happy"},"after":null}`,
		},
		{
			name: "first rule naming a column decides",
			rules: []ColumnRule{
				{Table: "public.*", Mask: map[string]string{"email": "A"}},
				{Table: "public.users", Drop: []string{"email", "ssn"}},
				{Table: "*.users", Hash: []string{"ssn", "name"}, Mask: map[string]string{"nope": "x"}},
				{Table: "other.users", Drop: []string{"name"}},
			},
			ev:   event(wire.OpInsert, usersRel(), 0, nil, usersRow()),
			cols: []string{"id", "email", "name", "bio", "mood"},
			new:  []string{"1", "A", annHash, "likes tea", "happy"},
			doc:  `"key":{"id":1},"before":null,"after":{"id":1,"email":"A","name":"` + annHash + `","bio":"likes tea","mood":"happy"}}`,
		},
		{
			name: "binary value masked and hashed", rules: []ColumnRule{{Table: "public.users", Mask: map[string]string{"id": "#"}, Hash: []string{"email"}}},
			ev: event(wire.OpInsert, usersRel(), 0, nil, []wire.Value{{Kind: wire.KindBinary, Data: []byte{0, 0, 0, 1}}, {Kind: wire.KindBinary, Data: []byte("a@b")},
				txt("n"), txt("s"), txt("b"), txt("m")}),
			cols: []string{"id", "email", "name", "ssn", "bio", "mood"},
			new:  []string{"#", hmacHex(testKey, "a@b"), "n", "s", "b", "m"},
			doc:  `"key":{"id":"#"},"before":null,"after":{"id":"#","email":"` + hmacHex(testKey, "a@b") + `","name":"n","ssn":"s","bio":"b","mood":"m"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Name: "sink", Columns: tc.rules, HashKey: testKey})
			ev := tc.ev
			orig := *ev
			origChange := *ev.Change
			origNew, origOld := strs(ev.Change.New), strs(ev.Change.Old)
			origRel := *ev.Rel
			origCols := slices.Clone(ev.Rel.Columns)

			r.Transform(ev)

			if ev.Change == orig.Change || ev.Rel == orig.Rel {
				t.Fatal("Transform did not copy the change and relation")
			}
			if got := names(ev.Rel); !slices.Equal(got, tc.cols) {
				t.Errorf("columns %q, want %q", got, tc.cols)
			}
			if (ev.Change.New == nil) != (tc.new == nil) || !slices.Equal(strs(ev.Change.New), tc.new) {
				t.Errorf("new %q, want %q", strs(ev.Change.New), tc.new)
			}
			if (ev.Change.Old == nil) != (tc.old == nil) || !slices.Equal(strs(ev.Change.Old), tc.old) {
				t.Errorf("old %q, want %q", strs(ev.Change.Old), tc.old)
			}
			if ev.Change.OldKind != origChange.OldKind || ev.Change.Op != origChange.Op {
				t.Errorf("op/old kind changed: %v", ev.Change)
			}
			// The input is left as it was: other routes see it unchanged.
			if !slices.Equal(strs(orig.Change.New), origNew) || !slices.Equal(strs(orig.Change.Old), origOld) ||
				orig.Rel.Schema != origRel.Schema || !wire.EqualColumns(orig.Rel.Columns, origCols) {
				t.Error("Transform modified its input")
			}
			replaced := map[string]bool{}
			for _, rc := range tc.rules {
				for name := range rc.Mask {
					replaced[name] = true
				}
				for _, name := range rc.Hash {
					replaced[name] = true
				}
			}
			for _, c := range ev.Rel.Columns {
				oc := origCols[slices.IndexFunc(origCols, func(o wire.Column) bool { return o.Name == c.Name })]
				if c.Key != oc.Key {
					t.Errorf("column %s: key %v, was %v", c.Name, c.Key, oc.Key)
				}
				want := oc
				if replaced[c.Name] {
					want = wire.Column{Name: c.Name, TypeOID: textOID, TypeMod: -1, Key: oc.Key, NotNull: oc.NotNull, PrimaryKey: oc.PrimaryKey}
				}
				if !c.Equal(&want) {
					t.Errorf("column %+v, want %+v", c, want)
				}
			}

			_, text := render(t, ev)
			if _, rest, ok := strings.Cut(text, `"index":3,`); !ok || rest != tc.doc {
				t.Errorf("rendered\n%s\nwant ...%s", text, tc.doc)
			}
		})
	}
}

// What matters in the end: the rendered event holds none of the dropped,
// masked or hashed values, nor the names of dropped columns.
func TestRenderedWithoutSecrets(t *testing.T) {
	r := mustNew(t, Config{Columns: []ColumnRule{usersRule}, HashKey: testKey})
	for _, ev := range []*envelope.Event{
		event(wire.OpInsert, usersRel(), 0, nil, usersRow()),
		event(wire.OpUpdate, usersRel(), wire.OldFull, usersRow(), usersRow()),
		event(wire.OpDelete, usersRel(), wire.OldFull, usersRow(), nil),
	} {
		_, before := render(t, ev)
		r.Transform(ev)
		doc, text := render(t, ev)
		for _, secret := range []string{"ann@example.com", "Ann", "123-45-6789", "ssn"} {
			if !strings.Contains(before, secret) {
				t.Fatalf("untransformed event lacks %q: %s", secret, before)
			}
			if strings.Contains(text, secret) {
				t.Errorf("%s event holds %q: %s", ev.Change.Op, secret, text)
			}
		}
		for _, k := range []string{"before", "after"} {
			if tuple, ok := doc[k].(map[string]any); ok && (tuple["email"] != "***" || tuple["name"] != hmacHex(testKey, "Ann")) {
				t.Errorf("%s: %v", k, tuple)
			}
		}
	}
}

// The replaced values share nothing with the original tuple: the original's
// bytes can be overwritten (the raw record's buffer reused) without changing
// them, and the copy's slices are new.
func TestTransformDoesNotAlias(t *testing.T) {
	r := mustNew(t, Config{Columns: []ColumnRule{usersRule}, HashKey: testKey})
	ev := event(wire.OpUpdate, usersRel(), wire.OldFull, usersRow(), usersRow())
	orig := *ev.Change
	r.Transform(ev)
	c := ev.Change
	if &c.New[0] == &orig.New[0] || &c.Old[0] == &orig.Old[0] || &c.New[0] == &c.Old[0] {
		t.Fatal("the copy shares a tuple's array")
	}
	want := [2][]string{strs(c.New), strs(c.Old)}
	for _, tuple := range [][]wire.Value{orig.New, orig.Old} {
		for i := range tuple {
			if i == 1 || i == 2 || i == 3 { // email, name, ssn: masked, hashed, dropped
				for j := range tuple[i].Data {
					tuple[i].Data[j] = 'X'
				}
			}
		}
	}
	if got := [2][]string{strs(c.New), strs(c.Old)}; !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("after wiping the original: %q, want %q", got, want)
	}
	// Appending to one tuple of the copy cannot write into the other.
	if cap(c.New) != len(c.New) {
		t.Errorf("new tuple has spare capacity %d", cap(c.New)-len(c.New))
	}
}

func TestTransformCache(t *testing.T) {
	r := mustNew(t, Config{Columns: []ColumnRule{usersRule}, HashKey: testKey})
	ev1 := event(wire.OpInsert, usersRel(), 0, nil, usersRow())
	ev2 := event(wire.OpInsert, usersRel(), 0, nil, usersRow()) // decoded afresh: equal, not the same
	r.Transform(ev1)
	r.Transform(ev2)
	if ev1.Rel != ev2.Rel {
		t.Error("equal relations got different transformed relations")
	}

	changes := map[string]func(*wire.Relation){
		"column added": func(rl *wire.Relation) {
			rl.Columns = append(rl.Columns, wire.Column{Name: "extra", TypeOID: 25})
		},
		"type changed":     func(rl *wire.Relation) { rl.Columns[4].TypeOID = 1043 },
		"key changed":      func(rl *wire.Relation) { rl.Columns[1].Key = true },
		"column renamed":   func(rl *wire.Relation) { rl.Columns[3].Name = "tax_id" },
		"table recreated":  func(rl *wire.Relation) { rl.ID++ },
		"identity changed": func(rl *wire.Relation) { rl.ReplicaIdentity = 'f' },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			rl := usersRel()
			change(rl)
			row := usersRow()
			for len(row) < len(rl.Columns) {
				row = append(row, txt("x"))
			}
			ev := event(wire.OpInsert, rl, 0, nil, row)
			r.Transform(ev)
			if ev.Rel == ev1.Rel {
				t.Fatal("changed relation got the cached transform")
			}
			if _, err := envelope.NewNative().Append(nil, ev); err != nil {
				t.Errorf("render: %v", err)
			}
			if name == "column renamed" && slices.Contains(names(ev.Rel), "tax_id") == false {
				t.Errorf("columns %q", names(ev.Rel))
			}
			if name == "key changed" && !ev.Rel.Columns[1].Key {
				t.Error("masked column lost the new key flag")
			}
		})
	}
	// And back.
	ev3 := event(wire.OpInsert, usersRel(), 0, nil, usersRow())
	r.Transform(ev3)
	if got := names(ev3.Rel); !slices.Equal(got, []string{"id", "email", "name", "bio", "mood"}) {
		t.Errorf("columns %q", got)
	}
}

// Two sources with a table of the same name but other columns, interleaved:
// each keeps its cached transform.
func TestTransformCacheVersions(t *testing.T) {
	r := mustNew(t, Config{Columns: []ColumnRule{usersRule}, HashKey: testKey})
	versions := make([]*wire.Relation, maxVersions+1)
	for i := range versions {
		versions[i] = usersRel()
		for range i {
			versions[i].Columns = append(versions[i].Columns, wire.Column{Name: fmt.Sprint("extra", i), TypeOID: 25})
		}
	}
	transformed := func(v int) *wire.Relation {
		row := usersRow()
		for len(row) < len(versions[v].Columns) {
			row = append(row, txt("x"))
		}
		ev := event(wire.OpInsert, versions[v], 0, nil, row)
		r.Transform(ev)
		if len(ev.Rel.Columns) != len(versions[v].Columns)-1 {
			t.Fatalf("version %d: columns %q", v, names(ev.Rel))
		}
		return ev.Rel
	}
	a, b := transformed(0), transformed(1)
	for range 3 {
		if transformed(0) != a || transformed(1) != b {
			t.Fatal("alternating versions: transform not cached")
		}
	}
	for v := 2; v <= maxVersions; v++ {
		transformed(v)
	}
	// Version 0 was used longest ago: evicted, made again.
	if transformed(1) != b {
		t.Error("recent version evicted")
	}
	if transformed(0) == a {
		t.Error("the oldest version stayed cached")
	}
}

func TestTransformWarnsOnceAboutMissingColumns(t *testing.T) {
	var warnings []string
	r := mustNew(t, Config{
		Name:    "sink1",
		HashKey: testKey,
		Columns: []ColumnRule{
			{Table: "public.*", Mask: map[string]string{"emial": "x"}, Drop: []string{"ssn"}},
			{Table: "public.users", Hash: []string{"emial"}},
		},
		Warn: func(msg string, args ...any) { warnings = append(warnings, fmt.Sprint(append([]any{msg}, args...)...)) },
	})
	for range 3 {
		r.Transform(event(wire.OpInsert, usersRel(), 0, nil, usersRow()))
	}
	changed := usersRel()
	changed.Columns = append(changed.Columns, wire.Column{Name: "extra", TypeOID: 25})
	r.Transform(event(wire.OpInsert, changed, 0, nil, append(usersRow(), txt("x"))))
	orders := &wire.Relation{Schema: "public", Table: "orders", Columns: []wire.Column{{Name: "id", TypeOID: 23, Key: true}}}
	r.Transform(event(wire.OpInsert, orders, 0, nil, []wire.Value{txt("1")}))
	r.Transform(event(wire.OpInsert, orders, 0, nil, []wire.Value{txt("2")}))
	want := []string{
		"column rule names a column the table does not haveroutesink1tablepublic.userscolumnemial",
		"column rule names a column the table does not haveroutesink1tablepublic.orderscolumnssn",
		"column rule names a column the table does not haveroutesink1tablepublic.orderscolumnemial",
	}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}
	// Without Warn, nothing breaks.
	r2 := mustNew(t, Config{Columns: []ColumnRule{{Table: "public.users", Drop: []string{"nope"}}}})
	ev := event(wire.OpInsert, usersRel(), 0, nil, usersRow())
	r2.Transform(ev)
}

func TestTransformLeavesOthersAlone(t *testing.T) {
	r := mustNew(t, Config{Columns: []ColumnRule{usersRule, {Table: "public.orders", Drop: []string{"nope"}}}, HashKey: testKey})
	orders := &wire.Relation{Schema: "public", Table: "orders", Columns: []wire.Column{{Name: "id", TypeOID: 23, Key: true}}}
	other := &wire.Relation{Schema: "sales", Table: "users", Columns: []wire.Column{{Name: "email", TypeOID: 25}}}
	for name, ev := range map[string]*envelope.Event{
		"no rule for the table":       event(wire.OpInsert, other, 0, nil, []wire.Value{txt("a@b")}),
		"rule names no column of it":  event(wire.OpUpdate, orders, 0, nil, []wire.Value{txt("1")}),
		"truncate of a ruled table":   {Source: testSource, Tx: testTx, Rel: usersRel(), Change: &wire.Change{Op: wire.OpTruncate, TruncateRels: []int32{0}}},
		"message":                     msgEvent("outbox"),
		"no rules at all (see below)": event(wire.OpInsert, usersRel(), 0, nil, usersRow()),
	} {
		t.Run(name, func(t *testing.T) {
			rt := r
			if strings.HasPrefix(name, "no rules at all") {
				rt = mustNew(t, Config{})
			}
			c, rl := ev.Change, ev.Rel
			rt.Transform(ev)
			if ev.Change != c || ev.Rel != rl {
				t.Fatal("event changed")
			}
			if n := testing.AllocsPerRun(100, func() { rt.Transform(ev) }); n != 0 {
				t.Errorf("%v allocations", n)
			}
		})
	}
}

func TestTransformShortTuple(t *testing.T) {
	// Tuples never are shorter than their relation, but if one were, the
	// event must fail to render rather than leak or panic.
	r := mustNew(t, Config{Columns: []ColumnRule{{Table: "public.users", Drop: []string{"id"}, Mask: map[string]string{"email": "x"}}}})
	ev := event(wire.OpInsert, usersRel(), 0, nil, usersRow()[:3])
	r.Transform(ev)
	if got := strs(ev.Change.New); !slices.Equal(got, []string{"x", "Ann"}) {
		t.Errorf("new %q", got)
	}
	if _, err := envelope.NewNative().Append(nil, ev); err == nil {
		t.Error("short tuple rendered")
	}
}

func TestHashDependsOnKey(t *testing.T) {
	other := []byte("another key of 16 bytes or more")
	h := func(key []byte) string {
		r := mustNew(t, Config{Columns: []ColumnRule{{Table: "*.*", Hash: []string{"email"}}}, HashKey: key})
		ev := event(wire.OpInsert, usersRel(), 0, nil, usersRow())
		r.Transform(ev)
		return string(ev.Change.New[1].Data)
	}
	if a, b := h(testKey), h(other); a == b || a != hmacHex(testKey, "ann@example.com") || b != hmacHex(other, "ann@example.com") {
		t.Errorf("hashes %s, %s", a, b)
	}
}
