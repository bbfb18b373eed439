package envelope

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/nats-io/nats.go"

	"github.com/pgjet/pgjet/shared/wire"
)

// attrs are the attributes an event must carry.
type attrs struct {
	id, source, typ, subject string
	time                     time.Time
}

// ceModes renders ev in both content modes and checks each with sdk-go:
// the structured body parses as a valid event, the binary message reads as
// a valid event through sdk-go's JetStream binding, both carry want and
// the native document as data. It returns the structured body and the
// binary message (headers and body).
func ceModes(t *testing.T, cfg CloudEventsConfig, ev *Event, want attrs) (structured []byte, binary *nats.Msg) {
	t.Helper()
	native, err := NewNative().Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []bool{false, true} {
		cfg.Binary = bin
		c, err := NewCloudEvents(cfg)
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.Append([]byte("keep"), ev)
		if err != nil {
			t.Fatal(err)
		}
		body = body[len("keep"):]
		msg := &nats.Msg{Subject: "x", Data: body, Header: nats.Header(HeaderOf(c, ev))}
		msg.Header.Set("Nats-Msg-Id", ev.ID)
		var got *event.Event
		if bin {
			binary = msg
			if !bytes.Equal(body, native) {
				t.Fatalf("binary body is not the native document:\n%s\n%s", body, native)
			}
			checkBinaryHeaders(t, Header(msg.Header))
			if msg.Header.Get("Content-Type") != "application/json" {
				t.Errorf("binary Content-Type %q", msg.Header.Get("Content-Type"))
			}
			got, err = binding.ToEvent(context.Background(), cejs.NewMessage(msg))
			if err != nil {
				t.Fatalf("sdk-go cannot read the binary message: %v\n%v", err, msg.Header)
			}
			// sdk-go's NATS binding does not percent-decode header values.
			got.SetID(percentDecode(t, got.ID()))
			got.SetSource(percentDecode(t, got.Source()))
			got.SetType(percentDecode(t, got.Type()))
			got.SetSubject(percentDecode(t, got.Subject()))
		} else {
			structured = body
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			if msg.Header.Get("Content-Type") != "application/cloudevents+json" || len(msg.Header) != 2 {
				t.Errorf("structured headers %v", msg.Header)
			}
			e := event.New()
			got = &e
			if err := got.UnmarshalJSON(body); err != nil {
				t.Fatalf("sdk-go cannot read %s: %v", body, err)
			}
			// The document stdout prints is the body itself.
			if doc := c.Document(nil, ev, body); !bytes.Equal(doc, body) {
				t.Errorf("structured document %s", doc)
			}
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("invalid CloudEvent (binary %v): %v", bin, err)
		}
		mode := map[bool]string{false: "structured", true: "binary"}[bin]
		if got.SpecVersion() != "1.0" || got.ID() != want.id || got.Source() != want.source || got.Type() != want.typ ||
			got.Subject() != want.subject || !got.Time().Equal(want.time) || got.DataContentType() != "application/json" {
			t.Errorf("%s attributes: %s\nwant %+v", mode, got.Context, want)
		}
		if got.DataSchema() != "" || len(got.Extensions()) != 0 {
			t.Errorf("%s: unexpected attributes: %s", mode, got.Context)
		}
		if !bytes.Equal(got.Data(), native) {
			t.Errorf("%s data is not the native document:\n%s\n%s", mode, got.Data(), native)
		}
		// Not the id: it is the Nats-Msg-Id verbatim, and holds what the
		// source name holds (the collector allows letters, digits, '_', '-').
		for _, s := range []string{got.Source(), got.Type(), got.Subject()} {
			checkCEString(t, s)
		}
		if bin {
			// Printed as one document, a binary event reads as the structured one.
			doc := c.Document(nil, ev, body)
			if !bytes.Equal(doc, structured) {
				t.Errorf("binary document differs from the structured body:\n%s\n%s", doc, structured)
			}
		}
	}
	return structured, binary
}

