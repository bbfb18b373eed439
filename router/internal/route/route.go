// Package route is one sink of a pipeline: which changes it takes, how their
// columns are transformed, and which subject each goes to.
package route

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"path"
	"slices"
	"strings"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/subject"
	"github.com/pgjet/pgjet/shared/wire"
)

// DefaultPrefix is the subject prefix unless configured.
const DefaultPrefix = "postgres"

const (
	defaultSubject        = "{prefix}.{schema}.{table}.{op}"
	defaultMessageSubject = "{prefix}." + subject.MessagesToken + ".{message_prefix}"
	defaultDeadLetter     = "{prefix}." + subject.DeadLetterToken
	// The subjects of transaction and relation events in pgoutput-stream's
	// hierarchy, which its subscribers already use.
	defaultTxSubject       = "{prefix}.transactions.{event}.event"
	defaultRelationSubject = "{prefix}.{schema}.{table}.relation"
	// One subject per source keeps a source's transactions in order.
	defaultGroupSubject = "{prefix}.transactions.{source}"
)

// Notices (wire.IsNotice) are the collector's word about the source itself:
// every route publishes them whatever its filters, on
// {prefix}._notices.{kind}, or on the route's subject when it is fixed.

// Config is a sink as the pipeline file describes it.
type Config struct {
	Name   string // the sink's id, for messages
	Prefix string // subject prefix, default "postgres"; validated with subject.ValidPrefix
	// Subject: a template over {prefix} {source} {schema} {table} {op}, or a
	// fixed subject (no placeholder but {prefix}, e.g. "users.events").
	// "" = "{prefix}.{schema}.{table}.{op}".
	Subject string
	// MessageSubject: template for logical decoding messages over {prefix}
	// {source} {message_prefix}. "" = "{prefix}._messages.{message_prefix}"
	// when Subject has placeholders, Subject itself when Subject is fixed.
	MessageSubject string
	// DeadLetterSubject: a fixed subject ({prefix} allowed). "" =
	// "{prefix}._deadletter" when Subject has placeholders, Subject +
	// "._deadletter" when Subject is fixed.
	DeadLetterSubject string
	// Include, Exclude: table globs "schema.table" ("public.*", "*.*");
	// empty Include = all tables.
	Include, Exclude []string
	// Ops: any of insert, update, delete, truncate, message; empty = all.
	Ops []string
	// MessagePrefixes: globs on a message's prefix; empty = all.
	MessagePrefixes []string
	Columns         []ColumnRule
	// HashKey is the HMAC-SHA256 key of Hash rules; required (at least 16
	// bytes) when a rule hashes.
	HashKey []byte
	// Warn, when set, is told once per (table, column) when a rule names a
	// column the table does not have.
	Warn func(msg string, args ...any)

	// Transactions: publish a begin and a commit event around the route's
	// events of every transaction that has some, on TransactionSubject (a
	// template over {prefix} {source} {event}, event being begin or commit;
	// "" = "{prefix}.transactions.{event}.event", or Subject when fixed).
	Transactions       bool
	TransactionSubject string
	// Relations: publish a relation event (the table's columns) before the
	// route's first event of a table and whenever its columns change, on
	// RelationSubject (a template over {prefix} {source} {schema} {table};
	// "" = "{prefix}.{schema}.{table}.relation", or Subject when fixed).
	Relations       bool
	RelationSubject string
	// Group: publish each transaction's events of the route as one message
	// (in parts when it would exceed the server's max payload), on
	// GroupSubject (a template over {prefix} {source}; "" =
	// "{prefix}.transactions.{source}", or Subject when fixed), instead of
	// one message per event. Dead letters still go one by one.
	Group        bool
	GroupSubject string
	// Partition of Partitions (0 <= Partition < Partitions): the route
	// publishes only the events whose partition key (partition.go) falls in
	// its share; Partitions <= 1 for all of them.
	Partition, Partitions int
}

