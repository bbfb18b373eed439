package envelope

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/pgjet/pgjet/shared/wire"
)

// changeAttrs are the attributes of an event in the change form.
type changeAttrs struct {
	attrs
	lsn, xid, index string
}

// changeOptionSets are the settings the change form's golden files cover,
// each in both modes.
var changeOptionSets = []struct {
	name     string
	settings map[string]any
}{
	{"default", nil},
	{"seed", map[string]any{"type_prefix": "com.acme.users"}},
	{"source_template", map[string]any{"data": "change", "source": "https://db.example.com/{source}/{schema}/{table}?v=1", "type_prefix": "x"}},
	{"fixed_source", map[string]any{"source": "urn:pgjet:shop"}},
}

func newTestCE(t testing.TB, settings map[string]any, mode string) Renderer {
	t.Helper()
	s := map[string]any{"mode": mode}
	for k, v := range settings {
		s[k] = v
	}
	r, err := New("cloudevents", Options{Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantChangeData builds the change form's data of ev from its native
// document, the oracle for values.
func wantChangeData(t testing.TB, ev *Event) []byte {
	t.Helper()
	native, err := NewNative().Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	var n map[string]json.RawMessage
	if err := json.Unmarshal(native, &n); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	field := func(k string, v json.RawMessage) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(k) + ":")
		b.Write(v)
	}
	b.WriteByte('{')
	letter := map[wire.Op]string{wire.OpInsert: "c", wire.OpUpdate: "u", wire.OpDelete: "d", wire.OpTruncate: "t", wire.OpMessage: "m"}[ev.Change.Op]
	if ev.Change.Op == wire.OpMessage {
		field("op", json.RawMessage(`"`+letter+`"`))
		for _, k := range []string{"prefix", "content", "content_base64", "transactional"} {
			if v, ok := n[k]; ok {
				field(k, v)
			}
		}
	} else {
		field("before", n["before"])
		field("after", n["after"])
		field("op", json.RawMessage(`"`+letter+`"`))
		for _, k := range []string{"unchanged", "options"} {
			if v, ok := n[k]; ok {
				field(k, v)
			}
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

// ceChange renders ev with the settings in both modes and checks each:
// with sdk-go (the structured body parses, the binary message reads through
// sdk-go's JetStream binding, both validate) or, without sdk, by decoding it
// by hand, which a fuzz run can afford. Both carry want, data is
// wantChangeData's, and a binary event printed as one document is the
// structured body. It returns the structured body and the binary message.
func ceChange(t *testing.T, settings map[string]any, ev *Event, want changeAttrs, sdk bool) (structured []byte, binary *nats.Msg) {
	t.Helper()
	wantData := wantChangeData(t, ev)
	for _, mode := range []string{"structured", "binary"} {
		r := newTestCE(t, settings, mode)
		body, err := r.Append([]byte("keep"), ev)
		if err != nil {
			t.Fatal(err)
		}
		body = body[len("keep"):]
		msg := &nats.Msg{Subject: "x", Data: body, Header: nats.Header(HeaderOf(r, ev))}
		msg.Header.Set("Nats-Msg-Id", ev.ID)
		var got changeAttrs
		var specVersion, contentType string
		var data []byte
		if mode == "binary" {
			binary = msg
			checkBinaryHeaders(t, Header(msg.Header))
			if msg.Header.Get("Content-Type") != "application/json" {
				t.Errorf("binary Content-Type %q", msg.Header.Get("Content-Type"))
			}
			if doc := r.Document(nil, ev, body); !bytes.Equal(doc, structured) {
				t.Errorf("binary document differs from the structured body:\n%s\n%s", doc, structured)
			}
		} else {
			structured = body
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			if msg.Header.Get("Content-Type") != "application/cloudevents+json" || len(msg.Header) != 2 {
				t.Errorf("structured headers %v", msg.Header)
			}
			if doc := r.Document(nil, ev, body); !bytes.Equal(doc, body) {
				t.Errorf("structured document %s", doc)
			}
		}
		if sdk {
			var e *event.Event
			if mode == "binary" {
				e, err = binding.ToEvent(context.Background(), cejs.NewMessage(msg))
				if err != nil {
					t.Fatalf("sdk-go cannot read the binary message: %v\n%v", err, msg.Header)
				}
			} else {
				ne := event.New()
				e = &ne
				if err := e.UnmarshalJSON(body); err != nil {
					t.Fatalf("sdk-go cannot read %s: %v", body, err)
				}
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid CloudEvent (%s): %v", mode, err)
			}
			if e.DataSchema() != "" || len(e.Extensions()) != 3 {
				t.Errorf("%s: attributes %s", mode, e.Context)
			}
			ext := func(name string) string {
				v, ok := e.Extensions()[name].(string)
				if !ok {
					t.Errorf("%s: extension %s is %T, want a string", mode, name, e.Extensions()[name])
				}
				return v
			}
			specVersion, contentType, data = e.SpecVersion(), e.DataContentType(), e.Data()
			got = changeAttrs{attrs{e.ID(), e.Source(), e.Type(), e.Subject(), e.Time()}, ext("pgjetlsn"), ext("pgjetxid"), ext("pgjetindex")}
		} else if mode == "binary" {
			h := msg.Header
			specVersion, contentType, data = h.Get("ce-specversion"), h.Get("ce-datacontenttype"), body
			got.id, got.source, got.time = h.Get("ce-id"), h.Get("ce-source"), parseTime(t, h.Get("ce-time"))
			got.typ, got.subject = h.Get("ce-type"), h.Get("ce-subject")
			got.lsn, got.xid, got.index = h.Get("ce-pgjetlsn"), h.Get("ce-pgjetxid"), h.Get("ce-pgjetindex")
			if n := len(h); n != 12 {
				t.Errorf("binary: %d headers: %v", n, h)
			}
		} else {
			var j struct {
				SpecVersion, ID, Source, Type, Subject, Time, DataContentType string
				Lsn                                                           string `json:"pgjetlsn"`
				Xid                                                           string `json:"pgjetxid"`
				Index                                                         string `json:"pgjetindex"`
				Data                                                          json.RawMessage
			}
			if err := json.Unmarshal(body, &j); err != nil {
				t.Fatal(err)
			}
			var all map[string]json.RawMessage
			_ = json.Unmarshal(body, &all)
			if len(all) != 11 {
				t.Errorf("structured: %d attributes: %s", len(all), body)
			}
			specVersion, contentType, data = j.SpecVersion, j.DataContentType, j.Data
			got = changeAttrs{attrs{j.ID, j.Source, j.Type, j.Subject, parseTime(t, j.Time)}, j.Lsn, j.Xid, j.Index}
		}
		if mode == "binary" {
			// Neither sdk-go's NATS binding nor the headers percent-decode.
			got.id, got.source = percentDecode(t, got.id), percentDecode(t, got.source)
			got.typ, got.subject = percentDecode(t, got.typ), percentDecode(t, got.subject)
			if !bytes.Equal(body, wantData) {
				t.Errorf("binary body is not the data:\n%s\n%s", body, wantData)
			}
		}
		if specVersion != "1.0" || contentType != "application/json" || got.id != want.id || got.source != want.source ||
			got.typ != want.typ || got.subject != want.subject || !got.time.Equal(want.time) ||
			got.lsn != want.lsn || got.xid != want.xid || got.index != want.index {
			t.Errorf("%s attributes: %+v\nwant %+v", mode, got, want)
		}
		if !bytes.Equal(data, wantData) {
			t.Errorf("%s data:\n%s\nwant %s", mode, data, wantData)
		}
		for _, s := range []string{got.source, got.typ, got.subject} {
			checkCEString(t, s)
		}
		if u, err := url.Parse(got.source); err != nil || got.source == "" || strings.ContainsAny(got.source, " \"{}") {
			t.Errorf("source %q is not a URI-reference (%v, %v)", got.source, u, err)
		}
	}
	return structured, binary
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("time %q: %v", s, err)
	}
	return tm
}

// changeWant is what the change form with settings gives ev, from the
// fixture's source and transaction.
func changeWant(ev *Event, prefix, src, msgSrc string) changeAttrs {
	w := changeAttrs{attrs: attrs{id: ev.ID, time: time.UnixMicro(tx.CommitTime)}, lsn: "0/16B3748", xid: "734", index: strconv.FormatUint(ev.Index, 10)}
	w.typ = prefix + map[wire.Op]string{wire.OpInsert: ".created", wire.OpUpdate: ".updated", wire.OpDelete: ".deleted",
		wire.OpTruncate: ".truncated", wire.OpMessage: ".message"}[ev.Change.Op]
	if ev.Change.Op == wire.OpMessage {
		w.subject, w.source = ev.Change.Prefix, msgSrc
	} else {
		w.subject, w.source = ev.Rel.Schema+"."+ev.Rel.Table, strings.NewReplacer("{schema}", ev.Rel.Schema, "{table}", ev.Rel.Table).Replace(src)
	}
	return w
}

// TestCloudEventsChangeGolden renders every golden case in the change form
// for each option set and mode, each checked with sdk-go.
func TestCloudEventsChangeGolden(t *testing.T) {
	wants := map[string]struct{ prefix, src, msgSrc string }{
		"default":         {"io.pgjet", "/pgjet/app/{schema}.{table}", "/pgjet/app"},
		"seed":            {"com.acme.users", "/pgjet/app/{schema}.{table}", "/pgjet/app"},
		"source_template": {"x", "https://db.example.com/app/{schema}/{table}?v=1", "https://db.example.com/app"},
		"fixed_source":    {"io.pgjet", "urn:pgjet:shop", "urn:pgjet:shop"},
	}
	for _, set := range changeOptionSets {
		w := wants[set.name]
		for _, gc := range goldenCases {
			t.Run(set.name+"/"+gc.name, func(t *testing.T) {
				ev := gc.ev
				ev.Source, ev.Tx = source, tx
				ev.ID = eventID(&ev)
				structured, binary := ceChange(t, set.settings, &ev, changeWant(&ev, w.prefix, w.src, w.msgSrc), true)
				dir := filepath.Join("testdata", "cloudevents", "change", set.name)
				golden(t, filepath.Join(dir, "structured", gc.name+".golden"), append(structured, '\n'))
				golden(t, filepath.Join(dir, "binary", gc.name+".golden"), binaryMessage(binary))
			})
		}
	}
}

// TestCloudEventsSeedExample renders the seed's INSERT and checks it is the
// event its documentation shows, but for id, time and the names.
func TestCloudEventsSeedExample(t *testing.T) {
	rel := &wire.Relation{Schema: "public", Table: "users", Columns: users.Columns[:2]}
	src := &wire.Source{Name: "users-postgres", SystemID: 1, Timeline: 1}
	ev := Event{Source: src, Tx: tx, Rel: rel, Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{t_("1"), t_("alice@example.com")}}}
	ev.ID = eventID(&ev)
	r := newTestCE(t, map[string]any{"type_prefix": "com.acme.users"}, "structured")
	body, err := r.Append(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"users-postgres.1.1:16b3748:0","source":"/pgjet/users-postgres/public.users",` +
		`"type":"com.acme.users.created","subject":"public.users","time":"2026-11-23T09:00:00.123456Z",` +
		`"datacontenttype":"application/json","pgjetlsn":"0/16B3748","pgjetxid":"734","pgjetindex":"0",` +
		`"data":{"before":null,"after":{"id":1,"email":"alice@example.com"},"op":"c"}}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

// TestCloudEventsDataSetting: data native is the form of the flags, byte
// for byte, in both modes.
func TestCloudEventsDataSetting(t *testing.T) {
	for _, gc := range goldenCases {
		ev := gc.ev
		ev.Source, ev.Tx = source, tx
		ev.ID = eventID(&ev)
		for _, binary := range []bool{false, true} {
			mode := map[bool]string{false: "structured", true: "binary"}[binary]
			r := newTestCE(t, map[string]any{"data": "native"}, mode)
			c, err := NewCloudEvents(CloudEventsConfig{Binary: binary})
			if err != nil {
				t.Fatal(err)
			}
			got, err1 := r.Append(nil, &ev)
			want, err2 := c.Append(nil, &ev)
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Errorf("%s %s: data native differs from the native form (%v, %v):\n%s\n%s", gc.name, mode, err1, err2, got, want)
			}
			if g, w := binaryMessage(&nats.Msg{Header: nats.Header(HeaderOf(r, &ev))}), binaryMessage(&nats.Msg{Header: nats.Header(HeaderOf(c, &ev))}); !bytes.Equal(g, w) {
				t.Errorf("%s %s: headers differ:\n%s\n%s", gc.name, mode, g, w)
			}
		}
	}
}

// TestCloudEventsSourceTemplates: where the placeholders go, what messages
// get, and that values always make one path segment each.
func TestCloudEventsSourceTemplates(t *testing.T) {
	one := &wire.Relation{Schema: "public", Table: "users", Columns: users.Columns[:1]}
	odd := &wire.Relation{Schema: "my.schema", Table: "..", Columns: users.Columns[:1]}
	oddSrc := &wire.Source{Name: "a b/é", SystemID: 1, Timeline: 1}
	tests := []struct {
		settings      map[string]any
		rel           *wire.Relation
		src           *wire.Source
		want, wantMsg string
	}{
		{nil, one, source, "/pgjet/app/public.users", "/pgjet/app"},
		{nil, odd, oddSrc, "/pgjet/a%20b%2F%C3%A9/my%2Eschema.%2E%2E", "/pgjet/a%20b%2F%C3%A9"},
		{map[string]any{"data": "native"}, one, source, "/pgjet/app", "/pgjet/app"},
		{map[string]any{"data": "native", "source": "/db/{schema}.{table}"}, one, source, "/db/public.users", "/db"},
		{map[string]any{"source": "deltaforge/{source}/{schema}.{table}"}, one, source, "deltaforge/app/public.users", "deltaforge/app"},
		{map[string]any{"source": "/t/{table}/s/{schema}/x"}, one, source, "/t/users/s/public/x", "/t/s/x"},
		{map[string]any{"source": "urn:pgjet:{source}:{schema}:{table}"}, one, source, "urn:pgjet:app:public:users", "urn:pgjet:app"},
		{map[string]any{"source": "{table}/x"}, one, source, "users/x", "x"},
		{map[string]any{"source": "urn:pgjet:{source}/{table}"}, odd, oddSrc, "urn:pgjet:a%20b%2F%C3%A9/%2E%2E", "urn:pgjet:a%20b%2F%C3%A9"},
		{map[string]any{"source": "https://{source}.example.com/{schema}#{table}"}, one, source, "https://app.example.com/public#users", "https://app.example.com"},
		{map[string]any{"source": "/fixed"}, odd, oddSrc, "/fixed", "/fixed"},
	}
	for _, tt := range tests {
		row := Event{Source: tt.src, Tx: tx, Rel: tt.rel, Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{t_("1")}}}
		msg := Event{Source: tt.src, Tx: tx, Change: &wire.Change{Op: wire.OpMessage, Prefix: "p", Content: []byte("c")}}
		for _, mode := range []string{"structured", "binary"} {
			r := newTestCE(t, tt.settings, mode)
			for _, c := range []struct {
				ev   *Event
				want string
			}{{&row, tt.want}, {&msg, tt.wantMsg}, {&row, tt.want}} { // the third from the cache
				c.ev.ID = "id"
				body, err := r.Append(nil, c.ev)
				if err != nil {
					t.Fatalf("%v: %v", tt.settings, err)
				}
				var got string
				if mode == "binary" {
					got = HeaderOf(r, c.ev).Get("ce-source")
				} else {
					var j struct{ Source string }
					if err := json.Unmarshal(body, &j); err != nil {
						t.Fatal(err)
					}
					got = j.Source
				}
				if want := headerValueIf(mode == "binary", c.want); got != want {
					t.Errorf("%v %s %s: source %q, want %q", tt.settings, mode, c.ev.Change.Op, got, want)
				}
			}
		}
	}
}

func headerValueIf(header bool, s string) string {
	if header {
		return headerValue(s)
	}
	return s
}

func TestCloudEventsChangeOptionErrors(t *testing.T) {
	tests := []struct {
		settings map[string]any
		want     string
	}{
		{map[string]any{"data": "debezium"}, `data: "debezium": use change or native`},
		{map[string]any{"data": 1}, "data: must be a string"},
		{map[string]any{"mode": "batch"}, `mode: "batch": use structured or binary`},
		{map[string]any{"source": "/pgjet/{src}"}, `source: "/pgjet/{src}": unknown placeholder {src}: use {source}, {schema} or {table}`},
		{map[string]any{"source": "/pgjet/{source"}, `source: "/pgjet/{source": a '{' or '}' outside`},
		{map[string]any{"source": "/pgjet/source}"}, `a '{' or '}' outside`},
		{map[string]any{"source": "{source}:x/{table}"}, `{source} in the URI scheme`},
		{map[string]any{"source": "{schema}.{table}"}, `a message's source leaves out the parts with {schema} or {table}`},
		{map[string]any{"source": "/my db/{table}"}, `use a URI-reference`},
		{map[string]any{"type_prefix": "com..acme"}, `type_prefix: "com..acme"`},
		{map[string]any{"colour": "red"}, "colour: unknown key"},
	}
	for _, tt := range tests {
		_, err := New("cloudevents", Options{Settings: tt.settings})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error with %q", tt.settings, err, tt.want)
		}
		if _, ok := err.(*OptionError); !ok {
			t.Errorf("%v: %T, want an *OptionError", tt.settings, err)
		}
	}
}

