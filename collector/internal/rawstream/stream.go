// Package rawstream writes transaction fragments to the raw JetStream stream:
// stream setup, the start-up position, and the batching publisher whose acks
// drive the replication slot's confirmed position.
package rawstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// StreamConfig is what the collector needs of the raw stream.
type StreamConfig struct {
	Name       string
	MaxAge     time.Duration
	Duplicates time.Duration
	Replicas   int
}

// Ensure creates the raw stream when it is missing and returns its info. An
// existing stream is left as it is (an operator may have tuned it) but must
// capture the raw subjects.
func Ensure(ctx context.Context, js jetstream.JetStream, c StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, c.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        c.Name,
			Description: "pgjet raw change records (msgpack), written by pgjet-collector",
			Subjects:    []string{wire.RawFilter},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			// Discard new: when full, publishing fails and the collector stops
			// reading (Postgres keeps the WAL) instead of deleting history
			// routers may not have read yet.
			Discard:    jetstream.DiscardNew,
			MaxAge:     c.MaxAge,
			Duplicates: c.Duplicates,
			Replicas:   c.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("create raw stream %s: %w", c.Name, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("look up raw stream %s: %w", c.Name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("raw stream %s info: %w", c.Name, err)
	}
	return info, nil
}

// Last is the last record stored of a source.
type Last struct {
	// Pos is the position just after its last change: everything at or
	// before it must not be published again.
	Pos wire.Position
	// Source says who wrote it, on which timeline.
	Source wire.Source
	// Seq is its stream sequence; MsgID its Nats-Msg-Id.
	Seq   uint64
	MsgID string
}

// LastRecord reads the last record stored for the source. ok is false when
// the source has none.
func LastRecord(ctx context.Context, js jetstream.JetStream, stream, source string) (last Last, ok bool, err error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return last, false, fmt.Errorf("raw stream %s: %w", stream, err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, wire.RawSubject(source))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last, false, nil
	}
	if err != nil {
		return last, false, fmt.Errorf("read last raw record of %s: %w", source, err)
	}
	var m wire.Message
	if err := wire.Unmarshal(raw.Data, &m); err != nil {
		return last, false, fmt.Errorf("last raw record of %s (seq %d): %w", source, raw.Sequence, err)
	}
	last.Source, last.Seq, last.MsgID = m.Source, raw.Sequence, raw.Header.Get(jetstream.MsgIDHeader)
	// The collector never publishes an empty record; were one there, its
	// position would be zero: nothing to skip.
	last.Pos, _ = m.Last()
	return last, true, nil
}
