// Package relay moves one route's events from the raw stream to its output
// stream: the I/O around package render. It reads raw records with a
// durable consumer, in stream order, a few in flight (window.go), has each
// rendered, publishes its messages with their deterministic Nats-Msg-Ids
// (publish.go), and acknowledges a raw record only once every message of
// it is stored. A crash at any point therefore leads to a redelivery whose
// events the output stream deduplicates.
//
// One raw record's way: window.go takes it from the consumer; take (this
// file) decodes it, puts a change in pieces together (pieces.go), counts a
// transaction's earlier fragments when it starts in the middle of one
// (recover.go) and renders it; publish.go sends its messages; finish (this
// file) acknowledges it. setup.go, resume.go and standby.go prepare the
// consumer and the renderer when the relay starts or starts over.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/crashpoint"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/tracing"
	"github.com/pgjet/pgjet/shared/wire"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// DefaultDuplicates is JetStream's own default duplicate window. The server
// keeps each id for the window, about 150 bytes of heap each (measured with
// pgjet's ids): at 50,000 events/s that is 6 million ids and 0.9 GB; the 10
// minutes used before meant 4.4 GB for its garbage collector to scan.
const DefaultDuplicates = 2 * time.Minute

// Config configures a Relay: one route of a router, with its own durable
// consumer on the raw stream and its own output.
type Config struct {
	RawStream string // raw stream to read
	Durable   string // durable consumer on it
	// StartNew makes a consumer created now begin with the raw records
	// written from now on (start_position latest) instead of every record
	// the raw stream retains. An existing consumer keeps its position.
	StartNew bool
	// Stream is the output stream, created when missing; "" for a route
	// that only prints (Stdout), which publishes nothing.
	Stream string
	// Output describes an output stream the relay creates; an existing
	// one is left as it is but must capture the route's subjects.
	Output StreamConfig
	// Route selects, transforms and maps events to subjects; nil for every
	// change on {Prefix}.{schema}.{table}.{op}.
	Route *route.Route
	// Prefix is the subject prefix of the default route (Route nil).
	Prefix string
	// Envelope renders the events (envelope.New); nil for native JSON.
	Envelope envelope.Renderer
	// Stdout, when set, also prints every event once it is stored (or, for
	// a route without Stream, instead of publishing it).
	Stdout *stdout.Sink
	// PublishTimeout bounds the wait for one publish ack before republishing.
	// Default 10 s.
	PublishTimeout time.Duration
	// AckWait is the raw consumer's ack wait. Default 60 s.
	AckWait time.Duration
	// PersistAsync creates the output stream with async persistence: much
	// faster when the server fsyncs every write, but a crash of the server
	// can lose the latest acknowledged events (rebuild them by replaying the
	// raw stream). Only for a stream this relay creates.
	PersistAsync bool
	// Duplicates is the duplicate window of an output stream this relay
	// creates. The server keeps one id per event for that long, so its
	// memory grows with rate × window. Default 2 min.
	Duplicates time.Duration
	// StandbyTTL > 0 makes the relay one of several replicas of a route on
	// one durable (a pinned priority group, see standby.go): the server
	// delivers to one, and pins another once the active one has been
	// silent this long.
	StandbyTTL time.Duration
	// Replay, when set, rebuilds the output from a part of the raw stream's
	// history and stops (Durable and StartNew unused).
	Replay *Replay
	// AcceptGaps are raw stream sequences the relay may find missing and
	// go on without, logging it (--accept-gap); DeadLetterRaw, those it may
	// find undecodable and send with their bytes to the dead-letter subject
	// (--dead-letter-raw). See holes.go.
	AcceptGaps, DeadLetterRaw SeqRanges
	// StatsEvery is the interval of the progress log line. Default 10 s.
	StatsEvery time.Duration
	// PublishLatency, when set, observes the seconds from the first
	// publish of a raw record's events to the ack of its last one.
	PublishLatency Observer
	// Tracer, when set, traces each raw record (rendered, published,
	// stored) as a child of the collector's span its traceparent header
	// names; its output messages carry the record's span (traceparent, and
	// ce-traceparent or the traceparent attribute for CloudEvents).
	Tracer trace.Tracer
	Log    *slog.Logger
}

