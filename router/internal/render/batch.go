package render

import (
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// Kind says what a message is.
type Kind uint8

const (
	// Event is one event: a change, or a transaction or relation event.
	Event Kind = iota
	// DeadLetter stands for an event that could not be rendered.
	DeadLetter
	// Group holds a transaction's events, or a part of them.
	Group
	// Tombstone is the empty message after a delete, for consumers that
	// compact by key.
	Tombstone
)

// Msg is one message to publish.
type Msg struct {
	Subject string
	Header  envelope.Header
	// Data points into its batch's buffer, valid until the batch is
	// rendered into again.
	Data []byte
	Kind Kind
	// Event is what was rendered: the event (a dead letter's, a
	// tombstone's delete), or a group's last event.
	Event envelope.Event
}

// Batch is everything one raw record turns into, in publishing order.
// Render into it again only once nothing reads its messages any more (every
// publish of them acknowledged): the messages point into its buffer.
type Batch struct {
	Msgs []Msg
	// Dead counts the dead letters among Msgs; Skipped, the events the
	// output stream held already (not in Msgs).
	Dead, Skipped int
	// Missing counts the events published although they lie before their
	// source's last stored one: the output lacked them (Stored).
	Missing int
	// Backwards counts the transaction fragments skipped because they lie
	// before what the route already rendered of their source (order.go),
	// from commit LSN BackFrom to BackTo.
	Backwards        int
	BackFrom, BackTo uint64
	// RawSeq is the raw record's stream sequence.
	RawSeq uint64

	arena      []byte // the rendered messages, which Msgs point into
	maxPayload int64  // the output's limit for one message, headers included
	// headers are the messages' header maps, the first nh in use; vals,
	// their one-value slices: reused from record to record.
	headers []envelope.Header
	nh      int
	vals    []string
}

// reset empties b for raw record raw: its buffer gets room for about
// twice the record's size, what its events take in the envelopes.
func (b *Batch) reset(raw Raw, maxPayload int64) {
	clear(b.Msgs) // let go of the previous record's headers and events
	b.Msgs, b.Dead, b.Skipped, b.Missing, b.RawSeq, b.maxPayload = b.Msgs[:0], 0, 0, 0, raw.Seq, maxPayload
	b.Backwards, b.BackFrom, b.BackTo = 0, 0, 0
	b.nh, b.vals = 0, b.vals[:0]
	if want := 2 * raw.Size; cap(b.arena) < want {
		b.arena = make([]byte, 0, want)
	}
	b.arena = b.arena[:0]
}

// Size is the capacity b holds on to, for a pool of batches.
func (b *Batch) Size() int { return cap(b.arena) }

func (b *Batch) backwards(tx *wire.Tx) {
	if b.Backwards == 0 {
		b.BackFrom = tx.CommitLSN
	}
	b.Backwards++
	b.BackTo = tx.CommitLSN
}

// header returns an empty header map for a message of b.
func (b *Batch) header() envelope.Header {
	if b.nh < len(b.headers) {
		h := b.headers[b.nh]
		clear(h)
		b.nh++
		return h
	}
	h := make(envelope.Header, 4)
	b.headers = append(b.headers, h)
	b.nh++
	return h
}

// value returns s as a header value, carved from b's slab.
func (b *Batch) value(s string) []string {
	if len(b.vals) == cap(b.vals) {
		// A new slab: the messages of this record point into the old one.
		b.vals = make([]string, 0, max(64, 2*cap(b.vals)))
	}
	b.vals = append(b.vals, s)
	n := len(b.vals)
	return b.vals[n-1 : n : n]
}

func (b *Batch) add(m Msg) {
	if m.Kind == DeadLetter {
		b.Dead++
	}
	b.Msgs = append(b.Msgs, m)
}
