// Package render turns one raw record into the messages a route publishes:
// which of its changes the route takes, each one's event in the route's
// envelope, subject and id, the transaction and relation events around
// them, transaction groups, tombstones and dead letters. It does no I/O:
// the relay (package relay) hands it raw records in stream order and
// publishes what it returns.
//
// A Renderer is the state of one route between raw records: the
// transactions whose commit event is due, the columns of each table's last
// relation event, the group being gathered, and where the events the output
// stream already holds end (the resume point of each source). So a
// Renderer belongs to one relay and is not safe for concurrent use.
//
// One raw record's way through, top to bottom: Record (this file) walks its
// transactions and changes; change selects and brackets one change with
// its transaction and relation events; event renders one event, its id and
// subject, into the batch (or into the group being gathered, group.go, or
// as a dead letter, deadletter.go); txstate.go counts what commit events
// and relation events need.
package render

import (
	"log/slog"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/router/internal/slab"
	"github.com/pgjet/pgjet/shared/wire"
)

// Headers every output message carries, which the server reads: the
// event's id (dedupe) and the stream it must land in; and, while tracing
// is on, the W3C trace context of the router's span of its raw record
// (shared/tracing's Traceparent: that package imports NATS, this one not).
const (
	MsgIDHeader          = "Nats-Msg-Id"
	ExpectedStreamHeader = "Nats-Expected-Stream"
	TraceparentHeader    = "traceparent"
)

// Config is a route's rendering.
type Config struct {
	Route    *route.Route
	Envelope envelope.Renderer
	// Stream is the output stream: every message says it must land there
	// (ExpectedStreamHeader), so that a message can never be stored in
	// another stream; "" for a route that only prints.
	Stream string
	// Bounds, when set, limit the transactions rendered (a replay).
	Bounds *Bounds
	// Log receives one warning per dead letter.
	Log *slog.Logger
}

// Renderer renders the raw records of one route, in stream order.
type Renderer struct {
	route  *route.Route
	env    envelope.Renderer
	bounds *Bounds
	log    *slog.Logger
	// stream is the output stream; expectStream, every message's
	// ExpectedStreamHeader value: one slice for all, which nothing writes
	// into. partition is wire.PartitionHeader's value on a partitioned
	// route's messages.
	stream                  string
	expectStream, partition []string
	// trace is the traceparent of the record being rendered ("" while
	// tracing is off), traceHeader the header's value, traceSize its size.
	trace       string
	traceHeader []string
	traceSize   int

	// resume holds, by source id until passed, the last event of that
	// source the output stream held at start: events at or before it are
	// not published again.
	resume map[string]*Stored
	// rawDead holds the raw records whose dead letters the output stream
	// held at start (StoredRawDeadLetters): they name no source, so no
	// resume point covers them.
	rawDead map[uint64]struct{}
	// rendered holds, by history, where what the route rendered ends
	// (order.go).
	rendered map[history]mark
	txs      txState
	group    group
	// groupCT is the Content-Type of groups; groupBatch: they are the
	// envelope's batch format.
	groupCT    []string
	groupBatch bool
	// tombstones: the envelope follows deletes with tombstones.
	tombstones bool

	// Scratch, reused from event to event. cur and whole are the event
	// being rendered and the change being split: the envelope's methods
	// take pointers, which would move an event of the stack to the heap.
	cur, whole envelope.Event
	split      []envelope.Event // the events a change is published as (envelope.Split)
	idBuf      []byte
	ids        slab.Strings // the events' ids: no allocation each
	subjBuf    []byte
	subj       string // the last subject, as a string: runs of events share one
	// subjects holds the subject strings made so far.
	subjects map[string]string
}

// New returns the Renderer of a route.
func New(c Config) *Renderer {
	r := &Renderer{route: c.Route, env: c.Envelope, bounds: c.Bounds, log: c.Log, stream: c.Stream}
	if r.log == nil {
		r.log = slog.Default()
	}
	if c.Stream != "" {
		r.expectStream = []string{c.Stream}
	}
	if p := c.Route.Partition(); p != "" {
		r.partition = []string{p}
	}
	r.txs.init(c.Route)
	r.rendered = map[history]mark{}
	r.subjects = map[string]string{}
	r.groupCT, r.groupBatch = batchFormat(c.Envelope)
	r.tombstones = envelope.MakesTombstones(c.Envelope)
	return r
}

