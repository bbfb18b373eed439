package rawstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/lag"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/crashpoint"
	"github.com/pgjet/pgjet/shared/wire"
)

// Publisher batches fragments into raw messages and publishes them one at a
// time: while one message waits for its (fsynced) ack, the next batch grows.
// With a single message in flight the stream can never hold a later message
// without an earlier one, and a retry with the same Nats-Msg-Id is safe.
type Publisher struct {
	js      jetstream.JetStream
	stream  string
	subject string
	source  wire.Source
	// lastSeq is the stream sequence of the subject's last record, which
	// every publish expects (Nats-Expected-Last-Subject-Sequence): a
	// record of another writer in between fails it. Run's goroutine only.
	lastSeq  uint64
	maxBytes int
	// maxChanges bounds the changes of a raw message (0: no bound), except
	// that a message holds at least one fragment.
	maxChanges int
	maxQueue   int
	timeout    time.Duration
	linger     time.Duration
	log        *slog.Logger

	mu            sync.Mutex
	queue         []*pgoutput.Fragment
	queued        int // estimated bytes in queue
	queuedChanges int
	ready         chan struct{}
	space         chan struct{}
	inFlight      atomic.Int64 // bytes of the fragments added and not yet acknowledged
	// queueSeq is the checkpoint sequence number of queue[0]: the
	// publisher alone tracks fragments in its checkpoint, in queue order.
	queueSeq uint64

	// Used by Run's goroutine only, one raw message at a time: the bytes of
	// a message are not needed once it is acknowledged.
	assembler Assembler
	encoder   wire.Encoder

	totals *Totals
	// publishLatency, when set, observes each raw publish's seconds from
	// its first attempt to its ack.
	publishLatency Observer

	// checkpoint tracks the fragments added until they are acknowledged,
	// and owns the confirmed position.
	checkpoint *checkpoint.Checkpoint
}

// Totals are a collector's figures since the process started, carried from
// one replication session's publisher to the next: the progress log and
// /metrics both read them, and nothing resets them.
type Totals struct {
	Changes      atomic.Uint64 // acknowledged
	Transactions atomic.Uint64 // whose last fragment was acknowledged
	Messages     atomic.Uint64 // raw messages acknowledged
	// From commit to decoded (when the fragment closing the transaction is
	// added) and to stored (its raw record acknowledged).
	ReadLag, StoredLag lag.Histogram
}

// Observer takes a value: a prometheus.Observer, without this package
// depending on Prometheus.
type Observer interface{ Observe(float64) }

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Stream and Subject: where the records go.
	Stream  string
	Subject string
	Source  wire.Source
	// LastSeq is the stream sequence of the subject's last record (0:
	// none), read when the session took the slot. Each publish expects the
	// subject to end there, or at its own previous record: a source has
	// one writer, and a record of anyone else in between stops the
	// publisher with a *SubjectMovedError.
	LastSeq uint64
	// MaxMessageBytes bounds a raw message (below the server's max payload).
	MaxMessageBytes int
	// MaxMessageChanges bounds the changes of a raw message (0: none): a
	// pipeline file's batch.max_events. A fragment with more goes alone.
	MaxMessageChanges int
	// MaxQueueBytes bounds what waits to be published; Add blocks beyond it.
	MaxQueueBytes int
	// AckTimeout bounds one publish attempt.
	AckTimeout time.Duration
	// Linger is the least time between the starts of two publishes while
	// the queue holds less than a full message.
	Linger time.Duration
	// Checkpoint owns the confirmed position, starting at the one already
	// confirmed to Postgres; the publisher alone tracks and acknowledges
	// fragments there. Nil: a checkpoint of the publisher's own, from 0.
	Checkpoint *checkpoint.Checkpoint
	// Totals, shared by the process's publishers; nil: the publisher's own.
	Totals *Totals
	// PublishLatency, when set, observes the seconds from each raw
	// publish's first attempt to its ack.
	PublishLatency Observer
	Log            *slog.Logger
}

// NewPublisher returns a Publisher; run it with Run.
func NewPublisher(js jetstream.JetStream, c PublisherConfig) *Publisher {
	p := &Publisher{
		js:         js,
		stream:     c.Stream,
		subject:    c.Subject,
		lastSeq:    c.LastSeq,
		source:     c.Source,
		maxBytes:   c.MaxMessageBytes,
		maxChanges: c.MaxMessageChanges,
		maxQueue:   c.MaxQueueBytes,
		timeout:    c.AckTimeout,
		linger:     c.Linger,
		log:        c.Log,
		ready:      make(chan struct{}, 1),
		space:      make(chan struct{}, 1),
		totals:     c.Totals,
		checkpoint: c.Checkpoint,

		publishLatency: c.PublishLatency,
	}
	if p.totals == nil {
		p.totals = new(Totals)
	}
	if p.checkpoint == nil {
		p.checkpoint = checkpoint.New(0)
	}
	return p
}

