package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/shared/backoff"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// window bounds the publishes awaiting their ack, below the client's
// default async limit (4000). It also bounds the events of the records in
// flight together: with 512, a record of ~500 single-row transactions (what
// the collector's linger produces under load) went alone, and the server
// idled while its last acks came back; 2048 relayed 1.2x the events/s in
// BenchmarkRelay (80,467-99,966 vs 68,489-83,504).
const window = 2048

var errAckTimeout = errors.New("no publish ack in time")

// connEpoch counts the connection's reconnects. Publishes made on one
// connection reach the server in order, or from some point on not at all.
// A publish made on a replaced connection may have died with it, and a
// message sent on the new one would then be stored before its republish:
// so nothing goes out on a new connection while a publish made on the old
// one awaits its ack (a reconnect fails those; they are republished in
// order). Left open: a reconnect completing between the check and the
// publish, a window of a few instructions.
func (r *Relay) connEpoch() uint64 { return r.out.Conn().Stats().Reconnects }

// publishAll publishes the messages of rec from index from on, in order, and
// returns once the output stream has acknowledged every one. After a failure
// it republishes, with the same ids, from the first message not known to be
// stored, so the stream dedupes what did get stored. Order holds unless a
// later message got stored while an earlier one was lost (a cluster leader
// change): the connection has no reconnect buffer, and nothing is published
// on a new connection while a publish made on the old one is unresolved
// (connEpoch).
//
// A republish dedupes only within the output stream's duplicate window of
// the first publish. Later than half of it (a long outage, acks that come
// too late), publishAll returns errResync instead: the relay then reads
// the stream's last event of every source and starts again from the raw
// consumer's ack floor, skipping what is stored, as after a restart.
func (r *Relay) publishAll(ctx context.Context, rec *record, from int) error {
	if r.cfg.Stream == "" {
		return nil // a route that only prints
	}
	raw, msgs := rec.msg, rec.b.msgs[from:]
	if r.cfg.PublishLatency != nil && rec.sent.IsZero() {
		rec.sent = time.Now()
	}
	if rec.span != nil {
		rec.span.AddEvent("republishing", trace.WithAttributes(attribute.Int("pgjet.from", from)))
	}
	// Tell the raw stream now and then that the record is still being
	// worked on, so that it is not redelivered while a large one publishes
	// or while we retry.
	lastSignal := time.Now()
	inProgress := func() {
		if time.Since(lastSignal) < r.cfg.AckWait/4 {
			return
		}
		lastSignal = time.Now()
		if err := raw.InProgress(); err != nil {
			r.log.Debug("raw record in-progress signal", "err", err)
		}
	}
	retry := backoff.New(minBackoff, maxBackoff)
	done := 0
	for attempt := 1; ; attempt++ {
		// Measured from before the first publish: on the safe side.
		if rec.failed && time.Since(rec.start) > r.dupWindow/2 {
			return fmt.Errorf("%w: republishing raw record %d %s after it was taken could store events twice (output duplicate window %s)",
				errResync, rec.seq, time.Since(rec.start).Round(time.Millisecond), r.dupWindow)
		}
		n, err := r.publishFrom(ctx, msgs[done:], inProgress)
		done += n
		if err == nil {
			if r.cfg.PublishLatency != nil {
				rec.stored = time.Now()
			}
			return nil
		}
		rec.failed = true
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.stats.retries.Add(1)
		in := retry.Next()
		r.log.Warn("publishing to the output stream failed; republishing", "err", err, "stream", r.cfg.Stream,
			"attempt", attempt, "stored", done, "events", len(msgs), "retry_in", in)
		if err := retry.Sleep(ctx, in); err != nil {
			return err
		}
		inProgress()
	}
}

// publishFrom publishes msgs asynchronously, at most window awaiting an ack,
// and waits for the acks in order. It returns how many leading messages are
// known to be stored. progress is called after every ack.
func (r *Relay) publishFrom(ctx context.Context, msgs []nats.Msg, progress func()) (int, error) {
	toks := make([]uint64, 0, min(len(msgs), window))
	acked := 0
	timer := time.NewTimer(r.cfg.PublishTimeout)
	defer timer.Stop()
	// waitOne waits for the oldest outstanding ack. Publishes resolve out of
	// order; waiting in order is what tells which prefix is stored.
	waitOne := func() error {
		if err := r.awaitAck(ctx, &msgs[acked], toks[0], timer); err != nil {
			return err
		}
		toks = toks[1:]
		acked++
		progress()
		return nil
	}
	epoch := r.connEpoch()
	for i := range msgs {
		if len(toks) >= window {
			if err := waitOne(); err != nil {
				return acked, err
			}
		}
		if e := r.connEpoch(); e != epoch {
			for len(toks) > 0 {
				if err := waitOne(); err != nil {
					return acked, err
				}
			}
			epoch = e // everything sent before was stored: go on
		}
		tok, err := r.outbox.publish(&msgs[i])
		if err != nil {
			return acked, fmt.Errorf("publish %s: %w", msgs[i].Subject, err)
		}
		toks = append(toks, tok)
	}
	for len(toks) > 0 {
		if err := waitOne(); err != nil {
			return acked, err
		}
	}
	return acked, nil
}

// awaitAck waits at most PublishTimeout for the ack of m, published as
// tok, counting duplicates. timer is the caller's, reused across calls.
func (r *Relay) awaitAck(ctx context.Context, m *nats.Msg, tok uint64, timer *time.Timer) error {
	dup, err := r.outbox.wait(ctx, tok, timer, r.cfg.PublishTimeout)
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	if dup {
		r.stats.dups.Add(1)
	}
	return nil
}
