// Package envelope renders changes as the JSON documents routers publish.
package envelope

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// Event is one change to render, with the context it needs.
type Event struct {
	Source *wire.Source
	Tx     *wire.Tx
	Change *wire.Change
	// Index is the change's index within its transaction
	// (Tx.FirstChange + position in Tx.Changes).
	Index uint64
	// Rel is the changed relation; for a truncate, the one truncated relation
	// this event is for (a truncate of several tables is one event per table);
	// nil for messages.
	Rel *wire.Relation
	// ID is the event's id, the Nats-Msg-Id of its message; envelopes that
	// carry an id (CloudEvents) repeat it.
	ID string

	// Kind says what the event is; KindChange, the zero value, is Change.
	// For KindBegin and KindCommit, Change is nil and Tx is the
	// transaction; for KindRelation, Rel is the relation and Tx the
	// transaction of the change it precedes.
	Kind Kind
	// Count (KindCommit) is how many events of the route the transaction
	// had, Tables how many per table, in order of first appearance.
	Count  int
	Tables []TableCount
	// TraceParent is the W3C trace context of the router's span for the
	// event's raw record ("" while tracing is off): CloudEvents carry it as
	// the distributed tracing extension.
	TraceParent string
}

// Native renders the native envelope: compact JSON with a fixed key order,
//
//	{"op":"update","source":"app","schema":"public","table":"users",
//	 "lsn":"0/16B3748","xid":734,"commit_time":"2026-11-23T09:00:00.123456Z",
//	 "index":3,"key":{"id":1},"before":null,"after":{...},"unchanged":["bio"]}
//
// It is not safe for concurrent use.
type Native struct {
	dec       *value.Decoder
	unchanged []bool // per column of the current relation: some tuple had it unchanged

	// The last commit time rendered: every change of a transaction repeats it.
	lastTime     int64
	lastTimeText []byte
}

// NewNative returns a Native renderer.
func NewNative() *Native {
	return &Native{dec: value.NewDecoder()}
}

// newNative is the registry's factory: the native envelope has no settings.
func newNative(o Options) (Renderer, error) {
	if err := decodeSettings(o.Settings, &struct{}{}); err != nil {
		return nil, err
	}
	return withEncoding(o, NewNative(), func() (Renderer, error) { return NewNative(), nil })
}

// Append appends the envelope of e to b. On error (an undecodable value, an
// inconsistent event) b is returned unchanged and the error names the
// column; the caller dead-letters the change.
func (n *Native) Append(b []byte, e *Event) ([]byte, error) {
	if e.Kind != KindChange {
		return n.appendMeta(b, e)
	}
	out, err := n.append(b, e)
	if err != nil {
		return b, err
	}
	return out, nil
}

// AddHeader adds nothing: the native envelope has no headers of its own.
func (n *Native) AddHeader(Header, *Event) int { return 0 }

// Document appends e as one JSON document for printing: its body, which
// holds all of it.
func (n *Native) Document(b []byte, _ *Event, body []byte) []byte {
	return append(b, body...)
}

// checkEvent reports what makes e impossible to render in any envelope.
func checkEvent(e *Event) error {
	if e.Source == nil || e.Tx == nil || e.Change == nil {
		return errors.New("render change: event lacks its source, transaction or change")
	}
	switch e.Change.Op {
	case wire.OpMessage:
	case wire.OpInsert, wire.OpUpdate, wire.OpDelete, wire.OpTruncate, wire.OpRead:
		if e.Rel == nil {
			return fmt.Errorf("render %s: no relation", e.Change.Op)
		}
	default:
		return fmt.Errorf("render change: unknown op %d", e.Change.Op)
	}
	return nil
}

func (n *Native) append(b []byte, e *Event) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return b, err
	}
	c := e.Change
	b = append(b, `{"op":"`...)
	b = append(b, c.Op.String()...)
	b = n.appendOrigin(b, e, c.Op != wire.OpMessage)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	if s := e.Tx.Snapshot; c.Op == wire.OpRead && s != nil {
		// Which kind of snapshot read it: a consumer tells the rows of an
		// initial snapshot from those a backfill re-sent.
		b = append(b, `,"snapshot":"`...)
		b = append(b, s.Kind.String()...)
		b = append(b, '"')
	}

	switch c.Op {
	case wire.OpMessage:
		return appendMessage(b, c), nil
	case wire.OpTruncate:
		return appendTruncate(b, c), nil
	}
	return n.appendRow(b, e)
}

// commitTime returns t (microseconds since the epoch) in RFC 3339, UTC. Every
// change of a transaction repeats it, so the last one is kept. The result is
// valid until the next call.
func (n *Native) commitTime(t int64) []byte {
	if n.lastTimeText == nil || n.lastTime != t {
		n.lastTime = t
		n.lastTimeText = time.UnixMicro(t).UTC().AppendFormat(n.lastTimeText[:0], time.RFC3339Nano)
	}
	return n.lastTimeText
}

func (n *Native) appendRow(b []byte, e *Event) ([]byte, error) {
	rel := e.Rel
	keyFrom, before, after, beforeKeysOnly, err := rowImages(e.Change, rel)
	if err != nil {
		return b, err
	}
	n.resetUnchanged(len(rel.Columns))
	b = append(b, `,"key":`...)
	if b, err = n.appendKey(b, rel, keyFrom); err != nil {
		return b, err
	}
	b = append(b, `,"before":`...)
	if b, err = n.appendTuple(b, rel, before, beforeKeysOnly); err != nil {
		return b, err
	}
	b = append(b, `,"after":`...)
	if b, err = n.appendTuple(b, rel, after, false); err != nil {
		return b, err
	}
	return append(n.appendUnchanged(b, rel), '}'), nil
}