// ErrQueueFull is returned by Add when the queue stayed full for the wait.
var ErrQueueFull = errors.New("raw publish queue full")

// Add queues a fragment. When the queue is full it waits up to wait and then
// returns ErrQueueFull, so that the caller can keep its replication
// connection alive (status updates) while JetStream is slow or down.
func (p *Publisher) Add(ctx context.Context, f *pgoutput.Fragment, wait time.Duration) error {
	if f.Tx.Final {
		// Decoded now, whether or not the queue has room yet; observed
		// outside p.mu, which the publishing goroutine also needs.
		p.totals.ReadLag.Observe(f.Tx.CommitTime, time.Now())
	}
	var timer *time.Timer
	for {
		p.mu.Lock()
		if p.queued < p.maxQueue || len(p.queue) == 0 {
			p.queue = append(p.queue, f)
			p.queued += f.Size
			p.queuedChanges += len(f.Tx.Changes)
			var end uint64
			if f.Tx.Final {
				end = f.Tx.EndLSN
			}
			seq := p.checkpoint.Track(end)
			if len(p.queue) == 1 {
				p.queueSeq = seq
			}
			p.inFlight.Add(int64(f.Size))
			p.mu.Unlock()
			select {
			case p.ready <- struct{}{}:
			default:
			}
			return nil
		}
		p.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return ErrQueueFull
		case <-p.space:
		}
	}
}

// Idle reports whether every fragment added so far has been acknowledged.
func (p *Publisher) Idle() bool { return p.checkpoint.Idle() }

// Confirmed is the WAL position up to which every transaction is stored.
func (p *Publisher) Confirmed() uint64 { return p.checkpoint.Confirmed() }

// Totals returns the figures the publisher adds to.
func (p *Publisher) Totals() *Totals { return p.totals }

// Stats returns counts of acknowledged changes and raw messages (of its
// Totals: the process's, when shared).
func (p *Publisher) Stats() (changes, messages uint64) {
	return p.totals.Changes.Load(), p.totals.Messages.Load()
}

// InFlightBytes is the size of the fragments added and not yet
// acknowledged: queued, or in the publish awaiting its ack.
func (p *Publisher) InFlightBytes() int64 { return p.inFlight.Load() }

// Run publishes queued fragments until ctx ends. It returns only on ctx end
// or a permanent error (one that a retry cannot fix).
func (p *Publisher) Run(ctx context.Context) error {
	var buf []*pgoutput.Fragment
	var first uint64
	var started time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.ready:
		}
		for {
			if err := p.lingerFrom(ctx, started); err != nil {
				return nil
			}
			buf, first = p.take(buf[:0])
			if len(buf) == 0 {
				break
			}
			// From a publish, not from a look at an empty queue: the first
			// transaction after a quiet spell goes out at once.
			started = time.Now()
			if err := p.publish(ctx, buf, first); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// lingerFrom waits until linger has passed since the previous publish
// started, unless a full message is queued (or gets queued meanwhile) or ctx
// ends. While one publish waits for its fsync the next batch grows anyway;
// at moderate rates that wait is short, and every raw message costs the
// server an fsync and each router a delivery and an ack.
func (p *Publisher) lingerFrom(ctx context.Context, started time.Time) error {
	if p.linger <= 0 {
		return nil
	}
	wait := p.linger - time.Since(started)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		p.mu.Lock()
		full := p.queued >= p.maxBytes || p.maxChanges > 0 && p.queuedChanges >= p.maxChanges
		p.mu.Unlock()
		if full {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case <-p.ready:
		}
	}
}

