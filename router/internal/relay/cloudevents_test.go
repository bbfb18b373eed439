package relay

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/stdout"
)

// commitTimes are the commit times of rawRecords' transactions, by the
// commit LSN part of the event id.
var commitTimes = map[string]int64{
	"1000": 1_700_000_000_000_000, "2000": 1_700_000_001_000_000, "3000": 1_700_000_002_000_000, "500000100": 1_700_000_003_000_000,
}

// With --envelope cloudevents, in both modes, every stored event is a valid
// CloudEvent (read back through sdk-go's JetStream binding) whose id is its
// Nats-Msg-Id, whose type and subject match its NATS subject, and whose
// data is the native envelope; stdout prints each as a CloudEvent; and a
// replay into the same stream stores nothing twice.
func TestCloudEventsAreStoredWithIDsAndDeduped(t *testing.T) {
	for _, binary := range []bool{false, true} {
		t.Run(map[bool]string{false: "structured", true: "binary"}[binary], func(t *testing.T) {
			e := newEnv(t)
			e.publishRaw(rawRecords()...)
			var out bytes.Buffer
			run := e.startEnvelope(&envelope.CloudEventsConfig{Binary: binary}, stdout.New(&out, stdout.JSON, time.UTC))
			got := e.waitOutputs(len(wantEvents))
			checkOutputs(t, got, wantEvents)
			e.waitAckFloor(3)
			if err := run.stop(t); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != len(got) {
				t.Fatalf("stdout has %d lines, want %d", len(lines), len(got))
			}
			for i, m := range got {
				ev := checkCloudEvent(t, m, binary)
				var printed event.Event
				if err := printed.UnmarshalJSON([]byte(lines[i])); err != nil {
					t.Fatalf("stdout line %d is not a CloudEvent: %v\n%s", i, err, lines[i])
				}
				if binary {
					// The header values are percent-encoded; the printed event is not.
					ev.SetType(unescape(t, ev.Type()))
					ev.SetSubject(unescape(t, ev.Subject()))
				}
				if printed.String() != ev.String() {
					t.Errorf("stdout line %d:\n%s\nwant the stored event\n%s", i, printed.String(), ev.String())
				}
			}

			// Republish one stored event as is: the stream dedupes it.
			m := got[0]
			ack, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
			if err != nil || !ack.Duplicate {
				t.Fatalf("republished event: ack %+v, %v; want a duplicate", ack, err)
			}
			// Replay the raw stream from the start into the same output.
			if err := e.js.DeleteConsumer(context.Background(), rawStream, durable); err != nil {
				t.Fatal(err)
			}
			replay := e.startEnvelope(&envelope.CloudEventsConfig{Binary: binary}, nil)
			e.waitAckFloor(3)
			if err := replay.stop(t); err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, e.outputs(), wantEvents)
			if st := replay.r.Stats(); st.Skipped+st.Duplicates != uint64(len(wantEvents)) {
				t.Errorf("replay stats %+v: want every event skipped or deduplicated", st)
			}
		})
	}
}

// checkCloudEvent reads stored message m as a CloudEvent and checks its
// attributes against its subject and Nats-Msg-Id.
func checkCloudEvent(t *testing.T, m *jetstream.RawStreamMsg, binary bool) *event.Event {
	t.Helper()
	msg := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
	id := m.Header.Get(jetstream.MsgIDHeader)
	ev, err := binding.ToEvent(context.Background(), cejs.NewMessage(msg))
	if err != nil {
		t.Fatalf("%s: sdk-go cannot read the message: %v", m.Subject, err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("%s: invalid CloudEvent: %v", m.Subject, err)
	}
	if binary {
		if m.Header.Get("ce-specversion") != "1.0" || m.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: headers %v", m.Subject, m.Header)
		}
		if !bytes.HasPrefix(m.Data, []byte(`{"op":`)) {
			t.Errorf("%s: binary body is not the native envelope: %s", m.Subject, m.Data)
		}
	} else if m.Header.Get("Content-Type") != "application/cloudevents+json" || m.Header.Get("ce-id") != "" {
		t.Errorf("%s: headers %v", m.Subject, m.Header)
	}
	name, rest, _ := strings.Cut(id, ".")
	lsn := strings.Split(rest, ":")[1]
	typ, subj := "io.pgjet."+strings.TrimPrefix(m.Subject, "postgres."), strings.TrimSuffix(strings.TrimPrefix(m.Subject, "postgres."), "."+lastToken(m.Subject))
	if msgPrefix, ok := strings.CutPrefix(m.Subject, "postgres._messages."); ok {
		typ, subj = "io.pgjet.message", msgPrefix
	}
	gotType, gotSubj := ev.Type(), ev.Subject()
	if binary {
		gotType, gotSubj = unescape(t, gotType), unescape(t, gotSubj)
	}
	if ev.ID() != id || ev.Source() != "/pgjet/"+name || gotType != typ || gotSubj != subj ||
		!ev.Time().Equal(time.UnixMicro(commitTimes[lsn])) || ev.DataContentType() != "application/json" {
		t.Errorf("%s (id %s): attributes\n%s", m.Subject, id, ev.Context)
	}
	if data := ev.Data(); !bytes.Contains(data, []byte(`"commit_time":`)) || (binary && !bytes.Equal(data, m.Data)) {
		t.Errorf("%s: data is not the native envelope: %s", m.Subject, data)
	}
	return ev
}

func lastToken(subj string) string { return subj[strings.LastIndexByte(subj, '.')+1:] }

// unescape undoes the percent-encoding of a header value, which sdk-go's
// NATS binding leaves in place.
func unescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.PathUnescape(s)
	if err != nil {
		t.Fatalf("header value %q: %v", s, err)
	}
	return u
}
