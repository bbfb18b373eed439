package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// tooLargeError is an event bigger than the server accepts.
type tooLargeError struct {
	size int
	max  int64
	// encoded: size is the change's encoded size, and its event would be
	// larger than max (see oversizeFactor); it was not rendered.
	encoded bool
}

func (e *tooLargeError) Error() string {
	if e.encoded {
		return fmt.Sprintf("change of %d bytes makes an event larger than the NATS server's max_payload of %d bytes", e.size, e.max)
	}
	return fmt.Sprintf("event of %d bytes exceeds the NATS server's max_payload of %d bytes", e.size, e.max)
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

// deadLetter builds the dead-letter message of ev, which failed with cause.
// The error is logged here, once per event, because the relay then goes on.
func (r *Relay) deadLetter(ev *envelope.Event, id string, rawSeq uint64, cause error) *nats.Msg {
	c := ev.Change
	if c == nil {
		// A transaction or relation event: no values to carry.
		c = &wire.Change{Op: 0}
	}
	d := deadLetterDoc{
		Error:  cause.Error(),
		ID:     id,
		RawSeq: rawSeq,
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
	r.log.Warn("event cannot be rendered; sent to the dead-letter subject", "err", cause, "subject", r.dead, "id", id,
		"schema", d.Schema, "table", d.Table, "op", d.Op, "lsn", d.LSN, "index", ev.Index)
	return &nats.Msg{
		Subject: r.dead,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id + wire.DeadLetterSuffix}, jetstream.ExpectedStreamHeader: r.expectStream},
	}
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