// Drain waits until everything queued is acknowledged or ctx ends; Run must
// still be running.
func (p *Publisher) Drain(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !p.Idle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// take moves up to maxBytes (and maxChanges) of queued fragments, at least
// one, into buf, and returns the checkpoint sequence number of the first.
func (p *Publisher) take(buf []*pgoutput.Fragment) ([]*pgoutput.Fragment, uint64) {
	p.mu.Lock()
	first := p.queueSeq
	n, size, changes := 0, 0, 0
	for n < len(p.queue) {
		f := p.queue[n]
		if n > 0 && (size+f.Size > p.maxBytes || p.maxChanges > 0 && changes+len(f.Tx.Changes) > p.maxChanges) {
			break
		}
		size += f.Size
		changes += len(f.Tx.Changes)
		n++
	}
	buf = append(buf, p.queue[:n]...)
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	p.queueSeq += uint64(n)
	p.queued -= size
	p.queuedChanges -= changes
	if len(p.queue) == 0 {
		p.queue = nil // let the backing array go
	}
	p.mu.Unlock()
	if n > 0 {
		select {
		case p.space <- struct{}{}:
		default:
		}
	}
	return buf, first
}

// publish publishes frags, whose first has checkpoint sequence number
// first, as one raw message, retrying until it is acknowledged.
func (p *Publisher) publish(ctx context.Context, frags []*pgoutput.Fragment, first uint64) error {
	m := p.assembler.Assemble(p.source, frags)
	data, err := p.encoder.Marshal(m)
	if err != nil {
		return err
	}
	from, _ := m.First()
	to, _ := m.Last()
	msg := &nats.Msg{Subject: p.subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, wire.RawMsgID(p.source, from, to))

	var began time.Time
	if p.publishLatency != nil {
		began = time.Now()
	}
	retry := backoff.New(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.lastSeq, 10))
		var seq uint64
		seq, err = p.attempt(ctx, msg)
		if wrongLastSequence(err) {
			seq, err = p.resolveMoved(ctx, msg)
		}
		if err == nil {
			p.lastSeq = seq
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var moved *SubjectMovedError
		if errors.As(err, &moved) {
			return err
		}
		if permanent(err) {
			return fmt.Errorf("publish raw message (%d bytes) to %s: %w", len(data), p.subject, err)
		}
		in := retry.Next()
		p.log.Warn("raw publish failed, retrying with the same message id; the slot is not confirmed past it",
			"attempt", attempt, "retry_in", in, "err", err)
		if err := retry.Sleep(ctx, in); err != nil {
			return err
		}
	}
	crashpoint.Hit("ack-before-confirm")

	var changes, txs uint64
	var size int64
	now := time.Now()
	if p.publishLatency != nil {
		p.publishLatency.Observe(now.Sub(began).Seconds())
	}
	for _, f := range frags {
		changes += uint64(len(f.Tx.Changes))
		size += int64(f.Size)
		if f.Tx.Final {
			txs++
			p.totals.StoredLag.Observe(f.Tx.CommitTime, now)
		}
	}
	p.totals.Changes.Add(changes)
	p.totals.Transactions.Add(txs)
	p.totals.Messages.Add(1)
	p.inFlight.Add(-size)
	p.checkpoint.Ack(first, len(frags))
	if last := &frags[len(frags)-1].Tx; !last.Final {
		crashpoint.Hit("mid-fragment")
		if last.IsPiece() && !last.LastPiece() {
			crashpoint.Hit("mid-piece")
		}
	}
	// Stored: the fragments, and the assembled message pointing into them,
	// are done with.
	p.assembler.Forget()
	for _, f := range frags {
		f.Release()
	}
	return nil
}

// attempt publishes msg once and waits for its ack, returning the stream
// sequence it was stored at.
func (p *Publisher) attempt(ctx context.Context, msg *nats.Msg) (uint64, error) {
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return 0, err
	}
	if crashpoint.Armed("publish-before-ack") {
		// Make sure the message reached the server, so the crash really
		// falls between a stored message and its ack.
		_ = p.js.Conn().Flush()
		crashpoint.Hit("publish-before-ack")
	}
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case ack := <-fut.Ok():
		return ack.Sequence, nil
	case err := <-fut.Err():
		return 0, err
	case <-timer.C:
		return 0, fmt.Errorf("no ack within %s", p.timeout)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// SubjectMovedError says the raw subject no longer ends where the publisher
// expected: a record it did not write is there. Last is that record. The
// session tells another writer (it stops: one writer per source) from a
// record of its own slot (an earlier session's late publish, an
// operator's purge: it starts again from the slot).
type SubjectMovedError struct {
	Subject  string
	Expected uint64 // the sequence the subject was expected to end at
	Last     Last
	Found    bool // false: the subject is empty (purged)
}

