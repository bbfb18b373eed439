package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/wire"
)

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
		if !route.Covers(wire.RawFilter, s) {
			return nil, fmt.Errorf("raw stream %s also captures %q: it must hold only %s (the collector creates it so)", r.cfg.RawStream, s, wire.RawFilter)
		}
	}
	// Starting (over): the records from the consumer's ack floor come
	// (again), and those the output stream holds are skipped.
	r.render.Reset()
	var resume map[string]*render.Stored
	if r.cfg.Stream != "" {
		if err := r.ensureOutput(ctx); err != nil {
			return nil, err
		}
		st, err := r.readResumePoints(ctx)
		if err != nil {
			return nil, err
		}
		resume = st.points
		r.render.Resume(resume)
		r.render.StoredRawDeadLetters(st.rawDead)
	}
	if r.cfg.Replay != nil {
		return r.replayConsumer(ctx, raw)
	}
	policy, meta, err := r.existing(ctx, raw)
	if err != nil {
		return nil, err
	}
	what := "into stream " + r.cfg.Stream
	if r.cfg.Stream == "" {
		what = "on stdout"
	}
	cc := jetstream.ConsumerConfig{
		Durable:       r.cfg.Durable,
		Description:   "pgjet-router: renders raw records " + what,
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.cfg.AckWait,
		// A few records in flight: the relay publishes the events of the
		// next ones while the acks of earlier ones are on their way, and
		// acknowledges records strictly in order. It bounds memory too.
		MaxAckPending: maxInFlight,
		FilterSubject: wire.RawFilter,
		Metadata:      meta,
	}
	if r.cfg.StandbyTTL > 0 {
		cc.PriorityPolicy, cc.PriorityGroups, cc.PinnedTTL = jetstream.PriorityPolicyPinned, []string{StandbyGroup}, r.cfg.StandbyTTL
	}
	cons, err := raw.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on raw stream %s: %w (a durable cannot switch between one router and active/standby replicas: give the route a new durable)", r.cfg.Durable, r.cfg.RawStream, err)
	}
	r.consumer = cc
	ci := cons.CachedInfo()
	if r.standby() {
		r.log.Info("standing by: another replica of this route is active; taking over when the server pins this one", "durable", r.cfg.Durable)
	}
	if ci.NumAckPending > 0 && !r.standby() {
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
	if ci.NumWaiting > 0 && r.cfg.StandbyTTL == 0 {
		r.log.Warn("the raw consumer has pull requests from another client: only one router may use a durable at a time (stale requests of a killed router expire by themselves)",
			"durable", r.cfg.Durable, "waiting", ci.NumWaiting)
	}

	// Records the relay stopped at may be gone since, and the consumer
	// past them; records at the head may have expired while no router ran.
	if err := r.stoppedGap(ctx, ci.AckFloor.Stream); err != nil {
		return nil, err
	}
	next, err := r.headGap(ctx, ci.AckFloor.Stream+1)
	if err != nil {
		return nil, err
	}
	r.last, r.seen = next-1, next-1
	for src, p := range resume {
		r.log.Info("output stream holds events up to", "source", src, "commit_lsn", wire.LSN(p.Last.CommitLSN), "index", p.Last.Index)
	}
	r.log.Info("relaying", "raw_stream", r.cfg.RawStream, "durable", r.cfg.Durable, "from_seq", next,
		"raw_pending", ci.NumPending, "stream", r.cfg.Stream, "subjects", r.route.Subjects(), "duplicate_window", r.dupWindow)
	if r.cfg.StandbyTTL > 0 {
		// The server pins the client by an id it gave this consumer
		// handle: a new handle would be another client, unpinned, and a
		// takeover would hand the pin on instead of keeping it.
		if r.pullCons == nil {
			r.pullCons = cons
		}
		return r.pullCons, nil
	}
	return cons, nil
}

