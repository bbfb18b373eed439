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
}

// note takes in the id of a message read from the output, in any order.
func (r *Relay) note(st *resumeState, id string) {
	if p, ok := wire.ParseEventID(id); ok {
		s := st.points[p.Source]
		if s == nil {
			s = &render.Stored{}
			st.points[p.Source] = s
		}
		s.Add(p)
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
		return st, r.readPartitionResume(ctx, s, filters, last.Sequence, &st)
	}
	// The last message need not name a source (the dead letter of an
	// undecodable raw record, or one an operator published): the events
	// before it still do.
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
		r.note(&st, msg.Headers().Get(jetstream.MsgIDHeader))
	}
	if len(st.points) == 0 && len(st.rawDead) == 0 {
		// Not written by a router (or by an older one): nothing to skip by.
		r.log.Warn("the last messages of the output stream have no pgjet event id; relying on the duplicate window alone",
			"id", last.Header.Get(jetstream.MsgIDHeader), "seq", last.Sequence)
	}
	return st, nil
}