func (e *SubjectMovedError) Error() string {
	if !e.Found {
		return fmt.Sprintf("raw subject %s was emptied (purged?) while this collector wrote it: expected its last record at sequence %d", e.Subject, e.Expected)
	}
	return fmt.Sprintf("raw subject %s holds a record this collector did not write (sequence %d, from slot %q of database %q on system %d, timeline %d); expected its last record at sequence %d",
		e.Subject, e.Last.Seq, e.Last.Source.Slot, e.Last.Source.Database, e.Last.Source.SystemID, e.Last.Source.Timeline, e.Expected)
}

// resolveMoved finds out why msg's expected last sequence failed: an
// earlier attempt of this very message was stored (its ack got lost), or
// somebody else wrote the subject. It returns the sequence msg is stored
// at, or a *SubjectMovedError.
func (p *Publisher) resolveMoved(ctx context.Context, msg *nats.Msg) (uint64, error) {
	last, found, err := LastRecord(ctx, p.js, p.stream, strings.TrimPrefix(p.subject, wire.RawSubjectPrefix))
	if err != nil {
		return 0, fmt.Errorf("raw subject %s did not end at sequence %d as expected, and reading its last record failed: %w", p.subject, p.lastSeq, err)
	}
	if found && last.MsgID == msg.Header.Get(jetstream.MsgIDHeader) {
		return last.Seq, nil
	}
	return 0, &SubjectMovedError{Subject: p.subject, Expected: p.lastSeq, Last: last, Found: found}
}

// wrongLastSequence reports whether err is JetStream refusing a publish
// whose expected last subject sequence does not hold.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// permanent errors cannot be fixed by publishing again.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// A store failure; only "message too large" cannot heal.
		if apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum ||
			apiErr.ErrorCode == jsStreamStoreFailed && strings.Contains(apiErr.Description, "too large") {
			return true
		}
	}
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject)
}

// Assembler builds raw messages from fragments, merging their relation
// tables: a relation shared by many small transactions is stored once. It
// reuses its buffers from one message to the next.
type Assembler struct {
	m       wire.Message
	index   map[*wire.Relation]int32
	remap   []int32
	changes []wire.Change
}

// Forget drops the last message's references to its fragments, which
// may then be reused.
func (a *Assembler) Forget() { clear(a.m.Txs) }

// Assemble returns the raw message of frags. The message is valid until the
// next call: encode it before assembling the next one.
func (a *Assembler) Assemble(src wire.Source, frags []*pgoutput.Fragment) *wire.Message {
	if a.index == nil {
		a.index = make(map[*wire.Relation]int32)
	}
	clear(a.index)
	m := &a.m
	a.Forget()
	*m = wire.Message{Source: src, Txs: m.Txs[:0], Relations: m.Relations[:0]}
	// The changes are copied to renumber their relations, not renumbered in
	// place: the pieces of one change share its TruncateRels, and each
	// piece's message numbers the relations its own way. One buffer holds
	// the copies of all of them.
	n := 0
	for _, f := range frags {
		if len(f.Rels) > 0 {
			n += len(f.Tx.Changes)
		}
	}
	clear(a.changes) // the previous message's copies: beyond them it is zero
	if cap(a.changes) < n {
		a.changes = make([]wire.Change, 0, n)
	}
	a.changes = a.changes[:0]
	for _, f := range frags {
		a.remap = a.remap[:0]
		for _, r := range f.Rels {
			j, ok := a.index[r]
			if !ok {
				j = int32(len(m.Relations))
				m.Relations = append(m.Relations, *r)
				a.index[r] = j
			}
			a.remap = append(a.remap, j)
		}
		tx := f.Tx
		if len(f.Rels) > 0 {
			start := len(a.changes)
			a.changes = append(a.changes, f.Tx.Changes...)
			tx.Changes = a.changes[start:len(a.changes):len(a.changes)]
			for k := range tx.Changes {
				c := &tx.Changes[k]
				switch c.Op {
				case wire.OpInsert, wire.OpUpdate, wire.OpDelete:
					c.Rel = a.remap[c.Rel]
				case wire.OpTruncate:
					rels := make([]int32, len(c.TruncateRels))
					for n, r := range c.TruncateRels {
						rels[n] = a.remap[r]
					}
					c.TruncateRels = rels
				}
			}
		}
		m.Txs = append(m.Txs, tx)
	}
	return m
}

// jsStreamStoreFailed is JetStream's error code for a message the stream
// could not store (nats-server's JSStreamStoreFailedF); nats.go has no name
// for it.
const jsStreamStoreFailed jetstream.ErrorCode = 10077
