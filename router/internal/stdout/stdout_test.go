package stdout

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

var (
	src   = wire.Source{Name: "app", SystemID: 1, Timeline: 1}
	users = wire.Relation{Schema: "public", Table: "users", Columns: []wire.Column{
		{Name: "id", TypeOID: 23, Key: true},
		{Name: "name", TypeOID: 25},
	}}
	evil = wire.Relation{Schema: "public", Table: "x\nINSERT public.fake", Columns: []wire.Column{{Name: "id", TypeOID: 23, Key: true}}}
	// 2023-11-14T22:13:20.123Z
	tx = wire.Tx{Xid: 1, CommitLSN: 0x100, CommitTime: 1_700_000_000_123_000, Final: true}
)

func text(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }

func TestText(t *testing.T) {
	tests := []struct {
		name   string
		change wire.Change
		rel    *wire.Relation
		want   string
	}{
		{"insert", wire.Change{Op: wire.OpInsert, New: []wire.Value{text("1"), text("ann")}}, &users,
			`22:13:20.123 INSERT public.users key={"id":1} after={"id":1,"name":"ann"}`},
		{"update without old tuple", wire.Change{Op: wire.OpUpdate, New: []wire.Value{text("1"), text("bob")}}, &users,
			`22:13:20.123 UPDATE public.users key={"id":1} after={"id":1,"name":"bob"}`},
		{"update with full old tuple", wire.Change{Op: wire.OpUpdate, OldKind: wire.OldFull,
			Old: []wire.Value{text("1"), text("ann")}, New: []wire.Value{text("1"), text("bob")}}, &users,
			`22:13:20.123 UPDATE public.users key={"id":1} before={"id":1,"name":"ann"} → after={"id":1,"name":"bob"}`},
		{"delete", wire.Change{Op: wire.OpDelete, OldKind: wire.OldKey, Old: []wire.Value{text("1"), {Kind: wire.KindNull}}}, &users,
			`22:13:20.123 DELETE public.users key={"id":1} before={"id":1}`},
		{"truncate", wire.Change{Op: wire.OpTruncate, TruncateRels: []int32{0}}, &users,
			`22:13:20.123 TRUNCATE public.users`},
		{"message", wire.Change{Op: wire.OpMessage, Prefix: "outbox", Content: []byte(`{"a":1}`)}, nil,
			`22:13:20.123 MESSAGE outbox content="{\"a\":1}"`},
		{"binary message", wire.Change{Op: wire.OpMessage, Prefix: "bin", Content: []byte{0xff, 0}}, nil,
			`22:13:20.123 MESSAGE bin content_base64="/wA="`},
		{"name cannot forge a line", wire.Change{Op: wire.OpInsert, New: []wire.Value{text("1")}}, &evil,
			`22:13:20.123 INSERT public."x\nINSERT public.fake" key={"id":1} after={"id":1}`},
	}
	for _, tt := range tests {
		for _, env := range envelopes(t) {
			t.Run(tt.name+"/"+env.name, func(t *testing.T) {
				var out bytes.Buffer
				s := New(&out, Text, time.UTC)
				writeAs(t, s, env.r, &envelope.Event{Source: &src, Tx: &tx, Change: &tt.change, Rel: tt.rel, ID: "id"})
				if got := out.String(); got != tt.want+"\n" {
					t.Fatalf("got  %q\nwant %q", got, tt.want+"\n")
				}
			})
		}
	}
}

// renderer is what the relay uses of an envelope to print an event.
type renderer interface {
	Append([]byte, *envelope.Event) ([]byte, error)
	Document(b []byte, e *envelope.Event, body []byte) []byte
}

// envelopes are the envelopes whose documents the sink prints: the text
// line is the same for all.
func envelopes(t *testing.T) []struct {
	name string
	r    renderer
} {
	structured, err := envelope.NewCloudEvents(envelope.CloudEventsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	binary, err := envelope.NewCloudEvents(envelope.CloudEventsConfig{Binary: true})
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		r    renderer
	}{{"native", envelope.NewNative()}, {"cloudevents-structured", structured}, {"cloudevents-binary", binary}}
}

