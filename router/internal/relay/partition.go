package relay

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// Partitioned routers (route.Config.Partition) share one output: each reads
// every raw record (so gap detection sees the whole sequence) and publishes
// its share, marking every message with wire.PartitionHeader. The others'
// messages interleave with a router's own in the output, so its resume
// points come from its own last messages: it reads the output backwards
// until it has seen as many of its own as can be unacknowledged (the
// window), or the stream's start.

// scanChunk is how many messages one backward step reads.
const scanChunk = 4096

// readPartitionResume reads the resume point of every source from the
// router's own messages among the output's last, backwards from last.
func (r *Relay) readPartitionResume(ctx context.Context, s jetstream.Stream, filters []string, last uint64, st *resumeState) error {
	mine := r.route.Partition()
	own, read := 0, 0
	for end := last; end >= 1 && own < maxWindowEvents; {
		start := uint64(1)
		if end > scanChunk {
			start = end - scanChunk + 1
		}
		msgs, err := r.readHeaders(ctx, s, filters, start, end)
		if err != nil {
			return err
		}
		read += len(msgs)
		for i := len(msgs) - 1; i >= 0 && own < maxWindowEvents; i-- {
			if msgs[i].Get(wire.PartitionHeader) != mine {
				continue
			}
			own++
			r.note(st, msgs[i].Get(jetstream.MsgIDHeader))
		}
		end = start - 1
	}
	r.log.Info("read this partition's last events from the output", "partition", mine, "messages_read", read, "own", own)
	return nil
}

// readHeaders returns the headers of the messages on filters from start to
// end, in order.
func (r *Relay) readHeaders(ctx context.Context, s jetstream.Stream, filters []string, start, end uint64) ([]nats.Header, error) {
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("read the events of %s from seq %d: %w", r.cfg.Stream, start, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the events of %s from seq %d: %w", r.cfg.Stream, start, err)
	}
	var out []nats.Header
	for pending := info.NumPending; pending > 0; {
		msg, err := cons.Next(jetstream.FetchMaxWait(r.cfg.PublishTimeout))
		if err != nil {
			return nil, fmt.Errorf("read the events of %s from seq %d: %w", r.cfg.Stream, start, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if meta.Sequence.Stream > end {
			break
		}
		out = append(out, msg.Headers())
		if meta.Sequence.Stream == end {
			break
		}
		pending = meta.NumPending
	}
	return out, nil
}