// ceShape checks what ceModes checks without sdk-go, which makes a fuzz
// run many times slower: the structured body is valid JSON with the want
// attributes and the native document as data, the binary headers are legal
// and decode to the same attributes.
func ceShape(t *testing.T, ev *Event, want attrs) {
	t.Helper()
	native, err := NewNative().Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	wantTime := want.time.UTC().Format(time.RFC3339Nano)
	for _, bin := range []bool{false, true} {
		c, err := NewCloudEvents(CloudEventsConfig{Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		body, err := c.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		h := HeaderOf(c, ev)
		var got struct {
			SpecVersion, ID, Source, Type, Subject, Time, DataContentType string
			Data                                                          json.RawMessage
		}
		if bin {
			if !bytes.Equal(body, native) {
				t.Fatalf("binary body is not the native document:\n%s\n%s", body, native)
			}
			checkBinaryHeaders(t, h)
			got.SpecVersion, got.DataContentType = h.Get("ce-specversion"), h.Get("ce-datacontenttype")
			got.ID, got.Source = percentDecode(t, h.Get("ce-id")), percentDecode(t, h.Get("ce-source"))
			got.Type, got.Subject = percentDecode(t, h.Get("ce-type")), percentDecode(t, h.Get("ce-subject"))
			got.Time, got.Data = h.Get("ce-time"), body
		} else {
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
		}
		if got.SpecVersion != "1.0" || got.ID != want.id || got.Source != want.source || got.Type != want.typ ||
			got.Subject != want.subject || got.Time != wantTime || got.DataContentType != "application/json" {
			t.Fatalf("binary %v: attributes %+v\nwant %+v", bin, got, want)
		}
		if !bytes.Equal(got.Data, native) {
			t.Fatalf("binary %v: data is not the native document:\n%s\n%s", bin, got.Data, native)
		}
		for _, s := range []string{got.Source, got.Type, got.Subject} {
			checkCEString(t, s)
		}
	}
}

// checkBinaryHeaders checks that the envelope's header values keep to what
// the NATS binding allows: printable ASCII without space or '"', '%' only to
// escape. (Nats-Msg-Id is the relay's.)
func checkBinaryHeaders(t *testing.T, h Header) {
	t.Helper()
	for k, vs := range h {
		if k == "Nats-Msg-Id" {
			continue
		}
		if len(vs) != 1 {
			t.Errorf("header %s has %d values", k, len(vs))
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				ch := v[i]
				if ch <= ' ' || ch >= 0x7f || ch == '"' {
					t.Errorf("header %s: byte %#x in %q", k, ch, v)
				}
				if ch == '%' && (i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2])) {
					t.Errorf("header %s: bare %% in %q", k, v)
				}
			}
		}
	}
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func percentDecode(t *testing.T, s string) string {
	t.Helper()
	d, err := url.PathUnescape(s)
	if err != nil || !utf8.ValidString(d) {
		t.Fatalf("header value %q does not percent-decode to UTF-8: %v", s, err)
	}
	return d
}

// checkCEString checks s is a non-empty CloudEvents String: no control
// characters, no noncharacters (and valid UTF-8, so no surrogates).
func checkCEString(t *testing.T, s string) {
	t.Helper()
	if s == "" || !utf8.ValidString(s) {
		t.Errorf("attribute %q is empty or not UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || noncharacter(r) {
			t.Errorf("attribute %q holds %U", s, r)
		}
	}
}

func eventID(ev *Event) string {
	return string(wire.AppendEventID(nil, *ev.Source, ev.Tx.CommitLSN, ev.Index, -1))
}

func TestCloudEventsGolden(t *testing.T) {
	commit := time.UnixMicro(tx.CommitTime)
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			ev := gc.ev
			ev.Source = source
			if ev.Tx == nil {
				ev.Tx = tx
			}
			ev.ID = eventID(&ev)
			want := attrs{id: ev.ID, source: "/pgjet/app", time: commit}
			if ev.Change.Op == wire.OpMessage {
				want.typ, want.subject = "io.pgjet.message", ev.Change.Prefix
			} else {
				want.subject = ev.Rel.Schema + "." + ev.Rel.Table
				want.typ = "io.pgjet." + want.subject + "." + ev.Change.Op.String()
			}
			structured, binary := ceModes(t, CloudEventsConfig{}, &ev, want)
			golden(t, filepath.Join("testdata", "cloudevents", "structured", gc.name+".golden"), append(structured, '\n'))
			golden(t, filepath.Join("testdata", "cloudevents", "binary", gc.name+".golden"), binaryMessage(binary))
		})
	}
}

// binaryMessage prints a message as headers, one per line in name order, a
// blank line and the body.
func binaryMessage(m *nats.Msg) []byte {
	var b bytes.Buffer
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%s: %s\n", k, m.Header.Get(k))
	}
	fmt.Fprintf(&b, "\n%s\n", m.Data)
	return b.Bytes()
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s\ngot  %s\nwant %s", path, got, want)
	}
}

