package relay

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/tracing"
	"github.com/pgjet/pgjet/shared/wire"
)

// out is one message to publish: an event, or the dead letter of one.
type out struct {
	ev   envelope.Event
	msg  *nats.Msg
	dead bool
	// group: a part of a transaction's events (its ev is the last one's).
	group bool
	// tombstone: the empty message after a delete (not printed).
	tombstone bool
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
	rs := renderState{b: b, arena: r.arenas.get(2 * rawSize)}
	// The source's resume point, until passed.
	if len(r.resume) > 0 {
		rs.resume = r.resume[m.Source.ID()]
	}
	for ti := range m.Txs {
		tx := &m.Txs[ti]
		rs.oversize = tooLarge[ti] // 0 but for a change put together from pieces
		rs.txEvents = false
		for ci := range tx.Changes {
			c := &tx.Changes[ci]
			ev := envelope.Event{Source: &m.Source, Tx: tx, Change: c, Index: tx.FirstChange + uint64(ci)}
			switch c.Op {
			case wire.OpMessage:
				r.renderChange(&rs, ev, -1)
			case wire.OpTruncate:
				// One event per table, each on its table's subject.
				for n, ri := range c.TruncateRels {
					ev.Rel = &m.Relations[ri]
					part := -1
					if len(c.TruncateRels) > 1 {
						part = n
					}
					r.renderChange(&rs, ev, part)
				}
			default:
				ev.Rel = &m.Relations[c.Rel]
				// The envelope may publish it as several events (Debezium: a
				// key change is a delete and a create), each a part of it.
				if r.split = envelope.Split(r.env, &ev, r.split[:0]); len(r.split) > 0 {
					for n := range r.split {
						r.renderChange(&rs, r.split[n], n)
					}
					continue
				}
				r.renderChange(&rs, ev, -1)
			}
		}
		had := false // the route had events in the transaction
		if tx.Final {
			had = r.closeTx(&rs, &m.Source, tx)
		}
		if r.route.Group() {
			if tx.Final && had && !rs.txEvents {
				// Its events came in earlier records: say it ended.
				r.endGroup(&rs, &m.Source, tx)
			} else {
				r.flushGroup(&rs, tx.Final)
			}
		}
	}
	b.arena = rs.arena
	return b
}

// renderState is what rendering one raw record carries along.
type renderState struct {
	b      *batch
	arena  []byte
	resume *wire.EventID // the source's resume point, until passed
	// oversize > 0 is the encoded size of the current change, known to make
	// too large an event: it is dead-lettered without rendering.
	oversize int
	// group is the transaction part being gathered (grouping routes).
	group group
	// txEvents: the route selected events of the current transaction in
	// this record (stored already or not).
	txEvents bool
}

// renderChange renders ev, a change the route may select, and the
// transaction and relation events it brings. part >= 0 numbers the events
// of a truncate of several tables.
func (r *Relay) renderChange(rs *renderState, ev envelope.Event, part int) {
	if !r.route.Selects(&ev) || !r.inReplay(ev.Source, ev.Tx) {
		return
	}
	rs.txEvents = true
	pos := wire.EventID{CommitLSN: ev.Tx.CommitLSN, Seg: wire.SegChanges, Index: ev.Index, Part: part}
	if r.tracksTx() && inTx(&ev) {
		t := r.openTx(ev.Source, ev.Tx)
		if !t.begun && r.route.Transactions() {
			begin := envelope.Event{Source: ev.Source, Tx: ev.Tx, Kind: envelope.KindBegin}
			r.renderOne(rs, begin, wire.EventID{CommitLSN: ev.Tx.CommitLSN, Seg: wire.SegBegin, Part: -1})
		}
		t.begun = true
		t.add(ev.Rel)
	}
	if r.route.Relations() && ev.Rel != nil && r.relationChanged(ev.Source, ev.Rel) {
		rel := envelope.Event{Source: ev.Source, Tx: ev.Tx, Rel: ev.Rel, Index: ev.Index, Kind: envelope.KindRelation}
		relPos := pos
		relPos.Relation = true
		r.renderOne(rs, rel, relPos)
	}
	r.renderOne(rs, ev, pos)
}