// StreamConfig is what an output stream the relay creates looks like,
// beyond its name, duplicate window and persistence (Config).
type StreamConfig struct {
	// Subjects default to the route's subjects.
	Subjects []string
	Replicas int  // default 1
	Memory   bool // memory storage instead of files
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
}

// Relay moves events from the raw stream to the output stream.
type Relay struct {
	js    jetstream.JetStream
	cfg   Config
	log   *slog.Logger
	env   envelope.Renderer
	route *route.Route
	// render turns raw records into the messages to publish.
	render *render.Renderer
	// out publishes events and reads the output stream: the sink's
	// connection, which may differ from the raw stream's (js).
	out jetstream.JetStream
	raw jetstream.Stream
	// outbox publishes on out's connection and hands the acks back.
	outbox *outbox

	// last is the stream sequence of the last raw record fully handled
	// (acknowledged); seen, of the last one taken into the window. The next
	// one must be seen+1 or records are missing.
	last, seen uint64
	// pinned: a replica (StandbyTTL) that the server pinned, the active one.
	pinned bool
	// consumer is the durable consumer's configuration as set up; stopped,
	// the raw record the relay stopped at (a hole) when it started, until
	// it is past it (holes.go).
	consumer jetstream.ConsumerConfig
	stopped  uint64
	// pullCons is a replica's consumer handle, kept across resyncs: the
	// pin belongs to it.
	pullCons jetstream.Consumer
	// pinnedID is the pinned client a standby saw last (watchPin).
	pinnedID string
	// dupWindow is the output stream's duplicate window: for that long
	// after storing an event the server recognises its id.
	dupWindow time.Duration
	// maxMsgSize is the output stream's max_msg_size, 0 for none: a
	// message larger is refused for good, while the ones after it are
	// stored, so it must be a dead letter before it is ever published.
	maxMsgSize int64

	batches batchPool
	docBuf  []byte // an event printed on stdout

	stats stats
	// state is why the relay is not ready; "" when it is (Ready).
	state atomic.Pointer[string]
}

type stats struct {
	raw      atomic.Uint64 // raw records handled
	events   opCounts      // events stored, by opIndex
	dead     atomic.Uint64 // events sent to the dead-letter subject
	dups     atomic.Uint64 // publishes the output stream reported as duplicates
	retries  atomic.Uint64 // republish rounds
	lastSeq  atomic.Uint64 // raw stream sequence of the last record handled
	lag      atomic.Uint64 // raw records left to read, as of the last one
	redelivs atomic.Uint64 // raw records delivered again after being handled
	skipped  atomic.Uint64 // events found already stored at start (resume point)
	// backwards: transaction fragments skipped for lying before what the
	// relay relayed of their source (render's order.go).
	backwards atomic.Uint64
	// gapRecords: missing raw records gone past (--accept-gap); rawDead,
	// undecodable ones dead-lettered (--dead-letter-raw).
	gapRecords, rawDead atomic.Uint64
	// abandoned: snapshot reads left incomplete in pieces, dropped
	// (joinPieces).
	abandoned atomic.Uint64
}

// Check reports what is wrong with c. Names are the configuration's
// words; the router's flags and pipeline file check their values first.
func (c Config) Check() error {
	for _, n := range []struct{ what, v string }{{"raw stream", c.RawStream}, {"durable", c.Durable}} {
		if n.what == "durable" && c.Replay != nil {
			continue
		}
		if err := wire.CheckName(n.v); err != nil {
			return fmt.Errorf("%s name %w", n.what, err)
		}
	}
	if c.Stream != "" {
		if err := wire.CheckName(c.Stream); err != nil {
			return fmt.Errorf("output stream name %w", err)
		}
	} else if c.Stdout == nil {
		return errors.New("a route needs an output stream or stdout")
	}
	return nil
}

// New checks cfg and returns a Relay. js should be created with
// jetstream.WithPublishAsyncTimeout, so that an ack that never arrives also
// releases the client's bookkeeping; the relay enforces PublishTimeout itself
// either way.
func New(js jetstream.JetStream, cfg Config) (*Relay, error) {
	return NewWithOutput(js, js, cfg)
}

