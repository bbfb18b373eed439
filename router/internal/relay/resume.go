package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
)

// resumePoint is the last event the output stream holds. A router killed
// while publishing a raw record's events leaves part of them stored; when
// that record comes back, its stored events are skipped by position, which
// stays exact however long the restart took (the stream's duplicate window
// only covers short gaps).
type resumePoint struct {
	source string // wire.Source.ID()
	lsn    uint64
	index  uint64
	part   int // truncate part, -1 for none
}

// readResumePoint reads the id of the last message on the relay's subjects.
// Only the record in progress can be partly published, and its events are
// the last ones written, so the last message is the only position needed.
func (r *Relay) readResumePoint(ctx context.Context) (*resumePoint, error) {
	s, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("output stream %s: %w", r.cfg.Stream, err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, r.cfg.Prefix+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last event of %s: %w", r.cfg.Stream, err)
	}
	id := msg.Header.Get(jetstream.MsgIDHeader)
	p, ok := parseEventID(id)
	if !ok {
		// Not written by a router (or by an older one): nothing to skip by.
		r.log.Warn("last message of the output stream has no pgjet event id; relying on the duplicate window alone", "id", id, "seq", msg.Sequence)
		return nil, nil
	}
	return p, nil
}

// parseEventID parses "<source id>:<commit lsn hex>:<index>[.<part>][:dlq]".
func parseEventID(id string) (*resumePoint, bool) {
	id = strings.TrimSuffix(id, ":dlq")
	rest, idx, ok := cutLast(id, ':')
	if !ok {
		return nil, false
	}
	source, lsnHex, ok := cutLast(rest, ':')
	if !ok || source == "" {
		return nil, false
	}
	p := &resumePoint{source: source, part: -1}
	var err error
	if p.lsn, err = strconv.ParseUint(lsnHex, 16, 64); err != nil {
		return nil, false
	}
	if i, part, has := strings.Cut(idx, "."); has {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		p.part, idx = n, i
	}
	if p.index, err = strconv.ParseUint(idx, 10, 64); err != nil {
		return nil, false
	}
	return p, true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// stored reports whether the event (of source sourceID) is at or before the
// resume point, i.e. already in the output stream.
func (p *resumePoint) stored(sourceID string, ev *envelope.Event, part int) bool {
	if sourceID != p.source {
		return false
	}
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