// TestCloudEventsChangeErrors: a change the form cannot render comes back
// as an error with the buffer unchanged, in both modes.
func TestCloudEventsChangeErrors(t *testing.T) {
	bad := user("1")
	bad[3] = t_("12abc")
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"undecodable value", Event{Change: &wire.Change{Op: wire.OpInsert, New: bad}, Rel: users}, "decode public.users.balance: invalid numeric"},
		{"undecodable old value", Event{Change: &wire.Change{Op: wire.OpDelete, OldKind: wire.OldFull, Old: bad}, Rel: users}, "decode public.users.balance"},
		{"old of unknown kind", Event{Change: &wire.Change{Op: wire.OpDelete, OldKind: 'x', Old: user("1")}, Rel: users}, "old tuple of unknown kind"},
		{"short tuple", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")[:2]}, Rel: users}, "tuple has 2 values"},
		{"no relation", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}, "no relation"},
		{"unknown op", Event{Change: &wire.Change{Op: 42}, Rel: users}, "unknown op 42"},
		{"no change", Event{Rel: users}, "lacks its source, transaction or change"},
	}
	for _, mode := range []string{"structured", "binary"} {
		r := newTestCE(t, nil, mode)
		for _, tt := range tests {
			ev := tt.ev
			ev.Source, ev.Tx, ev.ID = source, tx, "id"
			b, err := r.Append([]byte("keep"), &ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %s: error %v, want one with %q", tt.name, mode, err, tt.want)
			}
			if string(b) != "keep" {
				t.Errorf("%s %s: buffer changed on error: %q", tt.name, mode, b)
			}
		}
	}
}

// checkCEChangeHostile renders the events of hostileEvents(s) in the change
// form, with s as the source name of the source attribute (the id keeps
// the plain one: it is the Nats-Msg-Id verbatim) and a template that uses
// every placeholder.
func checkCEChangeHostile(t *testing.T, s string, sdk bool) {
	t.Helper()
	settings := map[string]any{"source": "https://db.example.com/{source}/{schema}.{table}?q=1#t{table}", "type_prefix": "com.acme.users"}
	seg := string(appendPathSegment(nil, s))
	for _, ev := range hostileEvents(s) {
		ev.Source = source
		ev.ID = eventID(&ev)
		ev.Source = &wire.Source{Name: s}
		want := changeWant(&ev, "com.acme.users", "", "https://db.example.com/"+seg)
		tok := string(appendToken(nil, s))
		if ev.Change.Op == wire.OpMessage {
			want.subject = tok
		} else {
			want.subject = tok + "." + tok
			want.source = "https://db.example.com/" + seg + "/" + seg + "." + seg + "?q=1#t" + seg
		}
		ceChange(t, settings, &ev, want, sdk)
	}
}