// NewWithOutput is New for a route whose output is on another connection
// (out) than the raw stream (js).
func NewWithOutput(js, out jetstream.JetStream, cfg Config) (*Relay, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 60 * time.Second
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	env := cfg.Envelope
	if env == nil {
		env = envelope.NewNative()
	}
	rt := cfg.Route
	if rt == nil {
		var err error
		if rt, err = route.New(route.Config{Name: cfg.Durable, Prefix: cfg.Prefix}); err != nil {
			return nil, err
		}
	}
	r := &Relay{js: js, out: out, cfg: cfg, log: cfg.Log, env: env, route: rt}
	var bounds *render.Bounds
	if cfg.Replay != nil {
		bounds = &cfg.Replay.Bounds
	}
	r.render = render.New(render.Config{Route: rt, Envelope: env, Stream: cfg.Stream, Bounds: bounds, Log: cfg.Log})
	r.notReady("setting up")
	return r, nil
}

// Run relays until ctx ends (then it returns nil) or a failure that needs an
// operator: missing raw records, a raw record it cannot read, a consumer
// that went away.
func (r *Relay) Run(ctx context.Context) (err error) {
	defer func() {
		if r.cfg.Stdout != nil {
			if ferr := r.cfg.Stdout.Flush(); ferr != nil && err == nil {
				err = ferr
			}
		}
		r.notReady("stopped")
		if r.outbox != nil {
			r.outbox.close()
		}
		r.log.Info("stopped", r.totals()...)
	}()
	statsCtx, stopStats := context.WithCancel(ctx)
	defer stopStats()
	go r.logStats(statsCtx)

	started := false
	retry := backoff.New(minBackoff, maxBackoff)
	for {
		err := r.consume(ctx, &started)
		if ctx.Err() != nil || errors.Is(err, errReplayDone) {
			return nil
		}
		// Once running, a server restart can leave the consumer out of step
		// with the record in hand (its acks are never answered), or make
		// setting it up again time out: start over from the consumer's ack
		// floor; the record comes again and its stored events are skipped.
		if !started || !(errors.Is(err, errResync) || errors.Is(err, errLostDelivery) || transientNATS(err)) {
			r.markStopped(ctx, err)
			return err
		}
		in := retry.Next()
		r.log.Warn("re-reading the raw stream from the consumer's ack floor", "err", err, "in", in)
		r.notReady(fmt.Sprintf("re-reading the raw stream from the consumer's ack floor after: %v", err))
		if err := retry.Sleep(ctx, in); err != nil {
			return nil
		}
	}
}

// errResync: the relay must start again from the raw consumer's ack floor
// and the output stream's last event (a raw record that cannot be
// acknowledged, or a republish too late for the duplicate window).
var errResync = errors.New("resync with the raw consumer and the output stream")

// transientNATS is natsconn.Transient: the rule both processes share.
func transientNATS(err error) bool { return natsconn.Transient(err) }

// idleCheck is how long the relay waits for a raw record before asking
// whether one got lost on its way.
const idleCheck = 3 * time.Second

// errLostDelivery: the consumer delivered a record that never arrived.
var errLostDelivery = errors.New("a raw record was delivered but never arrived (the connection dropped); re-reading from the ack floor")

// deliveryLost reports whether the consumer has counted the same record as
// delivered and unacknowledged over two idle checks of this relay, which
// holds none: the connection dropped with the record in flight. With few
// records allowed unacknowledged, the consumer would deliver nothing more
// once they are used up, until the ack wait ends. (Comparing delivery sequences, not times, keeps
// clock skew out of it.)
func (r *Relay) deliveryLost(ctx context.Context, cons jetstream.Consumer, suspect *uint64) bool {
	ictx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	ci, err := cons.Info(ictx)
	if err != nil || ci.NumAckPending == 0 {
		*suspect = 0
		return false
	}
	if *suspect != 0 && *suspect == ci.Delivered.Consumer {
		return true
	}
	*suspect = ci.Delivered.Consumer
	return false
}

// record is one raw record on its way through the relay.
type record struct {
	msg   jetstream.Msg
	seq   uint64
	meta  *jetstream.MsgMetadata
	src   string
	txs   int
	b     *batch
	start time.Time // taken into work, before any of its events was published
	// sent and stored: its first event published and its last one
	// acknowledged, for Config.PublishLatency only.
	sent, stored time.Time

	// Set when its events were published asynchronously: done closes once
	// the first acked of them are known stored (all, unless err).
	done  chan struct{}
	acked int
	err   error
	// failed: a publish of it failed, so the client may still hold (and
	// retry) some of its messages, which point into its batch.
	failed bool
	// span traces it; nil while tracing is off.
	span trace.Span
}

