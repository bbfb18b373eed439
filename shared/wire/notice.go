package wire

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Notices are records the collector itself writes into a source's raw
// subject to tell consumers about something that happened to the source
// rather than in it: stored records that a failover made phantoms, a gap
// accepted with --recreate-slot. A notice is a change like any other, so
// that every reader (routers, replay, tools) sees it in stream order with
// no change of format: a non-transactional logical decoding message
// (OpMessage) whose prefix starts with NoticePrefix and whose content is a
// Notice as JSON, alone in a final Tx.
//
// Position: a notice precedes the change it is about, and takes the WAL
// position just before it (NoticeLSN). No change of the source can hold
// that position: every position below the first one a notice precedes
// was either stored before it or is skipped by the collector. A collector
// resuming after a stored notice therefore skips exactly what came before it,
// and a notice's event id is stable across retries and restarts.
//
// Routers publish every notice on every route, whatever its filters (see
// docs/pipeline.md, "Notices").

// NoticePrefix starts the prefix of every notice. Applications must not use
// it for their own pg_logical_emit_message calls: routers would take those
// for notices.
const NoticePrefix = "pgjet.notice."

// Notice kinds.
const (
	// NoticePhantoms: a promoted server (a new timeline) never had some
	// records already stored from the old one. Those records stay in the
	// stream and in outputs; nothing can take them back.
	NoticePhantoms = "phantoms"
	// NoticeGap: changes were committed that the stream will never hold
	// (a slot dropped or invalidated, then recreated with --recreate-slot).
	NoticeGap = "gap"
)

// Notice is the content of a notice, as JSON.
type Notice struct {
	// Kind is what happened: NoticePhantoms, NoticeGap.
	Kind string `json:"kind"`
	// Message says it in one line, for people.
	Message string `json:"message"`
	// SourceID is the Source.ID() of the events concerned: event ids start
	// with it. Phantoms carry the old timeline's id; a gap the current one.
	SourceID string `json:"source_id,omitempty"`
	// FromLSN and ToLSN bound the commit positions concerned, inclusive, as
	// Postgres writes LSNs ("0/16B3748"). Phantoms: the events of SourceID
	// whose commit LSN lies in the range. Gap: what was committed between
	// them is missing.
	FromLSN string `json:"from_lsn,omitempty"`
	ToLSN   string `json:"to_lsn,omitempty"`
}

// NoticeLSN is the position of a notice that precedes the change at first.
func NoticeLSN(first uint64) uint64 {
	if first == 0 {
		return 0
	}
	return first - 1
}

// NoticeTx is the raw transaction that carries n at NoticeLSN(first).
func NoticeTx(n Notice, first uint64) (Tx, error) {
	if n.Kind == "" || strings.ContainsAny(n.Kind, ". ") {
		return Tx{}, fmt.Errorf("notice kind %q: one word, no dots", n.Kind)
	}
	content, err := json.Marshal(n)
	if err != nil {
		return Tx{}, fmt.Errorf("encode notice: %w", err)
	}
	lsn := NoticeLSN(first)
	return Tx{
		CommitLSN: lsn,
		EndLSN:    lsn,
		Final:     true,
		Changes:   []Change{{Op: OpMessage, Rel: -1, Prefix: NoticePrefix + n.Kind, Content: content}},
	}, nil
}

// IsNotice reports whether c is a notice.
func IsNotice(c *Change) bool {
	return c.Op == OpMessage && !c.Transactional && strings.HasPrefix(c.Prefix, NoticePrefix)
}

// NoticeKind is the kind of notice c (IsNotice(c) must hold).
func NoticeKind(c *Change) string { return strings.TrimPrefix(c.Prefix, NoticePrefix) }

// ParseNotice decodes the content of notice c.
func ParseNotice(c *Change) (Notice, error) {
	var n Notice
	if !IsNotice(c) {
		return n, fmt.Errorf("not a notice (prefix %q)", c.Prefix)
	}
	if err := json.Unmarshal(c.Content, &n); err != nil {
		return n, fmt.Errorf("notice %s: %w", c.Prefix, err)
	}
	return n, nil
}