func TestCloudEventsConfig(t *testing.T) {
	ev := Event{Source: source, Tx: tx, Rel: users, Index: 2, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}
	ev.ID = eventID(&ev)
	commit := time.UnixMicro(tx.CommitTime)
	tests := []struct {
		name string
		cfg  CloudEventsConfig
		want attrs
	}{
		{"defaults", CloudEventsConfig{}, attrs{source: "/pgjet/app", typ: "io.pgjet.public.users.insert"}},
		{"absolute source", CloudEventsConfig{Source: "https://db.example.com/shop?x=1#f", TypePrefix: "com.acme.cdc"},
			attrs{source: "https://db.example.com/shop?x=1#f", typ: "com.acme.cdc.public.users.insert"}},
		{"relative source", CloudEventsConfig{Source: "shop", TypePrefix: "x"}, attrs{source: "shop", typ: "x.public.users.insert"}},
		{"urn source", CloudEventsConfig{Source: "urn:pgjet:shop%20db"}, attrs{source: "urn:pgjet:shop%20db", typ: "io.pgjet.public.users.insert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.id, tt.want.subject, tt.want.time = ev.ID, "public.users", commit
			ceModes(t, tt.cfg, &ev, tt.want)
		})
	}

	bad := []struct {
		cfg  CloudEventsConfig
		want string
	}{
		{CloudEventsConfig{Source: "has space"}, `source: "has space": use a URI-reference`},
		{CloudEventsConfig{Source: "/é"}, "source: "},
		{CloudEventsConfig{Source: "http://[::1"}, "source: "},
		{CloudEventsConfig{Source: "a\nb"}, "source: "},
		{CloudEventsConfig{TypePrefix: "com..acme"}, `type_prefix: "com..acme": use dot-separated words`},
		{CloudEventsConfig{TypePrefix: ".com"}, "type_prefix: "},
		{CloudEventsConfig{TypePrefix: "com.*"}, "type_prefix: "},
		{CloudEventsConfig{TypePrefix: "com acme"}, "type_prefix: "},
	}
	for _, tt := range bad {
		if _, err := NewCloudEvents(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewCloudEvents(%+v) = %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
}

// A name that holds '.', spaces or other characters a subject token escapes
// comes out escaped the same way in type and subject, so that splitting the
// type on '.' always gives the prefix's words and three more tokens.
func TestCloudEventsNamesAsSubjectTokens(t *testing.T) {
	rel := &wire.Relation{Schema: "my.schema", Table: "a b\u00a0\ufffe", Columns: []wire.Column{{Name: "id", TypeOID: pgtype.Int4OID, Key: true}}}
	src := &wire.Source{Name: "odd name/é", SystemID: 1, Timeline: 1}
	ev := Event{Source: src, Tx: tx, Rel: rel, Change: &wire.Change{Op: wire.OpInsert, New: []wire.Value{t_("1")}}}
	ev.ID = eventID(&ev)
	want := attrs{id: ev.ID, source: "/pgjet/odd%20name%2F%C3%A9", subject: "my%2Eschema.a%20b%C2%A0%EF%BF%BE",
		typ: "io.pgjet.my%2Eschema.a%20b%C2%A0%EF%BF%BE.insert", time: time.UnixMicro(tx.CommitTime)}
	_, bin := ceModes(t, CloudEventsConfig{}, &ev, want)
	if got := bin.Header.Get("ce-type"); got != "io.pgjet.my%252Eschema.a%2520b%25C2%25A0%25EF%25BF%25BE.insert" {
		t.Errorf("ce-type %q", got)
	}
	if got := bin.Header.Get("ce-id"); got != "odd%20name/%C3%A9.1.1:16b3748:0" {
		t.Errorf("ce-id %q", got)
	}
}

func TestCloudEventsErrors(t *testing.T) {
	bad := user("1")
	bad[3] = t_("12abc")
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"undecodable value", Event{Change: &wire.Change{Op: wire.OpInsert, New: bad}, Rel: users}, "decode public.users.balance: invalid numeric"},
		{"no relation", Event{Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}, "no relation"},
		{"unknown op", Event{Change: &wire.Change{Op: 42}, Rel: users}, "unknown op 42"},
		{"no change", Event{Rel: users}, "lacks its source, transaction or change"},
	}
	for _, binary := range []bool{false, true} {
		c, err := NewCloudEvents(CloudEventsConfig{Binary: binary})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s binary=%v", tt.name, binary), func(t *testing.T) {
				ev := tt.ev
				ev.Source, ev.Tx, ev.ID = source, tx, "id"
				b, err := c.Append([]byte("keep"), &ev)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one with %q", err, tt.want)
				}
				if string(b) != "keep" {
					t.Errorf("buffer changed on error: %q", b)
				}
			})
		}
	}
}

