package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
	"github.com/pgjet/pgjet/shared/wire"
)

// The resume point of a source is the last of its events the output stream
// holds (a wire.EventID). A router killed (or resyncing) while records of
// its window were published leaves part of their events stored, possibly
// of several sources; when the records come back, the stored events are
// skipped by position (wire.EventID.Compare), which stays exact however
// long the restart took (the stream's duplicate window only covers short
// gaps). A change event missing among the ones read, refused while later
// ones were stored, is published then instead (render.Stored).

// resumeState is what the output stream holds of the records that can
// come again: the last event of each source, and the raw records whose
// dead letters it holds (--dead-letter-raw; they name no source).
type resumeState struct {
	points  map[string]*render.Stored
	rawDead map[uint64]struct{}
	// firstSeq is the stream sequence of the first event read into points.
	firstSeq uint64
}

// note takes in the id of a message read from the output, in any order,
// at stream sequence seq.
func (r *Relay) note(st *resumeState, id string, seq uint64) {
	if p, ok := wire.ParseEventID(id); ok {
		s := st.points[p.Source]
		if s == nil {
			s = &render.Stored{}
			st.points[p.Source] = s
		}
		s.Add(p)
		if st.firstSeq == 0 || seq < st.firstSeq {
			st.firstSeq = seq
		}
		return
	}
	if seq, ok := render.ParseRawDeadLetterID(r.cfg.RawStream, id); ok {
		st.rawDead[seq] = struct{}{}
	}
}

// readResumePoints reads the last event of every source among the last
// maxWindowEvents messages on the relay's subjects. That covers every event
// of the records that can come back: the window never holds more events
// unacknowledged, and a larger record is published alone.
func (r *Relay) readResumePoints(ctx context.Context) (resumeState, error) {
	st := resumeState{points: map[string]*render.Stored{}, rawDead: map[uint64]struct{}{}}
	s, err := r.out.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return st, fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	filters := r.route.Subjects()
	var last *jetstream.RawStreamMsg
	for _, f := range filters {
		m, err := s.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("read the last event of %s: %w", r.cfg.Stream, err)
		}
		if last == nil || m.Sequence > last.Sequence {
			last = m
		}
	}
	if last == nil {
		return st, nil
	}
	if r.route.Partition() != "" {
		if err := r.readPartitionResume(ctx, s, filters, last.Sequence, &st); err != nil {
			return st, err
		}
		if afterResumeRead != nil {
			afterResumeRead()
		}
		return st, r.checkDeleted(ctx, s, last.Sequence, &st)
	}
	// The last message need not name a source (the dead letter of an
	// undecodable raw record, or one an operator published): the events
	// before it still do. It counts as read: it may go before the read
	// below reaches it.
	r.note(&st, last.Header.Get(jetstream.MsgIDHeader), last.Sequence)
	if beforeResumeRead != nil {
		beforeResumeRead()
	}
	start := uint64(1)
	if last.Sequence > maxWindowEvents {
		start = last.Sequence - maxWindowEvents + 1
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		HeadersOnly:    true,
	})
	if err != nil {
		return st, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return st, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
	}
	defer it.Stop()
	for seq := uint64(0); seq < last.Sequence; {
		nctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return st, fmt.Errorf("read the last events of %s (up to seq %d): %w", r.cfg.Stream, last.Sequence, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return st, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
		}
		seq = meta.Sequence.Stream
		r.note(&st, msg.Headers().Get(jetstream.MsgIDHeader), seq)
		if meta.NumPending == 0 {
			// The last message went meanwhile (a work-queue or interest
			// consumer's ack, an expiry): nothing more comes to wait for.
			break
		}
	}
	if len(st.points) == 0 && len(st.rawDead) == 0 {
		// Not written by a router (or by an older one): nothing to skip by.
		r.log.Warn("the last messages of the output stream have no pgjet event id; relying on the duplicate window alone",
			"id", last.Header.Get(jetstream.MsgIDHeader), "seq", last.Sequence)
	}
	if afterResumeRead != nil {
		afterResumeRead()
	}
	return st, r.checkDeleted(ctx, s, last.Sequence, &st)
}

// afterResumeRead, set by a test, runs between reading the output's last
// events and asking the stream what it deleted: what the output does then
// (a head removal, an operator) must not make a deleted event look refused.
// beforeResumeRead runs between finding the last message and reading the
// window up to it: the last message may go then.
var afterResumeRead, beforeResumeRead func()

// maxDeletedDetails bounds the deleted sequences checkDeleted asks the
// server to list; a stream with more is taken to have deleted some among
// those read. The list comes in one reply of about 6.5 bytes per deleted
// sequence (measured): 50,000 keep it near 330 KB, within the 1 MB
// max_payload a leaf node link enforces on what crosses it (a larger reply
// closes the link, at every restart of a router reaching its output
// through one).
const maxDeletedDetails = 50_000

// checkDeleted takes what was read of each source as a prefix when the
// output deleted messages between the first event read (st.firstSeq) and
// last (render.Stored.AsPrefix). A position missing among the events read
// is then either refused or stored and deleted since (a limit per subject
// with discard old, work-queue or interest retention, an operator): the
// two cannot be told apart, and publishing a deleted event again would put
// it after newer ones. Refused events never take a sequence, so without
// deletions a missing position can only be one the output refused. The
// stream is asked after reading, so a deletion before a message was read
// is in its list, unless the stream's head has moved past it since (an
// expiry, an ack of a work-queue consumer): the server then lists it no
// more, and a first sequence past the first event read says so.
func (r *Relay) checkDeleted(ctx context.Context, s jetstream.Stream, last uint64, st *resumeState) error {
	if len(st.points) == 0 {
		return nil
	}
	first := st.firstSeq
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	deleted := info.State.FirstSeq > first || info.State.NumDeleted > maxDeletedDetails
	if n := info.State.NumDeleted; n > 0 && !deleted {
		if info, err = s.Info(ctx, jetstream.WithDeletedDetails(true)); err != nil {
			return fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
		}
		deleted = info.State.FirstSeq > first
		for _, seq := range info.State.Deleted {
			if deleted {
				break
			}
			deleted = seq >= first && seq <= last
		}
	}
	if deleted {
		r.log.Info("the output deleted messages among its last events: those read are taken as stored up to each source's last", "from_seq", first, "to_seq", last)
		for _, p := range st.points {
			p.AsPrefix()
		}
	}
	return nil
}
