package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// outbox publishes events to JetStream and hands their acks back, the way
// jetstream.PublishMsgAsync does, cut down to what a relay needs: it
// publishes a window in order and waits for the acks in order, with a
// timeout of its own. Profiles of a router showed jetstream's general
// bookkeeping (a future, a timer and a map entry per message, and every
// ack decoded with encoding/json) at over 40% of the router's CPU; here a
// message costs a slot in a ring, and an ack a look at its bytes.
//
// Each message carries a reply subject of its own, <inbox>.<token>; one
// subscription receives every ack. The server answers a publish with a
// JSON ack (the stream and sequence, "duplicate":true for an id it had
// already), a JetStream error ({"error":{...}}), or, when no stream
// captures the subject, a 503 status.
type outbox struct {
	nc     *nats.Conn
	prefix string
	sub    *nats.Subscription
	status chan nats.Status

	mu    sync.Mutex
	slots [outboxSlots]slot
	next  uint64 // the next token; 0 is never used
	reply []byte // scratch for reply subjects
}

// outboxSlots must exceed the publishes a relay has awaiting their acks
// (window) by far: the slot of a token is reused outboxSlots tokens later,
// long after its publish was resolved or given up.
const outboxSlots = 4 * window

type slot struct {
	token uint64
	state uint8 // pending, acked or failed
	dup   bool
	err   error
	// wake is made by a waiter that found the slot pending, and closed
	// when it resolves: most acks are in before anyone looks.
	wake chan struct{}
}

const (
	pending = iota
	acked
	failed
)

// errDisconnected fails the publishes awaiting acks when the connection
// drops: their acks can no longer come, whether the server stored them or
// not, and the relay republishes them (with the same ids).
var errDisconnected = errors.New("publish: the connection dropped before the ack came")

// newOutbox subscribes to the acks of publishes on nc.
func newOutbox(nc *nats.Conn) (*outbox, error) {
	o := &outbox{nc: nc, prefix: nats.NewInbox() + ".", next: 1}
	sub, err := nc.Subscribe(o.prefix+"*", o.onAck)
	if err != nil {
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	// Acks must never be dropped for a slow handler: the window bounds them.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	o.sub = sub
	o.status = nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	go o.watch()
	return o, nil
}

// close stops receiving acks.
func (o *outbox) close() {
	o.nc.RemoveStatusListener(o.status)
	_ = o.sub.Unsubscribe() // a closed connection has let go of it already
}

// watch fails every pending publish when the connection drops.
func (o *outbox) watch() {
	for range o.status {
		o.mu.Lock()
		for i := range o.slots {
			if s := &o.slots[i]; s.token != 0 && s.state == pending {
				o.resolve(s, false, errDisconnected)
			}
		}
		o.mu.Unlock()
	}
}

// publish sends m, whose Reply it sets, and returns the token to wait on.
func (o *outbox) publish(m *nats.Msg) (uint64, error) {
	o.mu.Lock()
	tok := o.next
	o.next++
	s := &o.slots[tok%outboxSlots]
	*s = slot{token: tok}
	o.reply = strconv.AppendUint(append(o.reply[:0], o.prefix...), tok, 36)
	m.Reply = string(o.reply)
	o.mu.Unlock()
	if err := o.nc.PublishMsg(m); err != nil {
		o.mu.Lock()
		if s.token == tok {
			o.resolve(s, false, err)
		}
		o.mu.Unlock()
		return 0, err
	}
	return tok, nil
}

// onAck resolves the publish an ack is for.
func (o *outbox) onAck(m *nats.Msg) {
	if len(m.Subject) <= len(o.prefix) {
		return
	}
	tok, err := strconv.ParseUint(m.Subject[len(o.prefix):], 36, 64)
	if err != nil {
		return
	}
	dup, ackErr := parseAck(m)
	o.mu.Lock()
	if s := &o.slots[tok%outboxSlots]; s.token == tok && s.state == pending {
		o.resolve(s, dup, ackErr)
	}
	o.mu.Unlock()
}

// parseAck reads a JetStream publish ack: whether the message was a
// duplicate, or the error the server gave.
func parseAck(m *nats.Msg) (dup bool, err error) {
	if len(m.Data) == 0 {
		if m.Header.Get("Status") == "503" {
			return false, jetstream.ErrNoStreamResponse
		}
		return false, fmt.Errorf("publish: empty ack (status %q)", m.Header.Get("Status"))
	}
	if bytes.Contains(m.Data, []byte(`"error"`)) {
		var r struct {
			Error *jetstream.APIError `json:"error"`
		}
		if json.Unmarshal(m.Data, &r) == nil && r.Error != nil {
			return false, r.Error
		}
		return false, fmt.Errorf("publish: unreadable ack %q", m.Data)
	}
	return duplicate(m.Data), nil
}

// duplicate reports whether an ack says "duplicate": true (servers write it
// with and without a space).
func duplicate(ack []byte) bool {
	i := bytes.Index(ack, []byte(`"duplicate"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(ack[i+len(`"duplicate"`):], " :")
	return bytes.HasPrefix(rest, []byte("true"))
}

// resolve settles s; o.mu is held.
func (o *outbox) resolve(s *slot, dup bool, err error) {
	s.state, s.dup, s.err = acked, dup, err
	if err != nil {
		s.state = failed
	}
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// wait waits for the ack of tok, at most timeout (timer, the caller's,
// is reset for it); dup says the server had the message's id already.
func (o *outbox) wait(ctx context.Context, tok uint64, timer *time.Timer, timeout time.Duration) (dup bool, err error) {
	armed := false
	for {
		o.mu.Lock()
		s := &o.slots[tok%outboxSlots]
		if s.token != tok {
			o.mu.Unlock()
			return false, errors.New("publish: ack slot reused before it was waited on")
		}
		switch s.state {
		case acked:
			o.mu.Unlock()
			return s.dup, nil
		case failed:
			err := s.err
			o.mu.Unlock()
			return false, err
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		o.mu.Unlock()
		if !armed {
			timer.Reset(timeout)
			armed = true
		}
		select {
		case <-wake:
		case <-timer.C:
			return false, fmt.Errorf("%w (%s)", errAckTimeout, timeout)
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
