package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// tooLargeError is an event bigger than the output accepts: the server's
// max_payload, or the output stream's max_msg_size when that is lower.
type tooLargeError struct {
	size int
	max  int64
	// encoded: size is the change's encoded size, and its event would be
	// larger than max (see oversizeFactor); it was not rendered.
	encoded bool
}

func (e *tooLargeError) Error() string {
	if e.encoded {
		return fmt.Sprintf("change of %d bytes makes an event larger than the %d bytes the output takes in one message (the NATS server's max_payload, or the output stream's max_msg_size if lower)", e.size, e.max)
	}
	return fmt.Sprintf("event of %d bytes exceeds the %d bytes the output takes in one message (the NATS server's max_payload, or the output stream's max_msg_size if lower)", e.size, e.max)
}

// deadLetterDoc is what lands on {prefix}._deadletter for an event that could
// not be rendered: enough to find the change and decode it by hand.
type deadLetterDoc struct {
	Error string `json:"error"`
	ID    string `json:"id"` // the Nats-Msg-Id the event would have had
	// RawSeq is the raw record that holds the change (or, for a change in
	// pieces, its first piece; the others follow on the same subject).
	RawSeq   uint64        `json:"raw_seq"`
	Source   deadSource    `json:"source"`
	LSN      string        `json:"lsn"` // commit LSN
	Xid      uint32        `json:"xid"`
	Index    uint64        `json:"index"` // change index within the transaction
	Op       string        `json:"op"`
	Schema   string        `json:"schema,omitempty"`
	Table    string        `json:"table,omitempty"`
	Prefix   string        `json:"prefix,omitempty"`  // logical decoding message
	Content  []byte        `json:"content,omitempty"` // logical decoding message, base64
	OldKind  string        `json:"old_kind,omitempty"`
	New      []deadValue   `json:"new,omitempty"`
	Old      []deadValue   `json:"old,omitempty"`
	Omitted  bool          `json:"values_omitted,omitempty"` // too large to carry
	Truncate *deadTruncate `json:"truncate,omitempty"`
}

type deadSource struct {
	Name     string `json:"name"`
	SystemID string `json:"system_id"` // a string: it does not fit a JSON number exactly
	Timeline int32  `json:"timeline"`
	Database string `json:"database"`
	Slot     string `json:"slot"`
}

type deadValue struct {
	Column  string `json:"column"`
	TypeOID uint32 `json:"type_oid"`
	Kind    string `json:"kind"`           // null, unchanged, text or binary
	Data    []byte `json:"data,omitempty"` // as Postgres sent it, base64
}

type deadTruncate struct {
	Options uint8 `json:"options"`
}

// deadLetter adds the dead letter of ev, which failed with cause, to b, in
// ev's place. The error is logged here, once per event, because the relay
// then goes on.
func (r *Renderer) deadLetter(b *Batch, ev *envelope.Event, cause error) {
	id := ev.ID
	c := ev.Change
	if c == nil {
		// A transaction or relation event: no values to carry.
		c = &wire.Change{Op: 0}
	}
	d := deadLetterDoc{
		Error:  cause.Error(),
		ID:     id,
		RawSeq: b.RawSeq,
		Source: deadSource{
			Name:     ev.Source.Name,
			SystemID: strconv.FormatUint(ev.Source.SystemID, 10),
			Timeline: ev.Source.Timeline,
			Database: ev.Source.Database,
			Slot:     ev.Source.Slot,
		},
		LSN:   wire.LSN(ev.Tx.CommitLSN).String(),
		Xid:   ev.Tx.Xid,
		Index: ev.Index,
		Op:    c.Op.String(),
	}
	switch ev.Kind {
	case envelope.KindBegin:
		d.Op = "begin"
	case envelope.KindCommit:
		d.Op = "commit"
	case envelope.KindRelation:
		d.Op = "relation"
	}
	if ev.Rel != nil {
		d.Schema, d.Table = ev.Rel.Schema, ev.Rel.Table
	}
	var tooLarge *tooLargeError
	omit := errors.As(cause, &tooLarge)
	switch {
	case ev.Kind != envelope.KindChange:
	case c.Op == wire.OpMessage:
		d.Prefix = c.Prefix
		if omit {
			d.Omitted = true
		} else {
			d.Content = c.Content
		}
	case c.Op == wire.OpTruncate:
		d.Truncate = &deadTruncate{Options: c.TruncateOptions}
	default:
		if c.OldKind != wire.OldNone {
			d.OldKind = string(c.OldKind)
		}
		if omit {
			d.Omitted = true
		} else {
			d.New = deadValues(ev.Rel, c.New)
			d.Old = deadValues(ev.Rel, c.Old)
		}
	}
	data, err := json.Marshal(&d)
	if err != nil {
		// Only strings, numbers and bytes: cannot happen.
		panic(fmt.Sprintf("encode dead letter: %v", err))
	}
	dead := r.route.DeadLetter()
	r.log.Warn("event cannot be rendered; sent to the dead-letter subject", "err", cause, "subject", dead, "id", id,
		"schema", d.Schema, "table", d.Table, "op", d.Op, "lsn", d.LSN, "index", ev.Index)
	b.add(Msg{Subject: dead, Header: r.headers(b, nil, id+wire.DeadLetterSuffix), Data: data, Kind: DeadLetter, Event: *ev})
}

