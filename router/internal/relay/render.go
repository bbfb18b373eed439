package relay

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// out is one message to publish: an event, or the dead letter of one.
type out struct {
	ev   envelope.Event
	msg  *nats.Msg
	dead bool
}

// batch is everything one raw record turns into, in commit order.
type batch struct {
	outs    []out
	arena   []byte     // the rendered events, which outs' messages point into
	msgs    []nats.Msg // where outs' messages come from (newMsg)
	dead    int
	skipped int // events the output stream already held
	// maxPayload is the server's limit for one message, headers included.
	maxPayload int64
	rawSeq     uint64 // of the raw record, for dead letters
}

// render turns every change of m into its output message. rawSize sizes the
// buffer that holds the rendered events.
// tooLarge holds, by index in m.Txs, the encoded sizes of changes known to
// be too large for an event, left without values.
func (r *Relay) render(m *wire.Message, rawSize int, rawSeq uint64, maxPayload int64, tooLarge map[int]int) *batch {
	n := 0
	for ti := range m.Txs {
		n += len(m.Txs[ti].Changes)
	}
	b := &batch{maxPayload: maxPayload, rawSeq: rawSeq, outs: make([]out, 0, n), msgs: make([]nats.Msg, 0, n)}
	// Each raw record gets its own buffer: published messages keep pointing
	// into it until their acks arrive, and the client may resend them.
	arena := r.arenas.get(2 * rawSize)
	// The source's resume point, until passed.
	var resume *resumePoint
	if len(r.resume) > 0 {
		resume = r.resume[m.Source.ID()]
	}
	for ti := range m.Txs {
		tx := &m.Txs[ti]
		oversize := tooLarge[ti] // 0 but for a change put together from pieces
		for ci := range tx.Changes {
			c := &tx.Changes[ci]
			ev := envelope.Event{Source: &m.Source, Tx: tx, Change: c, Index: tx.FirstChange + uint64(ci)}
			switch c.Op {
			case wire.OpMessage:
				arena = r.renderOne(b, arena, ev, -1, &resume, oversize)
			case wire.OpTruncate:
				// One event per table, each on its table's subject.
				for n, ri := range c.TruncateRels {
					ev.Rel = &m.Relations[ri]
					part := -1
					if len(c.TruncateRels) > 1 {
						part = n
					}
					arena = r.renderOne(b, arena, ev, part, &resume, oversize)
				}
			default:
				ev.Rel = &m.Relations[c.Rel]
				arena = r.renderOne(b, arena, ev, -1, &resume, oversize)
			}
		}
	}
	b.arena = arena
	return b
}

// renderOne appends the message of ev to b. part >= 0 numbers the events of
// a truncate of several tables; their ids get the suffix ".<part>".
// oversize > 0 is the encoded size of a change known to make too large an
// event: it is dead-lettered without rendering.
func (r *Relay) renderOne(b *batch, arena []byte, ev envelope.Event, part int, resume **resumePoint, oversize int) []byte {
	if !r.route.Selects(&ev) {
		return arena
	}
	if p := *resume; p != nil {
		if p.stored(&ev, part) {
			b.skipped++
			return arena
		}
		// Past it: everything of this source from here on is new.
		delete(r.resume, p.source)
		*resume = nil
	}
	r.idBuf = wire.AppendEventID(r.idBuf[:0], *ev.Source, ev.Tx.CommitLSN, ev.Index, part)
	id := string(r.idBuf)
	ev.ID = id
	// Before anything renders it: a dropped or masked value must not reach
	// any output, dead letters and stdout included.
	r.route.Transform(&ev)

	start := len(arena)
	var err error
	if oversize > 0 {
		err = &tooLargeError{size: oversize, max: b.maxPayload, encoded: true}
	} else {
		arena, err = r.env.Append(arena, &ev)
	}
	if err == nil {
		r.subjBuf = r.route.AppendSubject(r.subjBuf[:0], &ev)
		h := r.env.Header(&ev)
		extra := headerSize(h)
		h[jetstream.MsgIDHeader] = []string{id}
		h[jetstream.ExpectedStreamHeader] = r.expectStream
		// Events of one table and op share a subject: one string for a run
		// of them.
		if string(r.subjBuf) != r.subj {
			r.subj = string(r.subjBuf)
		}
		msg := b.newMsg()
		*msg = nats.Msg{
			Subject: r.subj,
			// Capped, so that nothing appended later can write into it.
			Data:   arena[start:len(arena):len(arena)],
			Header: h,
		}
		// The headers count against the limit too.
		if int64(len(msg.Data)+len(id)+len(r.cfg.Stream)+128+extra) > b.maxPayload {
			err = &tooLargeError{size: len(msg.Data), max: b.maxPayload}
		} else {
			b.outs = append(b.outs, out{ev: ev, msg: msg})
			return arena
		}
	}
	arena = arena[:start]
	b.outs = append(b.outs, out{ev: ev, dead: true, msg: r.deadLetter(&ev, id, b.rawSeq, err)})
	b.dead++
	return arena
}

// newMsg returns a zero message from b's slab: one allocation per record
// rather than per event.
func (b *batch) newMsg() *nats.Msg {
	if len(b.msgs) == cap(b.msgs) {
		b.msgs = make([]nats.Msg, 0, max(16, cap(b.msgs)))
	}
	b.msgs = b.msgs[:len(b.msgs)+1]
	return &b.msgs[len(b.msgs)-1]
}

// headerSize is how many bytes h takes in a message: "name: value\r\n" each.
func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