// existing returns the durable consumer's delivery policy and metadata,
// which setting it up again keeps. A new one begins with all retained raw
// records or only those written from now on (StartNew); an existing one
// keeps its own, which the server does not let change.
func (r *Relay) existing(ctx context.Context, raw jetstream.Stream) (jetstream.DeliverPolicy, map[string]string, error) {
	c, err := raw.Consumer(ctx, r.cfg.Durable)
	switch {
	case err == nil:
		cfg := c.CachedInfo().Config
		return cfg.DeliverPolicy, cfg.Metadata, nil
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if r.cfg.StartNew {
			r.log.Info("new consumer starts with the raw records written from now on (start_position latest)", "durable", r.cfg.Durable)
			return jetstream.DeliverNewPolicy, nil, nil
		}
		return jetstream.DeliverAllPolicy, nil, nil
	default:
		return 0, nil, fmt.Errorf("look up consumer %s on raw stream %s: %w", r.cfg.Durable, r.cfg.RawStream, err)
	}
}

// waitForRawStream returns the raw stream, waiting while it does not exist
// yet: routers may well start before the collector that creates it.
func (r *Relay) waitForRawStream(ctx context.Context) (jetstream.Stream, error) {
	retry := backoff.New(time.Second, 30*time.Second)
	for {
		s, err := r.js.Stream(ctx, r.cfg.RawStream)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, errors.New("JetStream is not enabled on the NATS server (or for this account): start nats-server with JetStream (-js, or jetstream {} in its config)")
		}
		wait := retry.Next()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.log.Info(fmt.Sprintf("raw stream %s does not exist yet, waiting for pgjet-collector to create it; checking again in %s", r.cfg.RawStream, wait))
		} else {
			r.log.Warn(fmt.Sprintf("cannot look up raw stream %s, retrying in %s", r.cfg.RawStream, wait), "err", err)
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, err
		}
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
// every subject of the route.
func (r *Relay) ensureOutput(ctx context.Context) error {
	want := r.route.Subjects()
	s, err := r.out.Stream(ctx, r.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		oc := r.cfg.Output
		subjects := oc.Subjects
		if len(subjects) == 0 {
			subjects = want
		}
		storage := jetstream.FileStorage
		if oc.Memory {
			storage = jetstream.MemoryStorage
		}
		s, err = r.out.CreateStream(ctx, jetstream.StreamConfig{
			Name:        r.cfg.Stream,
			Description: "pgjet change events, written by pgjet-router",
			Subjects:    subjects,
			Storage:     storage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    oc.Replicas,
			MaxAge:      oc.MaxAge,
			MaxBytes:    orUnlimited(oc.MaxBytes),
			MaxMsgs:     orUnlimited(oc.MaxMsgs),
			// Retries republish with the same ids; a retry later than
			// half the window resyncs from the stream instead (publishAll).
			Duplicates:  r.cfg.Duplicates,
			PersistMode: r.persistMode(),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another router created it meanwhile.
			s, err = r.out.Stream(ctx, r.cfg.Stream)
		}
		if err == nil {
			r.log.Info("created output stream", "stream", r.cfg.Stream, "subjects", subjects)
		}
	}
	if err != nil {
		return fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	cfg := s.CachedInfo().Config
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(cfg.Subjects, func(subj string) bool { return route.Covers(subj, w) }) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("output stream %s does not capture %s (its subjects: %s): add them to the stream, or choose another stream or subject",
			r.cfg.Stream, strings.Join(missing, ", "), strings.Join(cfg.Subjects, ", "))
	}
	r.dupWindow = cfg.Duplicates
	r.maxMsgSize = max(int64(cfg.MaxMsgSize), 0) // -1: none
	if r.dupWindow <= 0 {
		r.dupWindow = DefaultDuplicates // the server's default
	}
	if r.outbox == nil {
		if r.outbox, err = newOutbox(r.out.Conn()); err != nil {
			return err
		}
	}
	return nil
}

// orUnlimited maps "not set" to JetStream's -1 (no limit).
func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