// rowImages picks the tuples of a row change: the one its key comes from,
// the row before and after it, and whether before holds key columns only.
func rowImages(c *wire.Change, rel *wire.Relation) (keyFrom, before, after []wire.Value, beforeKeysOnly bool, err error) {
	switch c.Op {
	case wire.OpInsert, wire.OpRead:
		keyFrom, after = c.New, c.New
	case wire.OpUpdate:
		keyFrom, after = c.New, c.New
		if len(c.Old) > 0 {
			keyFrom, before = c.Old, c.Old
		}
	case wire.OpDelete:
		keyFrom, before = c.Old, c.Old
	}
	if before != nil {
		switch c.OldKind {
		case wire.OldFull:
		case wire.OldKey:
			// Non-key columns are NULL placeholders, not values: leave them out.
			beforeKeysOnly = true
		default:
			return nil, nil, nil, false, fmt.Errorf("render %s on %s.%s: old tuple of unknown kind %q", c.Op, rel.Schema, rel.Table, c.OldKind)
		}
	}
	return keyFrom, before, after, beforeKeysOnly, nil
}

// resetUnchanged readies n.unchanged for a relation of cols columns.
func (n *Native) resetUnchanged(cols int) {
	if cap(n.unchanged) < cols {
		n.unchanged = make([]bool, cols)
	}
	n.unchanged = n.unchanged[:cols]
	clear(n.unchanged)
}

// appendUnchanged appends the "unchanged" list of the columns the tuples
// rendered since resetUnchanged left out, if there are any.
func (n *Native) appendUnchanged(b []byte, rel *wire.Relation) []byte {
	first := true
	for i, u := range n.unchanged {
		if !u {
			continue
		}
		if first {
			b = append(b, `,"unchanged":[`...)
			first = false
		} else {
			b = append(b, ',')
		}
		b = value.AppendString(b, rel.Columns[i].Name)
	}
	if !first {
		b = append(b, ']')
	}
	return b
}

// appendKey renders the replica identity columns of tuple, or null when the
// table has none. A key value that is unchanged TOAST is unknown and left out
// (it is listed in "unchanged" through the tuple it came from).
func (n *Native) appendKey(b []byte, rel *wire.Relation, tuple []wire.Value) ([]byte, error) {
	hasKey := false
	for i := range rel.Columns {
		if rel.Columns[i].Key {
			hasKey = true
			break
		}
	}
	if !hasKey || tuple == nil {
		return append(b, "null"...), nil
	}
	return n.appendTuple(b, rel, tuple, true)
}

// appendTuple renders tuple as an object of column name to value (only key
// columns if keysOnly), or null for no tuple. Unchanged TOAST values are left
// out and marked in n.unchanged.
func (n *Native) appendTuple(b []byte, rel *wire.Relation, tuple []wire.Value, keysOnly bool) ([]byte, error) {
	if tuple == nil {
		return append(b, "null"...), nil
	}
	if len(tuple) != len(rel.Columns) {
		return b, fmt.Errorf("render %s.%s: tuple has %d values, relation has %d columns", rel.Schema, rel.Table, len(tuple), len(rel.Columns))
	}
	b = append(b, '{')
	first := true
	for i := range tuple {
		col := &rel.Columns[i]
		if keysOnly && !col.Key {
			continue
		}
		if tuple[i].Kind == wire.KindUnchanged {
			n.unchanged[i] = true
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = value.AppendString(b, col.Name)
		b = append(b, ':')
		var err error
		if b, err = n.dec.AppendJSON(b, col, tuple[i]); err != nil {
			return b, fmt.Errorf("decode %s.%s.%s: %w", rel.Schema, rel.Table, col.Name, err)
		}
	}
	return append(b, '}'), nil
}

func appendTruncate(b []byte, c *wire.Change) []byte {
	b = append(b, `,"key":null,"before":null,"after":null`...)
	return append(appendTruncateOptions(b, c), '}')
}

// appendTruncateOptions appends the "options" list of a truncate, if it has
// any.
func appendTruncateOptions(b []byte, c *wire.Change) []byte {
	if c.TruncateOptions&(wire.TruncateCascade|wire.TruncateRestartIdentity) == 0 {
		return b
	}
	b = append(b, `,"options":[`...)
	if c.TruncateOptions&wire.TruncateCascade != 0 {
		b = append(b, `"cascade"`...)
		if c.TruncateOptions&wire.TruncateRestartIdentity != 0 {
			b = append(b, ',')
		}
	}
	if c.TruncateOptions&wire.TruncateRestartIdentity != 0 {
		b = append(b, `"restart_identity"`...)
	}
	return append(b, ']')
}

// appendMessage renders a logical decoding message. Content is bytes to
// Postgres; most outbox payloads are text, so it is a string when it is valid
// UTF-8 and base64 (under another key, so it cannot be mistaken) otherwise.
func appendMessage(b []byte, c *wire.Change) []byte {
	b = append(b, `,"prefix":`...)
	b = value.AppendString(b, c.Prefix)
	if utf8.Valid(c.Content) {
		b = append(b, `,"content":`...)
		b = value.AppendString(b, c.Content)
	} else {
		b = append(b, `,"content_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, c.Content)
		b = append(b, '"')
	}
	b = append(b, `,"transactional":`...)
	b = strconv.AppendBool(b, c.Transactional)
	return append(b, '}')
}