// A CloudEvent prints as its JSON document in both content modes.
func TestJSONCloudEvents(t *testing.T) {
	ev := &envelope.Event{Source: &src, Tx: &tx, Rel: &users, ID: "app.1.1:100:0",
		Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{text("1"), text("ann")}}}
	want := `{"specversion":"1.0","id":"app.1.1:100:0","source":"/pgjet/app","type":"io.pgjet.public.users.insert",` +
		`"subject":"public.users","time":"2023-11-14T22:13:20.123Z","datacontenttype":"application/json",` +
		`"data":{"op":"insert","source":"app","schema":"public","table":"users","lsn":"0/100","xid":1,` +
		`"commit_time":"2023-11-14T22:13:20.123Z","index":0,"key":{"id":1},"before":null,"after":{"id":1,"name":"ann"}}}` + "\n"
	for _, env := range envelopes(t)[1:] {
		var out bytes.Buffer
		writeAs(t, New(&out, JSON, time.UTC), env.r, ev)
		if out.String() != want {
			t.Errorf("%s:\n%s\nwant\n%s", env.name, out.String(), want)
		}
	}
}

func TestJSONFormats(t *testing.T) {
	ev := &envelope.Event{Source: &src, Tx: &tx, Rel: &users,
		Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{text("1"), text("ann")}}}
	doc, err := envelope.NewNative().Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	var compact, pretty bytes.Buffer
	for _, f := range []struct {
		format Format
		out    *bytes.Buffer
	}{{JSON, &compact}, {JSONPretty, &pretty}} {
		s := New(f.out, f.format, time.UTC)
		write(t, s, ev)
		write(t, s, ev)
	}
	if want := string(doc) + "\n" + string(doc) + "\n"; compact.String() != want {
		t.Errorf("json:\n%s\nwant\n%s", compact.String(), want)
	}
	if !strings.HasPrefix(pretty.String(), "{\n  \"op\": \"insert\",\n") || strings.Count(pretty.String(), "\n}\n") != 2 {
		t.Errorf("json-pretty:\n%s", pretty.String())
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Off, "json": JSON, "json-pretty": JSONPretty, "text": Text} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) succeeded")
	}
}

func write(t *testing.T, s *Sink, ev *envelope.Event) {
	t.Helper()
	writeAs(t, s, envelope.NewNative(), ev)
}

// writeAs writes ev as the relay does in envelope r.
func writeAs(t *testing.T, s *Sink, r renderer, ev *envelope.Event) {
	t.Helper()
	body, err := r.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ev, r.Document(nil, ev, body)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Transaction and relation events, and transaction groups, print as one
// text line each: what they are and their document.
func TestTextOfTransactionEvents(t *testing.T) {
	var out bytes.Buffer
	s := New(&out, Text, time.UTC)
	tx := &wire.Tx{Xid: 7, CommitLSN: 0x10, CommitTime: 1_700_000_000_000_000}
	src := &wire.Source{Name: "app"}
	for _, e := range []*envelope.Event{
		{Source: src, Tx: tx, Kind: envelope.KindBegin},
		{Source: src, Tx: tx, Kind: envelope.KindCommit, Count: 1},
		{Source: src, Tx: tx, Kind: envelope.KindRelation, Rel: &wire.Relation{Schema: "public", Table: "t"}},
		{Source: src, Tx: tx}, // a group's message
	} {
		doc, err := envelope.NewNative().Append(nil, e)
		if e.Kind == envelope.KindChange {
			doc, err = []byte(`{"source":"app","events":[]}`), nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(e, doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"22:13:20.000 BEGIN {", "22:13:20.000 COMMIT {", "22:13:20.000 RELATION {", "22:13:20.000 GROUP {"}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("printed:\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d %q, want it to start with %q", i, lines[i], w)
		}
	}
}