// take decodes and renders raw record msg. It returns nil for a record
// that needs no more work: one delivered again after it was handled (acked
// again here) or again while it is still in the window (left to the
// original delivery).
func (r *Relay) take(ctx context.Context, msg jetstream.Msg) (*record, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("raw record without JetStream metadata: %w", err)
	}
	seq := meta.Sequence.Stream
	if seq <= r.last {
		// Delivered again after being handled (an ack got lost): its events
		// are stored, so just acknowledge it again.
		r.stats.redelivs.Add(1)
		r.log.Debug("raw record already relayed; acknowledging again", "seq", seq)
		return nil, r.ack(ctx, msg)
	}
	if seq <= r.seen {
		// Delivered again while its events are being published (its ack
		// wait ended): the first delivery gets acknowledged.
		r.stats.redelivs.Add(1)
		return nil, nil
	}
	if seq != r.seen+1 {
		if err := r.missing(ctx, seq); err != nil {
			return nil, err
		}
	}
	rec := &record{msg: msg, seq: seq, meta: meta, start: time.Now()}
	raw := render.Raw{Seq: seq, Size: len(msg.Data())}
	if r.cfg.Tracer != nil {
		rec.span = r.startSpan(ctx, msg, seq)
		raw.TraceParent = tracing.Header(rec.span.SpanContext())
	}
	var m wire.Message
	if err := wire.Unmarshal(msg.Data(), &m); err != nil {
		dl, err := r.undecodable(rec, err)
		if err != nil {
			rec.endSpan(err)
		}
		return dl, err
	}
	maxPayload := r.maxPayload()
	if hasPieces(&m) {
		if raw.Oversize, err = r.joinPieces(ctx, msg, seq, &m, maxPayload); err != nil {
			rec.endSpan(err)
			return nil, err
		}
	}
	if r.render.NeedsEarlier(&m) {
		if err := r.countEarlier(ctx, seq, msg.Subject(), &m); err != nil {
			rec.endSpan(err)
			return nil, err
		}
	}
	rec.b = r.batches.get()
	r.render.Record(&rec.b.Batch, &m, raw, maxPayload)
	if b := &rec.b.Batch; b.Missing > 0 {
		r.log.Warn("the output lacks events before ones it stored (it refused them, or lost them in a failover): publishing them now, after those",
			"raw_seq", seq, "subject", msg.Subject(), "source", m.Source.ID(), "events", b.Missing)
	}
	if b := &rec.b.Batch; b.Backwards > 0 {
		r.stats.backwards.Add(uint64(b.Backwards))
		r.log.Warn("raw record holds transactions at or before what this route relayed of their source already: skipped, not published twice (a copy of an old record published again?)",
			"raw_seq", seq, "subject", msg.Subject(), "source", m.Source.ID(), "fragments", b.Backwards, "from_lsn", wire.LSN(b.BackFrom), "to_lsn", wire.LSN(b.BackTo))
	}
	rec.b.wrap()
	rec.src, rec.txs = m.Source.Name, len(m.Txs)
	if rec.span != nil {
		rec.span.AddEvent("rendered", trace.WithAttributes(attribute.Int("pgjet.events", len(rec.b.Msgs)), attribute.Int("pgjet.txs", rec.txs)))
	}
	r.seen = seq
	return rec, nil
}

// maxPayload is the largest message the output takes: the server's
// max_payload, or the output stream's max_msg_size when lower.
func (r *Relay) maxPayload() int64 {
	limit := r.out.Conn().MaxPayload()
	if r.maxMsgSize > 0 && r.maxMsgSize < limit {
		limit = r.maxMsgSize
	}
	return limit
}