// checkCEHostile renders the events of hostileEvents(s) as CloudEvents in
// both modes and checks them with ceModes, or with ceShape unless sdk. The
// events keep a plain source
// name: it makes the id, which is the Nats-Msg-Id verbatim, and the
// collector allows only letters, digits, '_' and '-' in it. The source
// attribute is checked alone.
func checkCEHostile(t *testing.T, s string, sdk bool) {
	t.Helper()
	seg := string(appendPathSegment(nil, s))
	if name, err := url.PathUnescape(seg); err != nil || name != s || strings.Trim(seg, "%-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
		t.Fatalf("source name %q makes path segment %q", s, seg)
	}
	for _, ev := range hostileEvents(s) {
		ev.Source = source
		ev.ID = eventID(&ev)
		want := attrs{id: ev.ID, source: "/pgjet/app", time: time.UnixMicro(tx.CommitTime)}
		tok := string(appendToken(nil, s))
		if ev.Change.Op == wire.OpMessage {
			want.typ, want.subject = "io.pgjet.message", tok
		} else {
			want.subject = tok + "." + tok
			want.typ = "io.pgjet." + want.subject + "." + ev.Change.Op.String()
			if n := len(strings.Split(want.typ, ".")); n != 5 {
				t.Fatalf("type %q has %d tokens", want.typ, n)
			}
		}
		if sdk {
			ceModes(t, CloudEventsConfig{}, &ev, want)
		} else {
			ceShape(t, &ev, want)
		}
	}
}

func TestCloudEventsHostileContent(t *testing.T) {
	for _, s := range hostile {
		checkCEHostile(t, s, true)
		checkCEChangeHostile(t, s, true)
	}
}

func FuzzCloudEventsHostileContent(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkCEHostile(t, s, false)
		checkCEChangeHostile(t, s, false)
	})
}

// BenchmarkCloudEvents renders the insert of BenchmarkNativeInsert as a
// CloudEvent in each mode and form, native being the baseline: the body alone, and the
// whole message (body and headers, Nats-Msg-Id included as the relay sets it).
func BenchmarkCloudEvents(b *testing.B) {
	ev := benchInsert()
	ev.ID = eventID(&ev)
	for _, what := range []string{"body", "message"} {
		for _, mode := range []string{"native", "structured", "binary", "change-structured", "change-binary"} {
			b.Run(what+"/"+mode, func(b *testing.B) {
				var r interface {
					Append([]byte, *Event) ([]byte, error)
					AddHeader(Header, *Event) int
				}
				if mode == "native" {
					r = NewNative()
				} else {
					c, err := NewCloudEvents(CloudEventsConfig{Binary: strings.HasSuffix(mode, "binary"), Change: strings.HasPrefix(mode, "change")})
					if err != nil {
						b.Fatal(err)
					}
					r = c
				}
				buf := make([]byte, 0, 4096)
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if buf, err = r.Append(buf[:0], &ev); err != nil {
						b.Fatal(err)
					}
					if what == "message" {
						h := Header{}
						r.AddHeader(h, &ev)
						h["Nats-Msg-Id"] = []string{ev.ID}
					}
				}
				b.SetBytes(int64(len(buf)))
			})
		}
	}
}

// The router's span travels as the CloudEvents distributed tracing
// extension: the traceparent attribute in structured mode, ce-traceparent
// in binary mode, read back as an extension by sdk-go; nothing without one.
func TestCloudEventsTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev := goldenCases[0].ev
	ev.Source, ev.Tx = source, tx
	ev.ID = eventID(&ev)
	for _, bin := range []bool{false, true} {
		c, err := NewCloudEvents(CloudEventsConfig{Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		for _, traced := range []bool{false, true} {
			e := ev
			if traced {
				e.TraceParent = tp
			}
			body, err := c.Append(nil, &e)
			if err != nil {
				t.Fatal(err)
			}
			msg := &nats.Msg{Subject: "x", Data: body, Header: nats.Header(HeaderOf(c, &e))}
			got, err := binding.ToEvent(context.Background(), cejs.NewMessage(msg))
			if err != nil {
				t.Fatalf("binary %v: %v", bin, err)
			}
			want := ""
			if traced {
				want = tp
			}
			if v, _ := got.Extensions()["traceparent"].(string); v != want {
				t.Errorf("binary %v, traced %v: traceparent extension %q, want %q", bin, traced, v, want)
			}
		}
	}
}