func deadValues(rel *wire.Relation, vals []wire.Value) []deadValue {
	if len(vals) == 0 {
		return nil
	}
	out := make([]deadValue, len(vals))
	for i, v := range vals {
		col := &rel.Columns[i]
		out[i] = deadValue{Column: col.Name, TypeOID: col.TypeOID, Kind: kindName(v.Kind), Data: v.Data}
	}
	return out
}

func kindName(k byte) string {
	switch k {
	case wire.KindNull:
		return "null"
	case wire.KindUnchanged:
		return "unchanged"
	case wire.KindText:
		return "text"
	case wire.KindBinary:
		return "binary"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// RawRecord is a raw record that could not be decoded.
type RawRecord struct {
	Stream, Subject string
	Seq             uint64
	Data            []byte
}

// rawDeadLetterDoc is the dead letter of an undecodable raw record: its
// bytes, and where it was.
type rawDeadLetterDoc struct {
	Error      string `json:"error"`
	ID         string `json:"id"`
	RawStream  string `json:"raw_stream"`
	RawSeq     uint64 `json:"raw_seq"`
	RawSubject string `json:"raw_subject"`
	Data       []byte `json:"raw"` // base64
}

// RawDeadLetterID is the id of raw record seq's dead letter: it names no
// source, since the record could not say which.
func RawDeadLetterID(stream string, seq uint64) string {
	return "raw-record." + stream + ":" + strconv.FormatUint(seq, 10) + wire.DeadLetterSuffix
}

// ParseRawDeadLetterID returns the raw record sequence id, the id of a dead
// letter of a record of stream, names (RawDeadLetterID).
func ParseRawDeadLetterID(stream, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, "raw-record."+stream+":")
	if !ok {
		return 0, false
	}
	if rest, ok = strings.CutSuffix(rest, wire.DeadLetterSuffix); !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil && seq > 0
}

// RawDeadLetter resets b to hold the dead letter of raw, a record that
// could not be decoded (cause), on the route's dead-letter subject.
func (r *Renderer) RawDeadLetter(b *Batch, raw RawRecord, cause error) {
	b.reset(Raw{Seq: raw.Seq}, 0)
	if _, ok := r.rawDead[raw.Seq]; ok {
		// The output holds it (StoredRawDeadLetters): not again.
		b.Skipped++
		return
	}
	id := RawDeadLetterID(raw.Stream, raw.Seq)
	data, err := json.Marshal(&rawDeadLetterDoc{Error: cause.Error(), ID: id, RawStream: raw.Stream, RawSeq: raw.Seq, RawSubject: raw.Subject, Data: raw.Data})
	if err != nil {
		panic(fmt.Sprintf("encode dead letter: %v", err)) // strings, a number and bytes
	}
	b.add(Msg{Subject: r.route.DeadLetter(), Header: r.headers(b, nil, id), Data: data, Kind: DeadLetter})
}