// finish completes a record whose events are all stored: prints them,
// acknowledges the raw record and counts it.
func (r *Relay) finish(ctx context.Context, rec *record) error {
	b := rec.b
	if r.cfg.Stdout != nil {
		if err := r.print(b.Msgs); err != nil {
			return err
		}
	}
	crashpoint.Hit("publish-before-ack")
	if err := r.ack(ctx, rec.msg); err != nil {
		return err
	}
	r.last = rec.seq
	if r.stopped != 0 && rec.seq >= r.stopped {
		r.clearStopped(ctx)
	}
	r.stats.raw.Add(1)
	r.countEvents(b.Msgs)
	if r.cfg.PublishLatency != nil && !rec.sent.IsZero() {
		r.cfg.PublishLatency.Observe(rec.stored.Sub(rec.sent).Seconds())
	}
	r.stats.dead.Add(uint64(b.Dead))
	r.stats.skipped.Add(uint64(b.Skipped))
	r.stats.lastSeq.Store(rec.seq)
	r.stats.lag.Store(rec.meta.NumPending)
	if rec.span != nil {
		rec.span.AddEvent("stored")
		rec.span.End()
	}
	r.log.Debug("relayed raw record", "seq", rec.seq, "source", rec.src, "txs", rec.txs, "events", len(b.Msgs)-b.Dead,
		"dead_letters", b.Dead, "pending", rec.meta.NumPending, "took", time.Since(rec.start))
	if !rec.failed {
		r.batches.put(b)
	}
	rec.b = nil
	return nil
}

func (r *Relay) print(msgs []render.Msg) error {
	for i := range msgs {
		m := &msgs[i]
		if m.Kind == render.DeadLetter || m.Kind == render.Tombstone {
			continue
		}
		r.docBuf = r.env.Document(r.docBuf[:0], &m.Event, m.Data)
		if err := r.cfg.Stdout.Write(&m.Event, r.docBuf); err != nil {
			return err
		}
	}
	return r.cfg.Stdout.Flush()
}

// ack acknowledges a raw record and waits for the server to confirm it,
// retrying: with few unacknowledged records allowed, a lost ack would stall
// the consumer for the whole ack wait.
func (r *Relay) ack(ctx context.Context, msg jetstream.Msg) error {
	if r.cfg.Replay != nil {
		return nil // an ordered consumer takes no acks
	}
	retry := backoff.New(minBackoff, maxBackoff)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		err := msg.DoubleAck(actx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= 3 {
			return fmt.Errorf("%w: the raw record cannot be acknowledged (the consumer is out of step): %v", errResync, err)
		}
		in := retry.Next()
		r.log.Warn("acknowledging raw record failed, retrying", "err", err, "attempt", attempt, "retry_in", in)
		if err := retry.Sleep(ctx, in); err != nil {
			return err
		}
	}
}

func (r *Relay) logStats(ctx context.Context) {
	t := time.NewTicker(r.cfg.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.log.Info("progress", r.totals()...)
		}
	}
}

func (r *Relay) totals() []any {
	return []any{
		"raw_records", r.stats.raw.Load(),
		"events", r.events(),
		"dead_letters", r.stats.dead.Load(),
		"duplicates", r.stats.dups.Load(),
		"skipped_stored", r.stats.skipped.Load(),
		"skipped_backwards", r.stats.backwards.Load(),
		"republish_rounds", r.stats.retries.Load(),
		"raw_seq", r.stats.lastSeq.Load(),
		"raw_pending", r.stats.lag.Load(),
	}
}

// Stats are the relay's running totals.
type Stats struct {
	RawRecords  uint64
	Events      uint64
	DeadLetters uint64
	Duplicates  uint64
	Republishes uint64
	Redelivered uint64
	// Skipped counts events not published again because the output stream
	// already held them when the relay started.
	Skipped uint64
	// Backwards counts transaction fragments not published because they
	// lay before what the relay had relayed of their source.
	Backwards uint64
	// GapRecords counts missing raw records gone past (--accept-gap),
	// RawDeadLetters undecodable ones dead-lettered (--dead-letter-raw).
	GapRecords, RawDeadLetters uint64
	// AbandonedReads counts snapshot reads a stopped collector left stored
	// in part, in pieces, which were dropped: their rows come again from
	// the backfill that goes on with the snapshot.
	AbandonedReads uint64
}

// Stats returns the totals so far; safe to call while Run runs.
func (r *Relay) Stats() Stats {
	return Stats{
		RawRecords:  r.stats.raw.Load(),
		Events:      r.events(),
		DeadLetters: r.stats.dead.Load(),
		Duplicates:  r.stats.dups.Load(),
		Republishes: r.stats.retries.Load(),
		Redelivered: r.stats.redelivs.Load(),
		Skipped:     r.stats.skipped.Load(),
		Backwards:   r.stats.backwards.Load(),
		GapRecords:  r.stats.gapRecords.Load(),

		RawDeadLetters: r.stats.rawDead.Load(),
		AbandonedReads: r.stats.abandoned.Load(),
	}
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)