// renderOne appends the message of ev, at position pos among its source's
// events, to the record's batch, unless the output stream holds it already.
func (r *Relay) renderOne(rs *renderState, ev envelope.Event, pos wire.EventID) {
	b := rs.b
	if p := rs.resume; p != nil {
		if pos.Compare(*p) <= 0 {
			b.skipped++
			return
		}
		// Past it: everything of this source from here on is new.
		delete(r.resume, p.Source)
		rs.resume = nil
	}
	switch ev.Kind {
	case envelope.KindBegin:
		r.idBuf = wire.AppendTxEventID(r.idBuf[:0], *ev.Source, ev.Tx.CommitLSN, wire.BeginMark)
	case envelope.KindCommit:
		r.idBuf = wire.AppendTxEventID(r.idBuf[:0], *ev.Source, ev.Tx.CommitLSN, wire.CommitMark)
	default:
		r.idBuf = wire.AppendEventID(r.idBuf[:0], *ev.Source, ev.Tx.CommitLSN, ev.Index, pos.Part)
		if pos.Relation {
			r.idBuf = append(r.idBuf, wire.RelationSuffix...)
		}
	}
	id := string(r.idBuf)
	ev.ID = id
	if r.traceparent != nil {
		ev.TraceParent = r.traceparent[0]
	}
	// Before anything renders it: a dropped or masked value must not reach
	// any output, dead letters and stdout included.
	r.route.Transform(&ev)

	arena := rs.arena
	oversize := 0
	if ev.Kind == envelope.KindChange {
		oversize = rs.oversize
	}
	start := len(arena)
	var err error
	if oversize > 0 {
		err = &tooLargeError{size: oversize, max: b.maxPayload, encoded: true}
	} else {
		arena, err = r.env.Append(arena, &ev)
	}
	if err == nil && r.route.Group() {
		// Out of the arena first: sending the part it does not fit in
		// writes there.
		r.groupDoc = append(r.groupDoc[:0], arena[start:]...)
		rs.arena = arena[:start]
		if r.groupFits(rs, len(r.groupDoc)) {
			r.addToGroup(rs, &ev, pos, r.groupDoc)
			return
		}
		err = &tooLargeError{size: len(r.groupDoc), max: b.maxPayload}
		arena = rs.arena
	}
	if err == nil {
		r.subjBuf = r.route.AppendSubject(r.subjBuf[:0], &ev)
		h := r.env.Header(&ev)
		if r.partHeader != nil {
			h[wire.PartitionHeader] = r.partHeader
		}
		if r.traceparent != nil {
			h[tracing.Traceparent] = r.traceparent
		}
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
			rs.arena = arena
			if th, ok := envelope.Tombstone(r.env, &ev); ok {
				r.tombstone(rs, ev, pos, id, th)
			}
			return
		}
	}
	arena = arena[:start]
	b.outs = append(b.outs, out{ev: ev, dead: true, msg: r.deadLetter(&ev, id, b.rawSeq, err)})
	b.dead++
	rs.arena = arena
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

// tombstone follows the delete ev, at pos, with its tombstone: an empty
// message on the same subject with the delete's key headers h.
func (r *Relay) tombstone(rs *renderState, ev envelope.Event, pos wire.EventID, id string, h nats.Header) {
	tpos := pos
	tpos.Tombstone = true
	if p := rs.resume; p != nil && tpos.Compare(*p) <= 0 {
		rs.b.skipped++
		return
	}
	h[jetstream.MsgIDHeader] = []string{id + wire.TombstoneSuffix}
	if r.partHeader != nil {
		h[wire.PartitionHeader] = r.partHeader
	}
	h[jetstream.ExpectedStreamHeader] = r.expectStream
	msg := rs.b.newMsg()
	*msg = nats.Msg{Subject: r.subj, Header: h}
	ev.ID = id + wire.TombstoneSuffix
	rs.b.outs = append(rs.b.outs, out{ev: ev, msg: msg, tombstone: true})
}
