package rawstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"discard new, max bytes", &jetstream.APIError{Code: 503, ErrorCode: jsStreamStoreFailed, Description: "maximum bytes exceeded"}, "raw stream RAW is full (maximum bytes exceeded)"},
		{"discard new, max msgs", &jetstream.APIError{Code: 503, ErrorCode: jsStreamStoreFailed, Description: "maximum messages exceeded"}, "raw stream RAW is full (maximum messages exceeded)"},
		{"server storage used up", &jetstream.APIError{Code: 503, ErrorCode: jsInsufficientResources, Description: "insufficient resources"}, "no JetStream storage left"},
		{"other store failure", &jetstream.APIError{Code: 503, ErrorCode: jsStreamStoreFailed, Description: "write failed"}, "failed to store the record in raw stream RAW (write failed): a storage failure"},
		{"no answer", fmt.Errorf("%w within 10s", errNoAck), "no ack within 10s: the server stored nothing and did not say why"},
		{"anything else", errors.New("nats: connection closed"), "nats: connection closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(tc.err, "RAW")
			if !strings.Contains(got.Error(), tc.want) {
				t.Errorf("Explain = %q, want it to say %q", got, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("Explain does not wrap the error")
			}
		})
	}
}

func TestDiscardsOld(t *testing.T) {
	for _, tc := range []struct {
		c    jetstream.StreamConfig
		warn bool
	}{
		{jetstream.StreamConfig{Name: "R", Discard: jetstream.DiscardNew, MaxBytes: 1 << 30}, false},
		{jetstream.StreamConfig{Name: "R", Discard: jetstream.DiscardOld}, false}, // no limit but the age
		{jetstream.StreamConfig{Name: "R", Discard: jetstream.DiscardOld, MaxBytes: 1 << 30}, true},
		{jetstream.StreamConfig{Name: "R", Discard: jetstream.DiscardOld, MaxMsgs: 1000}, true},
		{jetstream.StreamConfig{Name: "R", Discard: jetstream.DiscardOld, MaxMsgsPerSubject: 1000}, true},
	} {
		problem, fix := DiscardsOld(tc.c)
		if (problem != "") != tc.warn || tc.warn && !strings.Contains(fix, "--discard new") {
			t.Errorf("%+v: %q, %q", tc.c, problem, fix)
		}
	}
}

// Invariant: a raw stream that is full (discard new) makes the publisher
// say so while it retries (Failing: the reason, for /readyz), and once the
// stream has room everything is stored, in order, and Failing is clear.
func TestPublisherSaysTheRawStreamIsFull(t *testing.T) {
	r := newPublisherRig(t, PublisherConfig{Stream: "RAW", MaxMessageBytes: 1 << 10})
	ctx := context.Background()
	info, err := r.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.MaxMsgs = 3
	if _, err := r.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	frags := oltpFragments(t, 200)
	for _, f := range frags {
		r.add(f)
	}
	var failing error
	deadline := time.Now().Add(30 * time.Second)
	for failing == nil && time.Now().Before(deadline) {
		_, failing = r.p.Failing()
		time.Sleep(20 * time.Millisecond)
	}
	if failing == nil || !strings.Contains(failing.Error(), "raw stream RAW is full (maximum messages exceeded)") {
		t.Fatalf("Failing = %v, want the raw stream full", failing)
	}
	if r.p.Idle() {
		t.Fatal("idle while the stream refuses records")
	}
	cfg.MaxMsgs = -1
	if _, err := r.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(60 * time.Second)
	if _, err := r.p.Failing(); err != nil {
		t.Errorf("Failing = %v after everything was stored", err)
	}
	if got := commitLSNs(r.messages()); len(got) != len(frags) {
		t.Errorf("stored %d transactions, want %d", len(got), len(frags))
	}
}