// Resume sets what the output stream holds of each source's last events
// (by source id, wire.Source.ID): events at or before a source's last are
// counted as skipped instead of rendered, until one comes after it, but for
// a change event found missing among them (Stored).
func (r *Renderer) Resume(points map[string]*Stored) { r.resume = points }

// StoredRawDeadLetters names the raw records whose dead letters the output
// stream holds already (RawDeadLetter publishes them not again).
func (r *Renderer) StoredRawDeadLetters(seqs map[uint64]struct{}) { r.rawDead = seqs }

// Reset forgets the transactions, relation events and positions seen: for
// a relay that starts over from its consumer's ack floor, whose records
// come again (and whose stored events the resume points skip).
func (r *Renderer) Reset() {
	r.txs.init(r.route)
	clear(r.rendered)
	r.group = group{head: r.group.head[:0], moved: r.group.moved[:0]}
}

// Raw describes the raw record a message came in.
type Raw struct {
	Seq  uint64 // its stream sequence
	Size int    // its size in bytes
	// Oversize holds, by index in the message's Txs, the encoded sizes of
	// changes known to make too large an event (put together from pieces,
	// see relay), which are dead-lettered without being rendered.
	Oversize map[int]int
	// TraceParent is the W3C trace context of the router's span of the
	// record ("" while tracing is off): its events carry it (CloudEvents as
	// the distributed tracing extension), its messages as a header.
	TraceParent string
}

