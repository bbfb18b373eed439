// Package stdout prints events for local use: one compact JSON document per
// line, indented JSON, or one human-readable line per event.
package stdout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// Format selects how events are printed.
type Format int

const (
	Off Format = iota
	JSON
	JSONPretty
	Text
)

// ParseFormat reads a --stdout value; "" means Off.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "":
		return Off, nil
	case "json":
		return JSON, nil
	case "json-pretty":
		return JSONPretty, nil
	case "text":
		return Text, nil
	}
	return Off, fmt.Errorf("unknown stdout format %q: use json, json-pretty or text", s)
}

// Sink prints events to a buffered writer. Not safe for concurrent use.
type Sink struct {
	w      *bufio.Writer
	format Format
	pretty bytes.Buffer
	line   []byte
	loc    *time.Location
}

// New returns a Sink writing to w in format f (not Off). Text lines show
// commit times in loc (time.Local when nil).
func New(w io.Writer, f Format, loc *time.Location) *Sink {
	if loc == nil {
		loc = time.Local
	}
	return &Sink{w: bufio.NewWriterSize(w, 64<<10), format: f, loc: loc}
}

// Write prints one event; doc is the event as one JSON document: a native
// envelope, or a CloudEvent whose data is one.
func (s *Sink) Write(e *envelope.Event, doc []byte) error {
	var err error
	switch s.format {
	case JSON:
		_, err = s.w.Write(doc)
		if err == nil {
			err = s.w.WriteByte('\n')
		}
	case JSONPretty:
		s.pretty.Reset()
		if err = json.Indent(&s.pretty, doc, "", "  "); err != nil {
			return fmt.Errorf("stdout: indent event: %w", err)
		}
		s.pretty.WriteByte('\n')
		_, err = s.w.Write(s.pretty.Bytes())
	case Text:
		s.line, err = s.appendText(s.line[:0], e, doc)
		if err != nil {
			return err
		}
		_, err = s.w.Write(s.line)
	}
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}

// Flush writes out what is buffered.
func (s *Sink) Flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}

// rowParts are the parts of a native envelope a text line shows.
type rowParts struct {
	Key     json.RawMessage `json:"key"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	Content json.RawMessage `json:"content"`
	Base64  json.RawMessage `json:"content_base64"`
}

// document is a native envelope or a CloudEvent, which has a specversion (the
// native envelope has none) and the native envelope as data.
type document struct {
	rowParts
	SpecVersion string    `json:"specversion"`
	Data        *rowParts `json:"data"`
}

// appendText appends e as one line, e.g.
//
//	09:00:01.123 UPDATE public.users key={"id":1} before={...} → after={...}
func (s *Sink) appendText(b []byte, e *envelope.Event, raw []byte) ([]byte, error) {
	if e.Kind != envelope.KindChange || e.Change == nil {
		// Transaction and relation events, and transaction groups: what
		// they are, then their document.
		b = time.UnixMicro(e.Tx.CommitTime).In(s.loc).AppendFormat(b, "15:04:05.000")
		label := " GROUP "
		switch e.Kind {
		case envelope.KindBegin:
			label = " BEGIN "
		case envelope.KindCommit:
			label = " COMMIT "
		case envelope.KindRelation:
			label = " RELATION "
		}
		b = append(b, label...)
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return b, fmt.Errorf("stdout: read event: %w", err)
		}
		b = append(b, compact.Bytes()...)
		return append(b, '\n'), nil
	}
	var d document
	if err := json.Unmarshal(raw, &d); err != nil {
		return b, fmt.Errorf("stdout: read event: %w", err)
	}
	p := d.rowParts
	if d.SpecVersion != "" {
		if d.Data == nil {
			return b, fmt.Errorf("stdout: CloudEvent without data: %.200s", raw)
		}
		p = *d.Data
	}
	b = time.UnixMicro(e.Tx.CommitTime).In(s.loc).AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	b = append(b, strings.ToUpper(e.Change.Op.String())...)
	b = append(b, ' ')
	if e.Change.Op == wire.OpMessage {
		b = appendName(b, e.Change.Prefix)
		b = appendPart(b, "content", p.Content)
		b = appendPart(b, "content_base64", p.Base64)
		return append(b, '\n'), nil
	}
	b = appendName(b, e.Rel.Schema)
	b = append(b, '.')
	b = appendName(b, e.Rel.Table)
	b = appendPart(b, "key", p.Key)
	switch e.Change.Op {
	case wire.OpInsert, wire.OpRead:
		b = appendPart(b, "after", p.After)
	case wire.OpUpdate:
		if present(p.Before) {
			b = appendPart(b, "before", p.Before)
			b = append(b, " →"...)
		}
		b = appendPart(b, "after", p.After)
	case wire.OpDelete:
		b = appendPart(b, "before", p.Before)
	}
	return append(b, '\n'), nil
}

// appendName appends a name from the database, quoted when it holds control
// characters, so that a hostile name cannot forge lines on a terminal.
func appendName(b []byte, s string) []byte {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func present(v json.RawMessage) bool {
	return len(v) > 0 && string(v) != "null"
}

func appendPart(b []byte, name string, v json.RawMessage) []byte {
	if !present(v) {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=')
	return append(b, v...)
}
