package relay

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// group is the part being gathered.
type group struct {
	n          int
	buf        []byte // the events, comma-separated
	src        *wire.Source
	tx         *wire.Tx
	first      uint64 // index of its first event
	last       wire.EventID
	lastRelEnd bool // its last event is a relation event
}

// batcher is implemented by envelopes with a batch format of their own.
type batcher interface {
	// Batch returns the format's content type, and false when the envelope,
	// as configured, has none.
	Batch() (contentType string, ok bool)
}

var groupJSON = []string{"application/json"}

// addToGroup adds doc, the rendered event ev at pos, to the record's
// current part, first sending the part when doc would not fit in it.
func (r *Relay) addToGroup(rs *renderState, ev *envelope.Event, pos wire.EventID, doc []byte) {
	g := &rs.group
	if g.n > 0 && r.groupSize(g, len(doc)+1) > rs.b.maxPayload {
		r.flushGroup(rs, false)
	}
	if g.n == 0 {
		g.src, g.tx, g.first, g.buf = ev.Source, ev.Tx, ev.Index, g.buf[:0]
	} else {
		g.buf = append(g.buf, ',')
	}
	g.buf = append(g.buf, doc...)
	g.n++
	g.last, g.lastRelEnd = pos, ev.Kind == envelope.KindRelation
}

// groupFits reports whether an event of size bytes fits in a part alone.
func (r *Relay) groupFits(rs *renderState, size int) bool {
	return r.groupSize(&group{tx: &wire.Tx{}, src: &wire.Source{}}, size) <= rs.b.maxPayload
}

// groupSize bounds the size of g's message with extra more bytes of events:
// the wrapper's fields, the headers and some slack.
func (r *Relay) groupSize(g *group, extra int) int64 {
	name := 0
	if g.src != nil {
		name = len(g.src.Name)
	}
	return int64(len(g.buf) + extra + 2*name + len(r.cfg.Stream) + 512)
}

// flushGroup sends the record's current part; last: it ends the
// transaction.
func (r *Relay) flushGroup(rs *renderState, last bool) {
	g := &rs.group
	if g.n == 0 {
		return
	}
	r.idBuf = wire.AppendEventID(r.idBuf[:0], *g.src, g.tx.CommitLSN, g.last.Index, g.last.Part)
	if g.lastRelEnd {
		r.idBuf = append(r.idBuf, wire.RelationSuffix...)
	}
	r.flushParts(rs, last, r.idBuf)
}

// flushParts sends the part gathered in rs.group, with id (plus
// wire.GroupSuffix), possibly empty (endGroup).
func (r *Relay) flushParts(rs *renderState, last bool, idPrefix []byte) {
	g := &rs.group
	b := rs.b
	arena := rs.arena
	start := len(arena)
	contentType := groupJSON
	if bt, ok := r.env.(batcher); ok {
		if ct, ok := bt.Batch(); ok {
			contentType = []string{ct}
			arena = append(arena, '[')
			arena = append(arena, g.buf...)
			arena = append(arena, ']')
		}
	}
	if len(arena) == start {
		arena = append(arena, `{"source":`...)
		arena = value.AppendString(arena, g.src.Name)
		arena = append(arena, `,"lsn":"`...)
		arena = wire.LSN(g.tx.CommitLSN).Append(arena)
		arena = append(arena, `","xid":`...)
		arena = strconv.AppendUint(arena, uint64(g.tx.Xid), 10)
		arena = append(arena, `,"commit_time":`...)
		arena = value.AppendString(arena, commitTimeText(g.tx.CommitTime))
		if g.n > 0 {
			arena = append(arena, `,"first_index":`...)
			arena = strconv.AppendUint(arena, g.first, 10)
			arena = append(arena, `,"last_index":`...)
			arena = strconv.AppendUint(arena, g.last.Index, 10)
		}
		arena = append(arena, `,"last":`...)
		arena = strconv.AppendBool(arena, last)
		arena = append(arena, `,"events":[`...)
		arena = append(arena, g.buf...)
		arena = append(arena, "]}"...)
	}
	id := string(idPrefix) + wire.GroupSuffix
	r.subjBuf = r.route.AppendGroupSubject(r.subjBuf[:0], g.src)
	if string(r.subjBuf) != r.subj {
		r.subj = string(r.subjBuf)
	}
	msg := b.newMsg()
	*msg = nats.Msg{
		Subject: r.subj,
		Data:    arena[start:len(arena):len(arena)],
		Header: nats.Header{
			"Content-Type":                 contentType,
			jetstream.MsgIDHeader:          {id},
			jetstream.ExpectedStreamHeader: r.expectStream,
		},
	}
	if r.partHeader != nil {
		msg.Header[wire.PartitionHeader] = r.partHeader
	}
	ev := envelope.Event{Source: g.src, Tx: g.tx, Index: g.last.Index, ID: id}
	b.outs = append(b.outs, out{ev: ev, msg: msg, group: true})
	rs.arena = arena
	g.n, g.buf = 0, g.buf[:0]
}

// commitTimeText is a commit time as the native envelope writes it.
func commitTimeText(t int64) string {
	return time.UnixMicro(t).UTC().Format(time.RFC3339Nano)
}

// endGroup sends the last part of a transaction whose events all came in
// earlier raw records: no events, last true, at the commit's position (id
// <source>:<lsn>:commit:grp), so that every grouped transaction ends with
// a part that says so.
func (r *Relay) endGroup(rs *renderState, src *wire.Source, tx *wire.Tx) {
	pos := wire.EventID{CommitLSN: tx.CommitLSN, Seg: wire.SegCommit, Part: -1}
	if p := rs.resume; p != nil && pos.Compare(*p) <= 0 {
		rs.b.skipped++
		return
	}
	g := &rs.group
	g.src, g.tx, g.first, g.n, g.buf = src, tx, 0, 0, g.buf[:0]
	r.flushParts(rs, true, wire.AppendTxEventID(nil, *src, tx.CommitLSN, wire.CommitMark))
}