// Record renders m, raw record raw, into b, which it resets first.
// maxPayload is the output's limit for one message, headers included.
func (r *Renderer) Record(b *Batch, m *wire.Message, raw Raw, maxPayload int64) {
	b.reset(raw, maxPayload)
	r.setTrace(raw.TraceParent)
	oversize := raw.Oversize
	rs := recordState{b: b, src: &m.Source, srcID: m.Source.ID()}
	if len(r.resume) > 0 {
		rs.resume = r.resume[rs.srcID]
	}
	for ti := range m.Txs {
		tx := &m.Txs[ti]
		if r.backwards(&m.Source, tx) {
			b.backwards(tx)
			continue
		}
		r.advance(&m.Source, tx)
		rs.oversize = oversize[ti] // 0 but for a change put together from pieces
		rs.txEvents = false
		for ci := range tx.Changes {
			c := &tx.Changes[ci]
			ev := envelope.Event{Source: &m.Source, Tx: tx, Change: c, Index: tx.FirstChange + uint64(ci)}
			switch c.Op {
			case wire.OpMessage:
				r.change(&rs, ev, -1)
			case wire.OpTruncate:
				// One event per table, each on its table's subject.
				for n, ri := range c.TruncateRels {
					ev.Rel = &m.Relations[ri]
					part := -1
					if len(c.TruncateRels) > 1 {
						part = n
					}
					r.change(&rs, ev, part)
				}
			default:
				ev.Rel = &m.Relations[c.Rel]
				// The envelope may publish it as several events (Debezium: a
				// key change is a delete and a create), each a part of it.
				r.whole = ev
				if r.split = envelope.Split(r.env, &r.whole, r.split[:0]); len(r.split) > 0 {
					for n := range r.split {
						r.change(&rs, r.split[n], n)
					}
					continue
				}
				r.change(&rs, ev, -1)
			}
		}
		had := false // the route had events in the transaction
		if tx.Final {
			had = r.closeTx(&rs, tx)
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
	if r.resume != nil && rs.resume == nil {
		delete(r.resume, rs.srcID)
	}
}

// recordState is what rendering one raw record carries along.
type recordState struct {
	b      *Batch
	src    *wire.Source
	srcID  string  // its id (wire.Source.ID)
	resume *Stored // what the output holds of the source, until passed
	// oversize > 0 is the encoded size of the current change, known to make
	// too large an event: it is dead-lettered without rendering.
	oversize int
	// txEvents: the route selected events of the current transaction in
	// this record (stored already or not).
	txEvents bool
}

// change renders ev, a change the route may select, and the transaction
// and relation events it brings. part >= 0 numbers the events of a
// truncate of several tables.
func (r *Renderer) change(rs *recordState, ev envelope.Event, part int) {
	if !r.route.Selects(&ev) || !r.bounds.has(ev.Source, ev.Tx) {
		return
	}
	rs.txEvents = true
	pos := wire.EventID{CommitLSN: ev.Tx.CommitLSN, Seg: wire.SegChanges, Index: ev.Index, Part: part}
	if r.txs.tracks() && inTx(&ev) {
		t := r.txs.open(rs.srcID, ev.Tx)
		if !t.begun && r.route.Transactions() {
			begin := envelope.Event{Source: ev.Source, Tx: ev.Tx, Kind: envelope.KindBegin}
			r.event(rs, begin, wire.EventID{CommitLSN: ev.Tx.CommitLSN, Seg: wire.SegBegin, Part: -1})
		}
		t.begun = true
		t.add(ev.Rel)
	}
	if r.route.Relations() && ev.Rel != nil && r.txs.relationChanged(rs.srcID, ev.Rel) {
		rel := envelope.Event{Source: ev.Source, Tx: ev.Tx, Rel: ev.Rel, Index: ev.Index, Kind: envelope.KindRelation}
		relPos := pos
		relPos.Relation = true
		r.event(rs, rel, relPos)
	}
	r.event(rs, ev, pos)
}

// closeTx ends tx, whose last fragment this is: it renders its commit event
// if the route had events in it and publishes transaction events, and
// reports whether it had.
func (r *Renderer) closeTx(rs *recordState, tx *wire.Tx) bool {
	t := r.txs.close(rs.srcID, tx)
	if t == nil || !t.begun {
		return false
	}
	if r.route.Transactions() {
		ev := envelope.Event{Source: rs.src, Tx: tx, Kind: envelope.KindCommit, Count: t.count, Tables: t.tables}
		r.event(rs, ev, wire.EventID{CommitLSN: tx.CommitLSN, Seg: wire.SegCommit, Part: -1})
	}
	return true
}

// stored reports whether the output stream holds the event at pos already
// (at or before its source's resume point), counting it as skipped.
func (r *Renderer) stored(rs *recordState, pos wire.EventID) bool {
	if p := rs.resume; p != nil {
		if pos.Compare(p.Last) <= 0 {
			// Group ids stand for runs of events: no position is missing
			// among them.
			if !r.route.Group() && p.missing(pos) {
				rs.b.Missing++
				return false
			}
			rs.b.Skipped++
			return true
		}
		// Past it: everything of this source from here on is new.
		rs.resume = nil
	}
	return false
}

// event renders ev, at position pos among its source's events, into the
// batch: as a message of its own, into the group being gathered, or as a
// dead letter. An envelope that follows some events with more messages (a
// tombstone after a delete) has them rendered here, right after.
func (r *Renderer) event(rs *recordState, ev envelope.Event, pos wire.EventID) {
	if r.stored(rs, pos) {
		r.tombstoneOfStored(rs, ev, pos)
		return
	}
	e := r.prepare(ev, pos)
	b := rs.b
	if e.Kind == envelope.KindChange && rs.oversize > 0 {
		r.deadLetter(b, e, &tooLargeError{size: rs.oversize, max: b.maxPayload, encoded: true})
		return
	}
	if r.route.Group() {
		r.addToGroup(rs, e, pos)
		return
	}
	start := len(b.arena)
	var err error
	if b.arena, err = r.env.Append(b.arena, e); err != nil {
		r.deadLetter(b, e, err)
		return
	}
	h := b.header()
	extra := r.env.AddHeader(h, e) + r.traceSize
	r.subjBuf = r.route.AppendSubject(r.subjBuf[:0], e)
	data := b.arena[start:len(b.arena):len(b.arena)] // capped: nothing appended later writes into it
	// The headers count against the limit too.
	if size := int64(len(data) + len(e.ID) + len(r.stream) + 128 + extra); size > b.maxPayload {
		b.arena = b.arena[:start]
		r.deadLetter(b, e, &tooLargeError{size: len(data), max: b.maxPayload})
		return
	}
	b.add(Msg{Subject: r.subject(), Header: r.headers(b, h, e.ID), Data: data, Kind: Event, Event: *e})
	if th, ok := envelope.Tombstone(r.env, e); ok {
		r.tombstone(rs, *e, pos, th)
	}
}

// tombstone follows the delete ev, at pos, with its tombstone: an empty
// message on the same subject with the delete's key headers h.
func (r *Renderer) tombstone(rs *recordState, ev envelope.Event, pos wire.EventID, h envelope.Header) {
	pos.Tombstone = true
	if r.stored(rs, pos) {
		return
	}
	ev.ID += wire.TombstoneSuffix
	rs.b.add(Msg{Subject: r.subj, Header: r.headers(rs.b, h, ev.ID), Kind: Tombstone, Event: ev})
}

// tombstoneOfStored follows ev, at pos, a delete the output holds already,
// with its tombstone when the output lacks that: the tombstone is a message
// of its own, which a router stopped just after the delete never published,
// or which the output refused while it stored later events. Its key comes
// from rendering the delete again (nothing of it is kept).
func (r *Renderer) tombstoneOfStored(rs *recordState, ev envelope.Event, pos wire.EventID) {
	if !r.tombstones || ev.Kind != envelope.KindChange || ev.Change == nil || ev.Change.Op != wire.OpDelete || rs.oversize > 0 || r.route.Group() {
		return
	}
	if rs.resume != nil && rs.resume.deadLetter(pos) {
		return // a dead letter has no tombstone
	}
	e := r.prepare(ev, pos)
	b := rs.b
	start := len(b.arena)
	arena, err := r.env.Append(b.arena, e)
	b.arena = arena[:start]
	if err != nil {
		return // its dead letter was published in its place
	}
	th, ok := envelope.Tombstone(r.env, e)
	if !ok {
		return
	}
	r.subjBuf = r.route.AppendSubject(r.subjBuf[:0], e)
	r.subject()
	r.tombstone(rs, *e, pos, th)
}

// prepare makes ev, at pos, the event being rendered (r.cur): its id, its
// trace, and the route's column rules, applied before anything renders it:
// a dropped or masked value must not reach any output, dead letters and
// stdout included.
func (r *Renderer) prepare(ev envelope.Event, pos wire.EventID) *envelope.Event {
	r.cur = ev
	e := &r.cur
	e.ID = r.id(ev, pos)
	e.TraceParent = r.trace
	r.route.Transform(e)
	return e
}

// id is the id of ev at pos (wire's event ids).
func (r *Renderer) id(ev envelope.Event, pos wire.EventID) string {
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
	return r.ids.Of(r.idBuf)
}

// subject returns r.subjBuf as a string, one string per subject: the
// events of one table and op share it (a lookup by the bytes allocates
// nothing).
func (r *Renderer) subject() string {
	if string(r.subjBuf) == r.subj {
		return r.subj
	}
	s, ok := r.subjects[string(r.subjBuf)]
	if !ok {
		if len(r.subjects) >= maxSubjects {
			clear(r.subjects) // many tables: start over rather than grow
		}
		s = string(r.subjBuf)
		r.subjects[s] = s
	}
	r.subj = s
	return s
}

// maxSubjects bounds the subject strings a renderer keeps.
const maxSubjects = 4096

// headers adds the headers every message has to h, an envelope's (nil:
// none), all of b.
func (r *Renderer) headers(b *Batch, h envelope.Header, id string) envelope.Header {
	if h == nil {
		h = b.header()
	}
	h[MsgIDHeader] = b.value(id)
	if r.expectStream != nil {
		h[ExpectedStreamHeader] = r.expectStream
	}
	if r.partition != nil {
		h[wire.PartitionHeader] = r.partition
	}
	if r.traceHeader != nil {
		h[TraceparentHeader] = r.traceHeader
	}
	return h
}

// setTrace makes tp the traceparent of the messages rendered next.
func (r *Renderer) setTrace(tp string) {
	if tp == r.trace {
		return
	}
	r.trace, r.traceHeader, r.traceSize = tp, nil, 0
	if tp != "" {
		// A slice of its own: messages of earlier records still hold theirs.
		r.traceHeader = []string{tp}
		r.traceSize = len(TraceparentHeader) + len(tp) + 4
	}
}

// inTx reports whether ev belongs to its transaction: a logical decoding
// message emitted outside any (pg_logical_emit_message with transactional
// false) does not, nor does a snapshot read (no transaction wrote it), so
// no transaction event counts or brackets them.
func inTx(ev *envelope.Event) bool {
	if ev.Change == nil {
		return true
	}
	switch ev.Change.Op {
	case wire.OpMessage:
		return ev.Change.Transactional
	case wire.OpRead:
		return false
	}
	return true
}
