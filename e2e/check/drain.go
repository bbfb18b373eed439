package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// Event is one output message in the native JSON envelope, with where it was
// found in its stream.
type Event struct {
	Op         string          `json:"op"`
	Source     string          `json:"source"`
	Schema     string          `json:"schema"`
	Table      string          `json:"table"`
	LSN        string          `json:"lsn"` // commit LSN of the transaction, "X/Y"
	Xid        uint32          `json:"xid"`
	CommitTime string          `json:"commit_time"`
	Index      uint64          `json:"index"` // position of the change in its transaction
	Key        json.RawMessage `json:"key"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	// Unchanged lists unchanged-TOAST columns, left out of After.
	Unchanged []string `json:"unchanged"`

	// Set from the message, not the payload.
	MsgID   string `json:"-"`
	Seq     uint64 `json:"-"` // stream sequence
	Subject string `json:"-"`
}

// ParseEvent decodes a native JSON event.
func ParseEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("event: %w", err)
	}
	if e.Op == "" || e.Table == "" || e.LSN == "" {
		return e, fmt.Errorf("event lacks op, table or lsn: %.200s", data)
	}
	if _, err := ParseLSN(e.LSN); err != nil {
		return e, fmt.Errorf("event: %w", err)
	}
	return e, nil
}

// ParseLSN reads Postgres' "X/Y" notation (wire.ParseLSN) as the number
// the checker orders by.
func ParseLSN(s string) (uint64, error) {
	l, err := wire.ParseLSN(s)
	return uint64(l), err
}

// Drain reads the messages of stream whose subjects match filter ("" for
// all), from the first, in stream order, with an ordered consumer.
// Notices ({prefix}._notices.{kind}: the collector's word about the source,
// not changes) are left out.
//
// It stops once want messages have arrived and then none for quiet: waiting
// past want is what lets Check see duplicates and extras. With want <= 0 it
// stops at the first pause of quiet. When ctx ends first it returns what it
// has without an error: the shortfall shows in Check as lost changes. Give ctx
// a deadline.
func Drain(ctx context.Context, js jetstream.JetStream, stream, filter string, want int, quiet time.Duration) ([]Event, error) {
	cfg := jetstream.OrderedConsumerConfig{}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("drain %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("drain %s: %w", stream, err)
	}
	defer it.Stop()

	var out []Event
	for ctx.Err() == nil {
		var msg jetstream.Msg
		if want > 0 && len(out) < want {
			msg, err = it.Next(jetstream.NextContext(ctx))
		} else {
			msg, err = it.Next(jetstream.NextMaxWait(quiet))
		}
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || ctx.Err() != nil {
				return out, nil
			}
			return out, fmt.Errorf("drain %s: %w", stream, err)
		}
		if IsNoticeSubject(msg.Subject()) {
			continue
		}
		e, err := ParseEvent(msg.Data())
		if err != nil {
			return out, fmt.Errorf("drain %s: message on %s: %w", stream, msg.Subject(), err)
		}
		e.Subject = msg.Subject()
		e.MsgID = msg.Headers().Get(jetstream.MsgIDHeader)
		if md, err := msg.Metadata(); err == nil {
			e.Seq = md.Sequence.Stream
		}
		out = append(out, e)
	}
	return out, nil
}

// IsNoticeSubject reports whether subject is a notice's ({prefix}._notices.{kind}).
func IsNoticeSubject(subject string) bool {
	return strings.Contains("."+subject+".", "._notices.")
}
