package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// The resume point of a source is the last of its events the output stream
// holds (a wire.EventID). A router killed (or resyncing) while records of
// its window were published leaves part of their events stored, possibly
// of several sources; when the records come back, the stored events are
// skipped by position (wire.EventID.Compare), which stays exact however
// long the restart took (the stream's duplicate window only covers short
// gaps).

// readResumePoints reads the last event of every source among the last
// maxWindowEvents messages on the relay's subjects. That covers every event
// of the records that can come back: the window never holds more events
// unacknowledged, and a larger record is published alone.
func (r *Relay) readResumePoints(ctx context.Context) (map[string]*wire.EventID, error) {
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
	if r.route.Partition() != "" {
		return r.readPartitionResume(ctx, s, filters, last.Sequence)
	}
	if _, ok := wire.ParseEventID(last.Header.Get(jetstream.MsgIDHeader)); !ok {
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
	points := make(map[string]*wire.EventID)
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
		if p, ok := wire.ParseEventID(msg.Headers().Get(jetstream.MsgIDHeader)); ok {
			points[p.Source] = &p
		}
	}
	return points, nil
}
