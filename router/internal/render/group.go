package render

import (
	"strconv"
	"time"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// A grouping route (group: transaction) publishes each transaction's
// events as one message, in order, split into parts where the next event
// would exceed the server's max payload; a transaction spanning several
// raw records has at least one part per record. A part's id is its last
// event's position plus ":grp", so a relay that resumes skips exactly the
// events of the parts stored, and starts the next part where the stored
// ones end: the parts come out the same as long as max_payload does.
//
// A part is, for envelopes with a batch format (CloudEvents), that format:
// a JSON array of the events. For the others:
//
//	{"source":"app","lsn":"0/16B3748","xid":734,"commit_time":"...",
//	 "first_index":0,"last_index":2,"last":true,"events":[...]}
//
// last says whether the part holds the transaction's last event.
//
// Events are rendered straight into the part, in the batch's buffer: the
// part's head, whose last_index and last are known only at its end, is
// written then into room left before the events. Only an event that does
// not fit in the part is moved, once, to the start of the next.

// group is the part being gathered.
type group struct {
	n int // its events
	// events is where its events start in the batch's buffer, at the
	// room before them for its head.
	events, at int
	src        *wire.Source
	tx         *wire.Tx
	first      uint64 // index of its first event
	last       wire.EventID
	lastRelEnd bool   // its last event is a relation event
	batch      bool   // the envelope's batch format: a JSON array
	head       []byte // scratch for a part's head
	moved      []byte // an event on its way to the next part
}

// batcher is implemented by envelopes with a batch format of their own.
type batcher interface {
	// Batch returns the format's content type, and false when the envelope,
	// as configured, has none.
	Batch() (contentType string, ok bool)
}

var groupJSON = []string{"application/json"}

// maxHead bounds the head of a part beyond its source name: the wrapper's
// keys, an LSN, an xid, a commit time and two indexes.
const maxHead = 256

// addToGroup renders ev, at pos, into the record's current part, first
// sending the part when ev does not fit in it.
func (r *Renderer) addToGroup(rs *recordState, ev *envelope.Event, pos wire.EventID) {
	g, b := &r.group, rs.b
	if g.n == 0 {
		r.startPart(b, ev)
	}
	mark := len(b.arena)
	if g.n > 0 {
		b.arena = append(b.arena, ',')
	}
	start := len(b.arena)
	var err error
	if b.arena, err = r.env.Append(b.arena, ev); err != nil {
		b.arena = b.arena[:mark]
		r.endEmptyPart(b)
		r.deadLetter(b, ev, err)
		return
	}
	if r.partSize(b) > b.maxPayload {
		size := len(b.arena) - start
		if g.n == 0 {
			// Too large even alone.
			b.arena = b.arena[:g.at]
			g.n = 0
			r.deadLetter(b, ev, &tooLargeError{size: size, max: b.maxPayload})
			return
		}
		g.moved = append(g.moved[:0], b.arena[start:]...)
		b.arena = b.arena[:mark]
		r.flushGroup(rs, false)
		r.startPart(b, ev)
		b.arena = append(b.arena, g.moved...)
		if r.partSize(b) > b.maxPayload {
			b.arena = b.arena[:g.at]
			r.deadLetter(b, ev, &tooLargeError{size: size, max: b.maxPayload})
			return
		}
	}
	g.n++
	g.last, g.lastRelEnd = pos, ev.Kind == envelope.KindRelation
}

// startPart begins a part in b's buffer with ev, its first event: room for
// the head, then the events.
func (r *Renderer) startPart(b *Batch, ev *envelope.Event) {
	g := &r.group
	g.src, g.tx, g.first, g.n = ev.Source, ev.Tx, ev.Index, 0
	g.at = len(b.arena)
	room := 1 // '['
	if g.batch = r.groupBatch; !g.batch {
		room = maxHead + len(g.src.Name)*6 // a name escaped as \u00XX at worst
	}
	b.arena = append(b.arena, make([]byte, room)...)
	g.events = len(b.arena)
}

// endEmptyPart takes back the room of a part that got no event.
func (r *Renderer) endEmptyPart(b *Batch) {
	if g := &r.group; g.n == 0 {
		b.arena = b.arena[:g.at]
	}
}

// partSize bounds the size of the current part's message: its events, and
// room for its head, its end and its headers.
func (r *Renderer) partSize(b *Batch) int64 {
	g := &r.group
	return int64(len(b.arena) - g.events + 2*len(g.src.Name) + len(r.stream) + r.traceSize + 512)
}

// batchFormat is the envelope's batch content type, if it has one.
func batchFormat(env envelope.Renderer) ([]string, bool) {
	if bt, ok := env.(batcher); ok {
		if ct, ok := bt.Batch(); ok {
			return []string{ct}, true
		}
	}
	return groupJSON, false
}

// flushGroup sends the record's current part; last: it ends the
// transaction.
func (r *Renderer) flushGroup(rs *recordState, last bool) {
	g, b := &r.group, rs.b
	if g.n == 0 {
		return
	}
	r.idBuf = wire.AppendEventID(r.idBuf[:0], *g.src, g.tx.CommitLSN, g.last.Index, g.last.Part)
	if g.lastRelEnd {
		r.idBuf = append(r.idBuf, wire.RelationSuffix...)
	}
	// The head, right before the events; the room left before it unused.
	from := g.events - 1
	if g.batch {
		b.arena[from] = '['
		b.arena = append(b.arena, ']')
	} else {
		g.head = r.appendHead(g.head[:0], g, last, true)
		from = g.events - len(g.head)
		copy(b.arena[from:], g.head)
		b.arena = append(b.arena, "]}"...)
	}
	r.sendPart(b, string(r.idBuf)+wire.GroupSuffix, from)
}

// appendHead appends the head of g's part: every field but the events,
// then the start of the events list. indexes: the part has events.
func (r *Renderer) appendHead(b []byte, g *group, last, indexes bool) []byte {
	b = append(b, `{"source":`...)
	b = value.AppendString(b, g.src.Name)
	b = append(b, `,"lsn":"`...)
	b = wire.LSN(g.tx.CommitLSN).Append(b)
	b = append(b, `","xid":`...)
	b = strconv.AppendUint(b, uint64(g.tx.Xid), 10)
	b = append(b, `,"commit_time":"`...)
	b = time.UnixMicro(g.tx.CommitTime).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if indexes {
		b = append(b, `,"first_index":`...)
		b = strconv.AppendUint(b, g.first, 10)
		b = append(b, `,"last_index":`...)
		b = strconv.AppendUint(b, g.last.Index, 10)
	}
	b = append(b, `,"last":`...)
	b = strconv.AppendBool(b, last)
	return append(b, `,"events":[`...)
}

// sendPart adds the part b's buffer holds from from on, with id.
func (r *Renderer) sendPart(b *Batch, id string, from int) {
	g := &r.group
	r.subjBuf = r.route.AppendGroupSubject(r.subjBuf[:0], g.src)
	h := b.header()
	h["Content-Type"] = r.groupCT
	b.add(Msg{
		Subject: r.subject(),
		Header:  r.headers(b, h, id),
		Data:    b.arena[from:len(b.arena):len(b.arena)],
		Kind:    Group,
		Event:   envelope.Event{Source: g.src, Tx: g.tx, Index: g.last.Index, ID: id},
	})
	g.n = 0
}

// endGroup sends the last part of a transaction whose events all came in
// earlier raw records: no events, last true, at the commit's position (id
// <source>:<lsn>:commit:grp), so that every grouped transaction ends with
// a part that says so.
func (r *Renderer) endGroup(rs *recordState, src *wire.Source, tx *wire.Tx) {
	pos := wire.EventID{CommitLSN: tx.CommitLSN, Seg: wire.SegCommit, Part: -1}
	if r.stored(rs, pos) {
		return
	}
	g, b := &r.group, rs.b
	g.src, g.tx, g.first, g.n = src, tx, 0, 0
	from := len(b.arena)
	if g.batch = r.groupBatch; g.batch {
		b.arena = append(b.arena, "[]"...)
	} else {
		b.arena = append(r.appendHead(b.arena, g, true, false), "]}"...)
	}
	r.sendPart(b, string(wire.AppendTxEventID(r.idBuf[:0], *src, tx.CommitLSN, wire.CommitMark))+wire.GroupSuffix, from)
}
