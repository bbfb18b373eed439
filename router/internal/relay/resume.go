package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// resumePoint is the last event of one source the output stream holds. A
// router killed (or resyncing) while records of its window were published
// leaves part of their events stored, possibly of several sources; when the
// records come back, the stored events are skipped by position, which stays
// exact however long the restart took (the stream's duplicate window only
// covers short gaps).
type resumePoint struct {
	source string // wire.Source.ID()
	lsn    uint64
	index  uint64
	part   int // truncate part, -1 for none
}

// readResumePoints reads the last event of every source among the last
// maxWindowEvents messages on the relay's subjects. That covers every event
// of the records that can come back: the window never holds more events
// unacknowledged, and a larger record is published alone.
func (r *Relay) readResumePoints(ctx context.Context) (map[string]*resumePoint, error) {
	s, err := r.out.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	filters := r.route.Subjects()
	var last *jetstream.RawStreamMsg
	for _, f := range filters {
		m, err := s.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the last event of %s: %w", r.cfg.Stream, err)
		}
		if last == nil || m.Sequence > last.Sequence {
			last = m
		}
	}
	if last == nil {
		return nil, nil
	}
	if _, ok := parseEventID(last.Header.Get(jetstream.MsgIDHeader)); !ok {
		// Not written by a router (or by an older one): nothing to skip by.
		r.log.Warn("last message of the output stream has no pgjet event id; relying on the duplicate window alone",
			"id", last.Header.Get(jetstream.MsgIDHeader), "seq", last.Sequence)
		return nil, nil
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
		return nil, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
	}
	defer it.Stop()
	points := make(map[string]*resumePoint)
	for seq := uint64(0); seq < last.Sequence; {
		nctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read the last events of %s (up to seq %d): %w", r.cfg.Stream, last.Sequence, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read the last events of %s: %w", r.cfg.Stream, err)
		}
		seq = meta.Sequence.Stream
		// A source's events are stored in order: the later one wins.
		if p, ok := parseEventID(msg.Headers().Get(jetstream.MsgIDHeader)); ok {
			points[p.source] = p
		}
	}
	return points, nil
}

// parseEventID reads the resume point an event id names.
func parseEventID(id string) (*resumePoint, bool) {
	e, ok := wire.ParseEventID(id)
	if !ok {
		return nil, false
	}
	return &resumePoint{source: e.Source, lsn: e.CommitLSN, index: e.Index, part: e.Part}, true
}

// stored reports whether the event is at or before the resume point of its
// source, i.e. already in the output stream.
func (p *resumePoint) stored(ev *envelope.Event, part int) bool {
	lsn := ev.Tx.CommitLSN
	switch {
	case lsn != p.lsn:
		return lsn < p.lsn
	case ev.Index != p.index:
		return ev.Index < p.index
	default:
		return part <= p.part
	}
}
