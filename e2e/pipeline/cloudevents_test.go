package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
)

// Invariant: with --envelope cloudevents --cloudevents-data native, in
// structured and in binary mode,
// every committed change (and logical decoding message) arrives exactly once,
// in commit order, as a valid CloudEvent (sdk-go: parsed, or read through its
// JetStream binding, and validated) whose id is its Nats-Msg-Id and names its
// commit LSN and index, whose source is /pgjet/<source>, whose type and
// subject follow its table and op, whose time is its commit time, and whose
// data is byte for byte the event a native router publishes for the same
// change, with values equal to Postgres's to_jsonb.
func TestCloudEventsCarryEveryCommittedChange(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	e.collector()
	// Three routers on the one raw stream, each with its own consumer and output.
	e.router()
	modes := []struct{ mode, stream, prefix string }{
		{"structured", "CE_STRUCTURED", "ces"},
		{"binary", "CE_BINARY", "ceb"},
	}
	for _, m := range modes {
		e.router("--envelope", "cloudevents", "--cloudevents-data", "native", "--cloudevents-mode", m.mode,
			"--stream", m.stream, "--durable", "ce-"+m.mode, "--subject-prefix", m.prefix)
	}

	e.mixed(1)
	e.exec(`INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 500) g`)
	e.exec(`TRUNCATE events`)
	e.exec(`SELECT pg_logical_emit_message(true, 'outbox', '{"order": 42, "note": "café"}')`)
	e.exec(`SELECT pg_logical_emit_message(false, 'audit.trail', 'not transactional')`)
	const messages = 2

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	want := len(changes) + messages
	_, js := e.nats.Connect(t)
	native := readStream(ctx, t, js, "PGJET_EVENTS", want)
	nativeByID := map[string][]byte{}
	for _, m := range native {
		nativeByID[m.Headers().Get(jetstream.MsgIDHeader)] = m.Data()
	}

	for _, m := range modes {
		t.Run(m.mode, func(t *testing.T) {
			msgs := readStream(ctx, t, js, m.stream, want)
			var events []check.Event
			seenMessages := 0
			for _, msg := range msgs {
				ev := readCloudEvent(t, msg, m.mode == "binary")
				id := msg.Headers().Get(jetstream.MsgIDHeader)
				data := ev.Data()
				if nd, ok := nativeByID[id]; !ok || !bytes.Equal(data, nd) {
					t.Fatalf("%s: data differs from the native event with the same id:\n%s\n%s", id, data, nd)
				}
				op, rest := checkAttributes(t, m.prefix, msg.Subject(), ev)
				if op == "message" {
					seenMessages++
					continue
				}
				ce, err := check.ParseEvent(data)
				if err != nil {
					t.Fatal(err)
				}
				if ce.Op != op || rest != ce.Schema+"."+ce.Table {
					t.Errorf("%s: type %s and subject %s, data of a %s on %s.%s", id, ev.Type(), ev.Subject(), ce.Op, ce.Schema, ce.Table)
				}
				commit, err := time.Parse(time.RFC3339Nano, ce.CommitTime)
				if err != nil || !ev.Time().Equal(commit) {
					t.Errorf("%s: time %s, commit time %s", id, ev.Time(), ce.CommitTime)
				}
				lsn, err := check.ParseLSN(ce.LSN)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(id, fmt.Sprintf(":%x:%d", lsn, ce.Index)) && !strings.Contains(id, fmt.Sprintf(":%x:%d.", lsn, ce.Index)) {
					t.Errorf("id %s does not name commit LSN %s and index %d", id, ce.LSN, ce.Index)
				}
				ce.MsgID, ce.Subject = id, msg.Subject()
				if md, err := msg.Metadata(); err == nil {
					ce.Seq = md.Sequence.Stream
				}
				events = append(events, ce)
			}
			if seenMessages != messages {
				t.Errorf("%d logical decoding messages delivered, want %d", seenMessages, messages)
			}
			r := check.Check(changes, events)
			t.Logf("%s: %s", m.mode, r.String())
			if !r.OK() {
				t.Fatalf("invariant violated: %s", r.String())
			}
		})
	}
}

// readStream reads every message of stream, in order: want of them, then
// whatever comes within 2 s more (so that duplicates show).
func readStream(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string, want int) []jetstream.Msg {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	defer it.Stop()
	var out []jetstream.Msg
	for {
		var msg jetstream.Msg
		if len(out) < want {
			msg, err = it.Next(jetstream.NextContext(ctx))
		} else {
			msg, err = it.Next(jetstream.NextMaxWait(2 * time.Second))
		}
		if errors.Is(err, nats.ErrTimeout) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s after %d of %d messages: %v", stream, len(out), want, err)
		}
		out = append(out, msg)
	}
}

// readCloudEvent reads msg with sdk-go and validates it.
func readCloudEvent(t *testing.T, msg jetstream.Msg, binary bool) *event.Event {
	t.Helper()
	nm := &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}
	ev, err := binding.ToEvent(context.Background(), cejs.NewMessage(nm))
	if err != nil {
		t.Fatalf("%s: not a CloudEvent: %v", msg.Subject(), err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("%s: invalid CloudEvent: %v\n%s", msg.Subject(), err, ev)
	}
	contentType := "application/cloudevents+json"
	if binary {
		contentType = "application/json"
		// sdk-go's NATS binding leaves the percent-encoding of header values.
		for _, a := range []struct {
			get func() string
			set func(string)
		}{{ev.Type, ev.SetType}, {ev.Subject, ev.SetSubject}, {ev.Source, ev.SetSource}, {ev.ID, ev.SetID}} {
			v, err := url.PathUnescape(a.get())
			if err != nil {
				t.Fatalf("%s: header value %q: %v", msg.Subject(), a.get(), err)
			}
			a.set(v)
		}
	}
	if got := msg.Headers().Get("Content-Type"); got != contentType {
		t.Errorf("%s: Content-Type %q, want %q", msg.Subject(), got, contentType)
	}
	if ev.ID() != msg.Headers().Get(jetstream.MsgIDHeader) || ev.DataContentType() != "application/json" {
		t.Errorf("%s: id %q (Nats-Msg-Id %q), datacontenttype %q", msg.Subject(), ev.ID(), msg.Headers().Get(jetstream.MsgIDHeader), ev.DataContentType())
	}
	return ev
}

// checkAttributes checks source, type and subject against the NATS subject
// the event came on ({prefix}.{schema}.{table}.{op} or
// {prefix}._messages.{message prefix}). It returns the op (or "message") and
// the subject attribute.
func checkAttributes(t *testing.T, prefix, subj string, ev *event.Event) (op, subject string) {
	t.Helper()
	if ev.Source() != "/pgjet/e2e" {
		t.Errorf("%s: source %q, want /pgjet/e2e", subj, ev.Source())
	}
	tokens := strings.TrimPrefix(subj, prefix+".")
	if msgPrefix, ok := strings.CutPrefix(tokens, "_messages."); ok {
		if ev.Type() != "io.pgjet.message" || ev.Subject() != msgPrefix {
			t.Errorf("%s: type %q subject %q", subj, ev.Type(), ev.Subject())
		}
		return "message", ev.Subject()
	}
	i := strings.LastIndexByte(tokens, '.')
	op = tokens[i+1:]
	if ev.Type() != "io.pgjet."+tokens || ev.Subject() != tokens[:i] {
		t.Errorf("%s: type %q subject %q", subj, ev.Type(), ev.Subject())
	}
	return op, ev.Subject()
}
