package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// ErrGap is matched by a *GapError.
var ErrGap = errors.New("raw records missing")

// GapError reports raw records that disappeared (expired by the stream's
// limits, or deleted) before this router read them. Their changes can never
// reach the outputs, so the router stops instead of silently going on.
type GapError struct {
	Stream, Durable string
	First, Last     uint64 // missing stream sequences, inclusive
}

func (e *GapError) Error() string {
	n := e.Last - e.First + 1
	return fmt.Sprintf("raw stream %s: records %d-%d (%d) expired or were deleted before consumer %s read them: "+
		"their changes cannot reach the outputs, so the router stops (raise the raw stream's max age, or rebuild the outputs)",
		e.Stream, e.First, e.Last, n, e.Durable)
}

func (e *GapError) Is(target error) bool { return target == ErrGap }

// setup waits for the raw stream, creates the output stream and the durable
// consumer when missing, and establishes the sequence the next raw record
// must have.
func (r *Relay) setup(ctx context.Context) (jetstream.Consumer, error) {
	raw, err := r.waitForRawStream(ctx)
	if err != nil {
		return nil, err
	}
	r.raw = raw
	for _, s := range raw.CachedInfo().Config.Subjects {
		// Records the consumer's filter skips would look like missing ones.
		if !covers(wire.RawFilter, s) {
			return nil, fmt.Errorf("raw stream %s also captures %q: it must hold only %s (the collector creates it so)", r.cfg.RawStream, s, wire.RawFilter)
		}
	}
	if err := r.ensureOutput(ctx); err != nil {
		return nil, err
	}
	if r.resume, err = r.readResumePoints(ctx); err != nil {
		return nil, err
	}
	cons, err := raw.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       r.cfg.Durable,
		Description:   "pgjet-router: renders raw records into stream " + r.cfg.Stream,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.cfg.AckWait,
		// A few records in flight: the relay publishes the events of the
		// next ones while the acks of earlier ones are on their way, and
		// acknowledges records strictly in order. It bounds memory too.
		MaxAckPending: maxInFlight,
		FilterSubject: wire.RawFilter,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on raw stream %s: %w", r.cfg.Durable, r.cfg.RawStream, err)
	}
	ci := cons.CachedInfo()
	if ci.NumAckPending > 0 {
		// A record delivered to a router that died: have it redelivered now
		// instead of after the ack wait.
		res, err := raw.ResetConsumer(ctx, r.cfg.Durable)
		if err != nil {
			r.log.Warn("cannot reset the consumer to its ack floor; the unacknowledged raw record is redelivered after the ack wait",
				"err", err, "ack_wait", r.cfg.AckWait)
		} else {
			ci = res.ConsumerInfo
		}
	}
	if ci.NumWaiting > 0 {
		r.log.Warn("the raw consumer has pull requests from another client: only one router may use a durable at a time (stale requests of a killed router expire by themselves)",
			"durable", r.cfg.Durable, "waiting", ci.NumWaiting)
	}

	next := ci.AckFloor.Stream + 1
	info, err := raw.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("raw stream %s info: %w", r.cfg.RawStream, err)
	}
	// Records at the head may have expired while no router was running.
	if info.State.FirstSeq > next {
		return nil, &GapError{Stream: r.cfg.RawStream, Durable: r.cfg.Durable, First: next, Last: info.State.FirstSeq - 1}
	}
	r.last, r.seen = next-1, next-1
	for _, p := range r.resume {
		r.log.Info("output stream holds events up to", "source", p.source, "commit_lsn", formatLSN(p.lsn), "index", p.index)
	}
	r.log.Info("relaying", "raw_stream", r.cfg.RawStream, "durable", r.cfg.Durable, "from_seq", next,
		"raw_pending", ci.NumPending, "stream", r.cfg.Stream, "subject_prefix", r.cfg.Prefix, "duplicate_window", r.dupWindow)
	return cons, nil
}

// waitForRawStream returns the raw stream, waiting while it does not exist
// yet: routers may well start before the collector that creates it.
func (r *Relay) waitForRawStream(ctx context.Context) (jetstream.Stream, error) {
	wait := time.Second
	for {
		s, err := r.js.Stream(ctx, r.cfg.RawStream)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, errors.New("JetStream is not enabled on the NATS server (or for this account): start nats-server with JetStream (-js, or jetstream {} in its config)")
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.log.Info(fmt.Sprintf("raw stream %s does not exist yet, waiting for pgjet-collector to create it; checking again in %s", r.cfg.RawStream, wait))
		} else {
			r.log.Warn(fmt.Sprintf("cannot look up raw stream %s, retrying in %s", r.cfg.RawStream, wait), "err", err)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (r *Relay) persistMode() jetstream.PersistModeType {
	if r.cfg.PersistAsync {
		return jetstream.AsyncPersistMode
	}
	return jetstream.DefaultPersistMode
}

// ensureOutput creates the output stream when it is missing. An existing
// stream is left as it is (an operator may have tuned it) but must capture
// the relay's subjects.
func (r *Relay) ensureOutput(ctx context.Context) error {
	want := r.cfg.Prefix + ".>"
	s, err := r.js.Stream(ctx, r.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        r.cfg.Stream,
			Description: "pgjet change events, written by pgjet-router",
			Subjects:    []string{want},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			// Retries republish with the same ids; a retry later than
			// half the window resyncs from the stream instead (publishAll).
			Duplicates:  r.cfg.Duplicates,
			PersistMode: r.persistMode(),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another router created it meanwhile.
			s, err = r.js.Stream(ctx, r.cfg.Stream)
		}
		if err == nil {
			r.log.Info("created output stream", "stream", r.cfg.Stream, "subjects", want)
		}
	}
	if err != nil {
		return fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	cfg := s.CachedInfo().Config
	for _, subj := range cfg.Subjects {
		if covers(subj, want) {
			r.dupWindow = cfg.Duplicates
			if r.dupWindow <= 0 {
				r.dupWindow = DefaultDuplicates // the server's default
			}
			return nil
		}
	}
	return fmt.Errorf("output stream %s does not capture %s (its subjects: %s): choose another --stream or --subject-prefix",
		r.cfg.Stream, want, strings.Join(cfg.Subjects, ", "))
}

// covers reports whether every subject matching pattern sub also matches
// pattern p.
func covers(p, sub string) bool {
	pt, st := strings.Split(p, "."), strings.Split(sub, ".")
	for i, t := range pt {
		if t == ">" {
			return i < len(st)
		}
		if i >= len(st) || st[i] == ">" {
			return false
		}
		if t != "*" && t != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}