// FieldError is a bad Config field; Field is the pipeline-file key it comes
// from, e.g. "tables.include[2]" or "columns[0].mask.email".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Route applies one sink's Config to events. It keeps per-table caches, so
// it is not safe for concurrent use.
type Route struct {
	name     string
	row, msg *template
	// tx and rel are the templates of transaction and relation events, nil
	// unless the route publishes them.
	tx, rel *template
	// group is the template of transaction groups, nil unless grouping.
	group *template
	// part of parts: the route's share of a partitioned output.
	part, parts    int
	dead           string
	deadUsesPrefix bool
	// notices is the subject of notices without their kind (a route with
	// placeholders), or the fixed subject itself (noticeFixed).
	notices     string
	noticeFixed bool
	subjects    []string

	include, exclude []tableGlob
	ops              uint8 // bit 1<<op per selected op
	msgPrefixes      []glob

	rules []*rule
	mac   hash.Hash // HMAC-SHA256 with the hash key; nil without hash rules
	sum   []byte
	warn  func(msg string, args ...any)

	tables map[tableKey]*tableState
	last   *tableState // of the last lookup: runs of events share a table
	warned map[warnKey]struct{}
}

var opNames = []string{"insert", "update", "delete", "truncate", "message"}

var opByName = map[string]wire.Op{
	"insert":   wire.OpInsert,
	"update":   wire.OpUpdate,
	"delete":   wire.OpDelete,
	"truncate": wire.OpTruncate,
	"message":  wire.OpMessage,
}

const allOps = 1<<wire.OpInsert | 1<<wire.OpUpdate | 1<<wire.OpDelete | 1<<wire.OpTruncate | 1<<wire.OpMessage

