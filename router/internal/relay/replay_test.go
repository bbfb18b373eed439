package relay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
)

// A replay renders exactly the raw records and transactions in its bounds
// into the output, with the same ids as a live relay, and stops by itself.
func TestReplayStopsByItselfWithinItsBounds(t *testing.T) {
	tests := []struct {
		name   string
		replay Replay
		want   []wantEvent
	}{
		{"one record", Replay{FromSeq: 2, ToSeq: 2}, wantEvents[6:8]},
		{"to the end", Replay{FromSeq: 1, ToSeq: 3}, wantEvents},
		{"commit LSNs", Replay{FromSeq: 1, ToSeq: 3, Bounds: render.Bounds{FromLSN: 0x2000, ToLSN: 0x3000}}, wantEvents[3:8]},
		{"commit times", Replay{FromSeq: 1, ToSeq: 3, Bounds: render.Bounds{FromTime: 1_700_000_001_000_000, ToTime: 1_700_000_001_000_000}}, wantEvents[3:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.publishRaw(rawRecords()...)
			rp := tt.replay
			r, err := New(e.js, Config{RawStream: rawStream, Stream: outStream, Prefix: "postgres", Replay: &rp,
				PublishTimeout: 2 * time.Second, Log: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := r.Run(ctx); err != nil || ctx.Err() != nil {
				t.Fatalf("Run = %v (ctx %v), want nil once the replay is done", err, ctx.Err())
			}
			checkOutputs(t, e.outputs(), tt.want)
			if p := r.Progress(); p.LastSeq != rp.ToSeq {
				t.Errorf("progress %+v, want the last record %d", p, rp.ToSeq)
			}
			if e.consumer() != nil {
				t.Error("a replay left a durable consumer")
			}
		})
	}
}

// A replay from records that are gone is a gap error naming them.
func TestReplayFromExpiredRecords(t *testing.T) {
	e := newEnv(t)
	e.publishRaw(rawRecords()...)
	s, err := e.js.Stream(context.Background(), rawStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background(), jetstreamKeep(1)...); err != nil {
		t.Fatal(err)
	}
	r, err := New(e.js, Config{RawStream: rawStream, Stream: outStream, Prefix: "postgres", Replay: &Replay{FromSeq: 1, ToSeq: 3},
		PublishTimeout: 2 * time.Second, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var gap *GapError
	err = r.Run(ctx)
	if !errors.As(err, &gap) || gap.First != 1 || gap.Last != 2 {
		t.Fatalf("Run = %v, want a gap of records 1-2", err)
	}
	// It names what missed them: the replay, not a durable it does not use.
	if msg := err.Error(); !strings.Contains(msg, "before the replay read them") || strings.Contains(msg, "consumer") {
		t.Errorf("error %q", msg)
	}
}

func jetstreamKeep(n uint64) []jetstream.StreamPurgeOpt {
	return []jetstream.StreamPurgeOpt{jetstream.WithPurgeKeep(n)}
}
