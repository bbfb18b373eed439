package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/shared/wire"
)

// Replay makes a relay rebuild an output from the raw stream's history
// instead of following it with a durable consumer: it reads the raw records
// FromSeq to ToSeq with an ordered consumer (no durable, no acks), renders
// the transactions whose commit LSN and commit time fall in the bounds
// (zero: unbounded), and stops by itself after ToSeq.
type Replay struct {
	FromSeq, ToSeq uint64
	render.Bounds
}

// errReplayDone ends a replay's consume loop: every record up to ToSeq is
// handled.
var errReplayDone = errors.New("replay done")

// replayConsumer is setup's consumer for a replay: an ordered consumer
// from the first record not yet handled.
func (r *Relay) replayConsumer(ctx context.Context, raw jetstream.Stream) (jetstream.Consumer, error) {
	rp := r.cfg.Replay
	from, err := r.headGap(ctx, max(rp.FromSeq, r.last+1))
	if err != nil {
		return nil, err
	}
	cons, err := raw.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.RawFilter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return nil, fmt.Errorf("replay raw stream %s from %d: %w", r.cfg.RawStream, from, err)
	}
	r.last, r.seen = from-1, from-1
	r.log.Info("replaying", "raw_stream", r.cfg.RawStream, "from_seq", from, "to_seq", rp.ToSeq, "stream", r.cfg.Stream,
		"subjects", r.route.Subjects())
	return cons, nil
}

// Progress is how far a relay got: for a replay's progress line.
type Progress struct {
	LastSeq uint64 // raw record handled last
	Events  uint64 // events stored
}

// Progress returns the relay's progress; safe to call while Run runs.
func (r *Relay) Progress() Progress {
	return Progress{LastSeq: r.stats.lastSeq.Load(), Events: r.events()}
}