// New checks c and returns its Route. Every bad field is reported, each as a
// *FieldError, joined.
func New(c Config) (*Route, error) {
	var errs []error
	fail := func(field string, err error) {
		for _, e := range errs {
			if fe := e.(*FieldError); fe.Field == field && fe.Err.Error() == err.Error() {
				return
			}
		}
		errs = append(errs, &FieldError{Field: field, Err: err})
	}
	r := &Route{name: c.Name, warn: c.Warn, tables: make(map[tableKey]*tableState)}

	prefix, prefixOK := c.Prefix, true
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := subject.ValidPrefix(prefix); err != nil {
		fail("prefix", err)
		// Parse the templates anyway, for their own errors.
		prefix, prefixOK = DefaultPrefix, false
	}

	r.parseSubjects(c, prefix, fail)
	if r.row != nil && r.row.fixed {
		r.notices, r.noticeFixed = r.row.text, true
	} else {
		r.notices = prefix + "." + subject.NoticesToken
	}
	r.parseMetaSubjects(c, prefix, fail)
	r.ops = parseOps(c.Ops, fail)
	if c.Partitions > 1 {
		if c.Partition < 0 || c.Partition >= c.Partitions {
			fail("partition", fmt.Errorf("%d/%d: use i/N with 0 <= i < N", c.Partition, c.Partitions))
		}
		r.part, r.parts = c.Partition, c.Partitions
	}
	if r.row != nil && r.msg != nil && r.dead != "" && prefixOK && (r.tx != nil) == c.Transactions && (r.rel != nil) == c.Relations && (r.group != nil) == c.Group {
		r.checkRaw(c, prefix, fail)
		r.subjects = r.makeSubjects()
	}

	for i, p := range c.Include {
		g, err := parseTableGlob(p)
		if err != nil {
			fail(fmt.Sprintf("tables.include[%d]", i), err)
		}
		r.include = append(r.include, g)
	}
	for i, p := range c.Exclude {
		g, err := parseTableGlob(p)
		if err != nil {
			fail(fmt.Sprintf("tables.exclude[%d]", i), err)
		}
		r.exclude = append(r.exclude, g)
	}
	for i, p := range c.MessagePrefixes {
		g, err := parseGlob(p)
		if err != nil {
			fail(fmt.Sprintf("message_prefixes[%d]", i), fmt.Errorf("message prefix %w", err))
		}
		r.msgPrefixes = append(r.msgPrefixes, g)
	}

	hashes := false
	for i := range c.Columns {
		// Even a bad rule that hashes needs the key: all errors at once.
		hashes = hashes || len(c.Columns[i].Hash) > 0
		if rl, err := parseRule(&c.Columns[i], fmt.Sprintf("columns[%d]", i), fail); err == nil {
			r.rules = append(r.rules, rl)
		}
	}
	if hashes {
		switch {
		case len(c.HashKey) == 0:
			fail("hash_key", errors.New("a column rule hashes, so a hash key is required"))
		case len(c.HashKey) < minHashKey:
			fail("hash_key", fmt.Errorf("hash key has %d bytes, at least %d are required", len(c.HashKey), minHashKey))
		default:
			r.mac = hmac.New(sha256.New, c.HashKey)
			r.sum = make([]byte, 0, sha256.Size)
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// parseOps returns the bits of names, all ops if there are none.
func parseOps(names []string, fail func(string, error)) uint8 {
	if len(names) == 0 {
		return allOps
	}
	var ops uint8
	for i, name := range names {
		op, ok := opByName[name]
		if !ok {
			fail(fmt.Sprintf("operations[%d]", i), fmt.Errorf("unknown operation %q; use %s", name, strings.Join(opNames, ", ")))
			continue
		}
		ops |= 1 << op
	}
	return ops
}

// parseSubjects parses the three templates, applying the defaults.
func (r *Route) parseSubjects(c Config, prefix string, fail func(string, error)) {
	rowSrc := c.Subject
	if rowSrc == "" {
		rowSrc = defaultSubject
	}
	row, err := parseTemplate(rowSrc, prefix, rowPlaceholders)
	if err != nil {
		fail("subject", err)
	}
	r.row = row

	msgSrc, deadSrc := c.MessageSubject, c.DeadLetterSubject
	switch {
	case row == nil:
		// The defaults depend on the subject: check only what is given.
		if msgSrc == "" && deadSrc == "" {
			return
		}
		msgSrc, deadSrc = cmp.Or(msgSrc, defaultMessageSubject), cmp.Or(deadSrc, defaultDeadLetter)
	case row.fixed:
		if msgSrc == "" {
			msgSrc = row.text
		}
		if deadSrc == "" {
			deadSrc = row.text + "." + subject.DeadLetterToken
		}
	default:
		msgSrc, deadSrc = cmp.Or(msgSrc, defaultMessageSubject), cmp.Or(deadSrc, defaultDeadLetter)
	}
	if r.msg, err = parseTemplate(msgSrc, prefix, messagePlaceholders); err != nil {
		fail("message_subject", err)
	}
	dead, err := parseTemplate(deadSrc, prefix, fixedPlaceholders)
	if err != nil {
		fail("dead_letter_subject", err)
		return
	}
	r.dead, r.deadUsesPrefix = dead.text, dead.usesPrefix
}

// checkRaw reports any of the route's subjects that the raw stream's filter
// could capture: the router would read its own events back as raw records.
func (r *Route) checkRaw(c Config, prefix string, fail func(string, error)) {
	prefixInRaw := Overlaps(prefix+".>", wire.RawFilter)
	check := func(t *template, given, field string) {
		if !Overlaps(t.pattern, wire.RawFilter) {
			return
		}
		switch {
		case t.usesPrefix && prefixInRaw:
			// One error for all the templates it spoils.
			fail("prefix", fmt.Errorf("prefix %s makes subjects that overlap the raw subjects %s", prefix, wire.RawFilter))
			return
		case given != "":
		case r.row.fixed:
			field = "subject"
		default:
			field = "prefix"
		}
		fail(field, fmt.Errorf("subjects %s overlap the raw subjects %s", t.pattern, wire.RawFilter))
	}
	check(r.row, c.Subject, "subject")
	check(r.msg, c.MessageSubject, "message_subject")
	check(&template{fixed: true, text: r.dead, pattern: r.dead, usesPrefix: r.deadUsesPrefix}, c.DeadLetterSubject, "dead_letter_subject")
	if r.tx != nil {
		check(r.tx, c.TransactionSubject, "transaction_subject")
	}
	if r.rel != nil {
		check(r.rel, c.RelationSubject, "relation_subject")
	}
	if r.group != nil {
		check(r.group, c.GroupSubject, "group_subject")
	}
}

// parseMetaSubjects parses the templates of transaction and relation
// events, for a route that publishes them.
func (r *Route) parseMetaSubjects(c Config, prefix string, fail func(string, error)) {
	fixed := r.row != nil && r.row.fixed
	parse := func(on bool, given, def string, allowed []placeholder, field, key string) *template {
		if !on {
			if given != "" {
				fail(field, fmt.Errorf("is set, but the route publishes no such events: set %s", key))
			}
			return nil
		}
		src := given
		switch {
		case src != "":
		case fixed:
			src = r.row.text
		default:
			src = def
		}
		t, err := parseTemplate(src, prefix, allowed)
		if err != nil {
			fail(field, err)
		}
		return t
	}
	r.tx = parse(c.Transactions, c.TransactionSubject, defaultTxSubject, txPlaceholders, "transaction_subject", "transactions: true")
	r.rel = parse(c.Relations, c.RelationSubject, defaultRelationSubject, relationPlaceholders, "relation_subject", "relations: true")
	r.group = parse(c.Group, c.GroupSubject, defaultGroupSubject, groupPlaceholders, "group_subject", "group: transaction")
	if c.Group && c.Transactions {
		fail("transactions", errors.New("a route that groups transactions (group: transaction) has no begin and commit events: each group says where its transaction starts and ends"))
	}
}

// Group reports whether the route publishes transaction groups.
func (r *Route) Group() bool { return r.group != nil }

// AppendGroupSubject appends the subject of a transaction group of src.
func (r *Route) AppendGroupSubject(b []byte, src *wire.Source) []byte {
	return r.group.append(b, &envelope.Event{Source: src})
}

// Transactions reports whether the route publishes transaction events.
func (r *Route) Transactions() bool { return r.tx != nil }

// Relations reports whether the route publishes relation events.
func (r *Route) Relations() bool { return r.rel != nil }

// makeSubjects lists the patterns of what the route publishes, leaving out
// the ones its ops never use and any covered by another.
func (r *Route) makeSubjects() []string {
	var all []string
	switch {
	case r.group != nil:
		// Every event travels in a group, relation events included.
		all = append(all, r.group.pattern)
	default:
		if r.ops&^(1<<wire.OpMessage) != 0 {
			all = append(all, r.row.pattern)
		}
		if r.ops&(1<<wire.OpMessage) != 0 {
			all = append(all, r.msg.pattern)
		}
		if r.noticeFixed {
			all = append(all, r.notices)
		} else {
			all = append(all, r.notices+".*")
		}
		if r.tx != nil {
			all = append(all, r.tx.pattern)
		}
		if r.rel != nil {
			all = append(all, r.rel.pattern)
		}
	}
	all = append(all, r.dead)
	var out []string
	for i, p := range all {
		covered := false
		for j, q := range all {
			// Of equal patterns, the first one stays.
			if i != j && Covers(q, p) && (p != q || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

// Selects reports whether the route takes ev: its op, and its table or its
// message prefix. ev.Rel is the event's relation (for a truncate, the one
// table of this event), nil for messages.
func (r *Route) Selects(ev *envelope.Event) bool {
	return r.selects(ev) && (ev.Kind != envelope.KindChange || r.inPartition(ev))
}

func (r *Route) selects(ev *envelope.Event) bool {
	if ev.Kind != envelope.KindChange {
		return true // the relay makes them for selected events
	}
	if wire.IsNotice(ev.Change) {
		return true
	}
	op := ev.Change.Op
	if op > wire.OpMessage || r.ops&(1<<op) == 0 {
		return false
	}
	if op == wire.OpMessage {
		if len(r.msgPrefixes) == 0 {
			return true
		}
		for i := range r.msgPrefixes {
			if r.msgPrefixes[i].match(ev.Change.Prefix) {
				return true
			}
		}
		return false
	}
	if ev.Rel == nil {
		return false
	}
	return r.table(ev.Rel).selected
}

// AppendSubject appends ev's subject to b.
func (r *Route) AppendSubject(b []byte, ev *envelope.Event) []byte {
	switch ev.Kind {
	case envelope.KindBegin, envelope.KindCommit:
		return r.tx.append(b, ev)
	case envelope.KindRelation:
		return r.rel.append(b, ev)
	}
	if ev.Change.Op == wire.OpMessage {
		if wire.IsNotice(ev.Change) {
			return r.appendNoticeSubject(b, ev.Change)
		}
		return r.msg.append(b, ev)
	}
	return r.row.append(b, ev)
}

func (r *Route) appendNoticeSubject(b []byte, c *wire.Change) []byte {
	b = append(b, r.notices...)
	if r.noticeFixed {
		return b
	}
	b = append(b, '.')
	return subject.AppendToken(b, wire.NoticeKind(c))
}

// DeadLetter is the route's dead-letter subject.
func (r *Route) DeadLetter() string { return r.dead }

// Subjects are patterns covering every subject the route can publish (rows,
// messages, dead letters), none covered by another: what an output stream
// for the route captures.
func (r *Route) Subjects() []string { return slices.Clone(r.subjects) }

// Overlaps reports whether some subject matches both patterns a and b.
func Overlaps(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		x, y := at[i], bt[i]
		// '>' takes this token and any after it, whatever the other
		// pattern has there.
		if x == ">" || y == ">" {
			return true
		}
		if x != y && x != "*" && y != "*" {
			return false
		}
	}
	return len(at) == len(bt)
}

// Covers reports whether every subject matching pattern sub also matches
// pattern p.
func Covers(p, sub string) bool {
	pt, st := strings.Split(p, "."), strings.Split(sub, ".")
	for i, t := range pt {
		if t == ">" {
			return i < len(st)
		}
		if i >= len(st) || st[i] == ">" {
			return false
		}
		if t != "*" && t != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}

// glob is a path.Match pattern in which '/' is an ordinary character: Postgres
// names and message prefixes ("outbox/orders") may hold it, and a "*" that
// stopped at it would let such a table slip past an exclude or a column rule.
type glob struct {
	pat string
	// slash is pat with '/' as NUL, which no Postgres name holds; matched
	// against the name with the same substitution.
	slash string
}

func parseGlob(p string) (glob, error) {
	if _, err := path.Match(p, ""); err != nil {
		return glob{}, fmt.Errorf("%q: bad pattern syntax", p)
	}
	return glob{pat: p, slash: strings.ReplaceAll(p, "/", "\x00")}, nil
}

func (g *glob) match(s string) bool {
	if strings.IndexByte(s, '/') < 0 {
		ok, _ := path.Match(g.pat, s)
		return ok
	}
	ok, _ := path.Match(g.slash, strings.ReplaceAll(s, "/", "\x00"))
	return ok
}

// tableGlob is a "schema.table" pattern, split at its first '.'.
type tableGlob struct {
	schema, table glob
	text          string
}

func parseTableGlob(p string) (tableGlob, error) {
	s, t, ok := strings.Cut(p, ".")
	if !ok || s == "" || t == "" {
		return tableGlob{}, fmt.Errorf("table pattern %q must be schema.table, e.g. public.users or public.*", p)
	}
	sg, err := parseGlob(s)
	if err != nil {
		return tableGlob{}, fmt.Errorf("table pattern %q: bad pattern syntax", p)
	}
	tg, err := parseGlob(t)
	if err != nil {
		return tableGlob{}, fmt.Errorf("table pattern %q: bad pattern syntax", p)
	}
	return tableGlob{schema: sg, table: tg, text: p}, nil
}

func (g *tableGlob) match(schema, table string) bool {
	return g.schema.match(schema) && g.table.match(table)
}

type tableKey struct{ schema, table string }

// tableState is what the route decided for one table: computed at its first
// event, because matching globs for every event would cost more than the
// rest of the routing.
type tableState struct {
	key      tableKey
	selected bool
	rules    []*rule // the column rules matching the table, in order
	// xfs are the transforms of the table's recent versions, the last used
	// first: several sources may have a table of the same name, and a
	// replay crosses schema changes back and forth.
	xfs []*transform
}

func (r *Route) table(rel *wire.Relation) *tableState {
	if st := r.last; st != nil && st.key.schema == rel.Schema && st.key.table == rel.Table {
		return st
	}
	k := tableKey{rel.Schema, rel.Table}
	st := r.tables[k]
	if st == nil {
		st = &tableState{key: k, selected: len(r.include) == 0}
		for i := range r.include {
			if r.include[i].match(k.schema, k.table) {
				st.selected = true
				break
			}
		}
		for i := range r.exclude {
			if st.selected && r.exclude[i].match(k.schema, k.table) {
				st.selected = false
			}
		}
		for _, rl := range r.rules {
			if rl.table.match(k.schema, k.table) {
				st.rules = append(st.rules, rl)
			}
		}
		r.tables[k] = st
	}
	r.last = st
	return st
}
