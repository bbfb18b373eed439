package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The relay keeps a small window of raw records in flight: it publishes the
// events of record k+1 while the publish acks of record k are on their way,
// and acknowledges raw records strictly in stream order, each once all its
// events are stored. With one record at a time, every record cost several
// round trips to the server in a row (delivery, publish acks, raw ack),
// which capped a router at a few hundred small records per second.
//
// Events go out in stream order on one connection. After a failed publish
// the relay republishes, in order, from the first event not known stored;
// events of later records already sent may then be stored before it (the
// same caveat as within one record: order holds unless the server stores a
// later message while losing an earlier one, as on a cluster leader change).

const (
	// maxInFlight bounds the raw records delivered and not yet
	// acknowledged (the consumer's MaxAckPending).
	maxInFlight = 16
	// maxWindowEvents bounds the events of the records in the window; a
	// record with more goes through alone, as it would without a window.
	maxWindowEvents = window
	// maxWindowBytes bounds the raw bytes of the records in the window (their
	// rendered events take about as much again).
	maxWindowBytes = 16 << 20
)

// next is what the reader goroutine hands over: a record, or why none came.
type next struct {
	msg jetstream.Msg
	err error
}

// consume sets up the consumer and relays records until ctx ends (nil) or
// an error.
func (r *Relay) consume(ctx context.Context, started *bool) error {
	cons, err := r.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	*started = true
	r.ready()
	// The client notices a pull request gone without a reconnect (the
	// consumer's leader moved to another node of a cluster) only when no
	// heartbeat comes for twice the heartbeat within one Next, and Next
	// waits at most idleCheck here: the default heartbeat (15 s) would never
	// be missed, and the relay would wait forever.
	it, err := cons.Messages(append([]jetstream.PullMessagesOpt{jetstream.PullMaxMessages(maxInFlight), jetstream.PullHeartbeat(idleCheck / 3)},
		r.standbyPull()...)...)
	if err != nil {
		return fmt.Errorf("read raw stream %s: %w", r.cfg.RawStream, err)
	}
	defer it.Stop()

	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	// Buffered: the reader keeps pulling (and a replica keeps its pin) while
	// the relay is busy; the consumer's max ack pending bounds what waits.
	in := make(chan next, maxInFlight)
	go func() {
		for {
			nctx, cancel := context.WithTimeout(rctx, idleCheck)
			msg, err := it.Next(jetstream.NextContext(nctx))
			cancel()
			if rctx.Err() != nil {
				return
			}
			select {
			case in <- next{msg, err}:
			case <-rctx.Done():
				return
			}
		}
	}()

	var win []*record
	events, size := 0, 0 // of the records in the window
	// retire finishes the oldest record of the window once its publishes
	// have resolved, republishing what did not get stored.
	retire := func() error {
		rec := win[0]
		select {
		case <-rec.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if rec.err != nil {
			rec.failed = true
			r.stats.retries.Add(1)
			r.log.Warn("publishing to the output stream failed; republishing", "err", rec.err, "stream", r.cfg.Stream,
				"raw_seq", rec.seq, "stored", rec.acked, "events", len(rec.b.msgs))
			if err := r.publishAll(ctx, rec, rec.acked); err != nil {
				return err
			}
		}
		n := len(rec.b.msgs)
		if err := r.finish(ctx, rec); err != nil {
			return err
		}
		win = win[1:]
		events -= n
		size -= len(rec.msg.Data())
		return nil
	}
	// fail leaves the records of the window unacknowledged: a restart
	// delivers them again and the output stream dedupes their events.
	fail := func(msg jetstream.Msg, err error) error {
		if msg != nil {
			if nerr := msg.Nak(); nerr != nil {
				r.log.Debug("nak raw record", "err", nerr)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	var suspect uint64  // see deliveryLost
	var winEpoch uint64 // connEpoch of the window's publishes
	replay := r.cfg.Replay
	for {
		if replay != nil && r.last >= replay.ToSeq {
			return errReplayDone
		}
		var head chan struct{}
		if len(win) > 0 {
			head = win[0].done
		}
		recv := in
		if len(win) >= maxInFlight {
			recv = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-head:
			if err := retire(); err != nil {
				return fail(nil, err)
			}
			continue
		case n := <-recv:
			if errors.Is(n.err, context.DeadlineExceeded) {
				if r.standby() {
					r.watchPin(ctx, cons)
					continue
				}
				if replay == nil && len(win) == 0 && r.deliveryLost(ctx, cons, &suspect) {
					if r.cfg.StandbyTTL > 0 {
						// Maybe pinned no more, and another replica is busy:
						// wait as a standby rather than reset its consumer.
						r.pinned = false
						r.log.Warn("no record for a while with records pending: standing by again", "durable", r.cfg.Durable)
						return errResync
					}
					return errLostDelivery
				}
				continue
			}
			if errors.Is(n.err, jetstream.ErrNoHeartbeat) {
				// The server went quiet (e.g. a reconnect); the iterator pulls again.
				r.log.Warn("no heartbeat from the raw consumer; pulling again", "stream", r.cfg.RawStream, "durable", r.cfg.Durable)
				continue
			}
			if n.err != nil {
				return fail(nil, fmt.Errorf("read raw stream %s with consumer %s: %w", r.cfg.RawStream, r.cfg.Durable, n.err))
			}
			suspect = 0
			if r.standby() {
				// Pinned: take over from the consumer's ack floor and the
				// output's last events (this record comes again).
				r.pinned = true
				r.log.Info("this replica is active now: taking over from the consumer's ack floor", "durable", r.cfg.Durable)
				return errResync
			}
			if replay != nil {
				if meta, err := n.msg.Metadata(); err == nil && meta.Sequence.Stream > replay.ToSeq {
					// Past the stop point: finish what is in the window.
					stopReading()
					for len(win) > 0 {
						if err := retire(); err != nil {
							return err
						}
					}
					return errReplayDone
				}
			}
			rec, err := r.take(ctx, n.msg)
			if err != nil {
				// The records before this one are fine: finish them first.
				for len(win) > 0 {
					if rerr := retire(); rerr != nil {
						return fail(n.msg, rerr)
					}
				}
				return fail(n.msg, err)
			}
			if rec == nil {
				continue
			}
			// Make room: the window's events and this record's stay
			// below the client's limit of pending async publishes.
			for len(win) > 0 && (events+len(rec.b.msgs) > maxWindowEvents || size+len(rec.msg.Data()) > maxWindowBytes) {
				if err := retire(); err != nil {
					return fail(n.msg, err)
				}
			}
			if len(rec.b.msgs) > maxWindowEvents {
				// Too many events to send at once: alone, in steps.
				if err := r.publishAll(ctx, rec, 0); err != nil {
					return fail(n.msg, err)
				}
				if err := r.finish(ctx, rec); err != nil {
					return fail(n.msg, err)
				}
				continue
			}
			if len(win) > 0 && r.connEpoch() != winEpoch {
				// Publishes of the window went out on a connection since
				// replaced: settle them before anything goes out on this one.
				for len(win) > 0 {
					if err := retire(); err != nil {
						return fail(n.msg, err)
					}
				}
			}
			if len(win) == 0 {
				winEpoch = r.connEpoch()
			}
			r.publishAsync(ctx, rec, winEpoch)
			win = append(win, rec)
			events += len(rec.b.msgs)
			size += len(rec.msg.Data())
		}
	}
}

// publishAsync sends the events of rec and returns at once; rec.done closes
// when their acks (or the first failure) are in. It stops sending once the
// connection is no longer the one of epoch: what is left is republished in
// order when rec is retired.
func (r *Relay) publishAsync(ctx context.Context, rec *record, epoch uint64) {
	rec.done = make(chan struct{})
	if r.cfg.Stream == "" {
		// A route that only prints: its events are "stored" once rendered.
		rec.acked = len(rec.b.msgs)
		close(rec.done)
		return
	}
	if rec.span != nil {
		rec.span.AddEvent("publishing")
	}
	if r.cfg.PublishLatency != nil && len(rec.b.msgs) > 0 {
		rec.sent = time.Now()
	}
	toks := make([]uint64, 0, len(rec.b.msgs))
	for i := range rec.b.msgs {
		if r.connEpoch() != epoch {
			break
		}
		tok, err := r.outbox.publish(&rec.b.msgs[i])
		if err != nil {
			// Sent so far: resolved by the waiter; the rest is republished.
			break
		}
		toks = append(toks, tok)
	}
	go func() {
		defer close(rec.done)
		timer := time.NewTimer(r.cfg.PublishTimeout)
		defer timer.Stop()
		// The server acks one connection's publishes in order: wait for the
		// last ack, and the others are in. One wakeup per record rather
		// than one per event; the checks still go in order, which is what
		// tells how many leading events are stored.
		sent := len(toks)
		var lastErr error
		if sent > 0 {
			lastErr = r.awaitAck(ctx, &rec.b.msgs[sent-1], toks[sent-1], timer)
		}
		for i := range sent {
			err := lastErr
			if i < sent-1 {
				err = r.awaitAck(ctx, &rec.b.msgs[i], toks[i], timer)
			}
			if rec.err = err; err != nil {
				return
			}
			rec.acked++
		}
		if sent < len(rec.b.msgs) {
			rec.err = errors.New("publish: the client refused a message, or the connection was replaced")
			return
		}
		if r.cfg.PublishLatency != nil {
			rec.stored = time.Now()
		}
	}()
}
