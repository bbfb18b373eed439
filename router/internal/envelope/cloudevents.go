package envelope

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pgjet/pgjet/router/internal/slab"
	"github.com/pgjet/pgjet/router/internal/subject"
	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// DefaultTypePrefix starts the type attribute of CloudEvents.
const DefaultTypePrefix = "io.pgjet"

// Default source templates: DeltaForge names the table in the source; the
// native data form has always named the source alone.
const (
	DefaultChangeSource = "/pgjet/{source}/{schema}.{table}"
	DefaultNativeSource = "/pgjet/{source}"
)

// CloudEventsConfig configures the CloudEvents envelope.
type CloudEventsConfig struct {
	// Binary selects the binary content mode: attributes in ce- headers,
	// the data as the body. Otherwise structured: the whole event as JSON in
	// the body.
	Binary bool
	// Change selects the form of DeltaForge's CloudEvents: data
	// {"before","after","op"} with Debezium's op letters, type
	// <prefix>.created|updated|deleted|truncated|message and the pgjetlsn,
	// pgjetxid and pgjetindex extensions. Otherwise data is the native
	// document and type <prefix>.<schema>.<table>.<op>, the form routers
	// configured by flags have always published.
	Change bool
	// Source is the source attribute: a URI-reference, with {source} (the
	// raw record's source name), {schema} and {table} replaced by their
	// values as path segments. Messages have no table: their source leaves
	// out the parts (between '/' or ':') holding {schema} or {table}. "" for
	// DefaultChangeSource or DefaultNativeSource.
	Source string
	// TypePrefix starts every type attribute; "" for DefaultTypePrefix.
	TypePrefix string
}

// Check reports what is wrong with c, as an *OptionError naming the
// setting.
func (c CloudEventsConfig) Check() error {
	if c.Source != "" {
		if _, err := parseSourceTemplate(c.Source); err != nil {
			return &OptionError{Key: "source", Err: fmt.Errorf("%q: %w", c.Source, err)}
		}
	}
	if c.TypePrefix != "" && !typePrefixRE.MatchString(c.TypePrefix) {
		return &OptionError{Key: "type_prefix", Err: fmt.Errorf("%q: use dot-separated words of letters, digits, '_' and '-', e.g. com.acme.cdc", c.TypePrefix)}
	}
	return nil
}

// cloudEventsSettings are the keys of a route's cloudevents envelope.
type cloudEventsSettings struct {
	Data       string `json:"data"` // change (default) or native
	Mode       string `json:"mode"` // structured (default) or binary
	Source     string `json:"source"`
	TypePrefix string `json:"type_prefix"`
}

// newCloudEvents is the registry's factory. Its data defaults to change, the
// form of the DeltaForge pipeline files routes come from; the router's flags
// ask for native explicitly, as they always published it.
func newCloudEvents(o Options) (Renderer, error) {
	if err := jsonOnly("cloudevents", o); err != nil {
		return nil, err
	}
	var s cloudEventsSettings
	if err := decodeSettings(o.Settings, &s); err != nil {
		return nil, err
	}
	cfg := CloudEventsConfig{Source: s.Source, TypePrefix: s.TypePrefix}
	switch s.Data {
	case "", "change":
		cfg.Change = true
	case "native":
	default:
		return nil, &OptionError{Key: "data", Err: fmt.Errorf("%q: use change or native", s.Data)}
	}
	switch s.Mode {
	case "", "structured":
	case "binary":
		cfg.Binary = true
	default:
		return nil, &OptionError{Key: "mode", Err: fmt.Errorf("%q: use structured or binary", s.Mode)}
	}
	return NewCloudEvents(cfg)
}

var typePrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// checkSource accepts URI-references in printable ASCII: anything else must
// be percent-encoded in a URI anyway, and it keeps the attribute the same
// in JSON and in a header.
func checkSource(s string) error {
	const use = "use a URI-reference such as /pgjet/app or https://db.example.com/app (printable ASCII, no spaces)"
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return errors.New(use)
		}
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("%s: %w", use, errors.Unwrap(err))
	}
	return nil
}

// placeholder is a value a source template names.
type placeholder uint8

const (
	literal placeholder = iota
	phSource
	phSchema
	phTable
)

var placeholders = map[string]placeholder{"{source}": phSource, "{schema}": phSchema, "{table}": phTable}

// sourceTemplate is a parsed source setting: literal text and placeholders,
// for row changes and for messages.
type sourceTemplate struct {
	table, message []tplPart
}

type tplPart struct {
	text string // the literal, or the placeholder as written
	ph   placeholder
}

// parseSourceTemplate parses and checks a source setting: both of its
// forms must make a URI-reference whatever the values (which come
// percent-encoded, so only where they go can spoil it).
func parseSourceTemplate(s string) (sourceTemplate, error) {
	var t sourceTemplate
	var err error
	if t.table, err = parseTemplate(s); err != nil {
		return t, err
	}
	msg := withoutTable(s)
	if msg == "" {
		return t, errors.New("a message's source leaves out the parts with {schema} or {table}, and nothing is left: add one without them, e.g. /pgjet/{source}/{schema}.{table}")
	}
	if t.message, err = parseTemplate(msg); err != nil {
		return t, err
	}
	for _, form := range [][]tplPart{t.table, t.message} {
		if err := checkSource(expand(nil, form, "x", "x", "x")); err != nil {
			return t, err
		}
	}
	return t, nil
}

// withoutTable returns template s without its parts between '/' or ':'
// that hold {schema} or {table}, each with the separator before it: the
// source of messages, which have no table.
func withoutTable(s string) string {
	var b strings.Builder
	for rest := s; ; {
		i := strings.IndexAny(rest[min(1, len(rest)):], "/:") + 1
		part := rest
		if i > 0 {
			part = rest[:i]
		}
		if !strings.Contains(part, "{schema}") && !strings.Contains(part, "{table}") {
			b.WriteString(part)
		}
		if i == 0 {
			break
		}
		rest = rest[i:]
	}
	out := b.String()
	if out != "" && !strings.HasPrefix(s, out[:1]) && strings.ContainsRune("/:", rune(out[0])) {
		// The first part went: the one after it does not start the template with its separator.
		out = out[1:]
	}
	return out
}

func parseTemplate(s string) ([]tplPart, error) {
	var parts []tplPart
	inScheme := schemeEnd(s)
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			parts = append(parts, tplPart{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, tplPart{text: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if s[i] == '}' || j < 0 {
			return nil, errors.New("a '{' or '}' outside {source}, {schema} or {table}: percent-encode it (%7B, %7D)")
		}
		name := s[i : i+j+1]
		ph, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder %s: use {source}, {schema} or {table}", name)
		}
		if inScheme > i {
			return nil, fmt.Errorf("%s in the URI scheme: values go after it, e.g. urn:pgjet:{source}", name)
		}
		parts = append(parts, tplPart{text: name, ph: ph})
		s = s[i+j+1:]
		inScheme -= i + j + 1
	}
	return parts, nil
}

// schemeEnd returns where the scheme of URI-reference s ends (its ':'), or
// -1 when s is relative.
func schemeEnd(s string) int {
	i := strings.IndexAny(s, ":/?#")
	if i < 0 || s[i] != ':' {
		return -1
	}
	return i
}

// expand appends the source attribute of the template for the given values.
func expand(b []byte, t []tplPart, source, schema, table string) string {
	for _, p := range t {
		switch p.ph {
		case literal:
			b = append(b, p.text...)
		case phSource:
			b = appendPathSegment(b, source)
		case phSchema:
			b = appendPathSegment(b, schema)
		case phTable:
			b = appendPathSegment(b, table)
		}
	}
	return string(b)
}

// uses reports whether t holds placeholder ph.
func uses(t []tplPart, ph placeholder) bool {
	for _, p := range t {
		if p.ph == ph {
			return true
		}
	}
	return false
}

// CloudEvents renders CloudEvents 1.0 in one of two forms. The change form
// (CloudEventsConfig.Change), as DeltaForge publishes them:
//
//	specversion      1.0
//	id               the event's id (its Nats-Msg-Id): unique per source
//	source           the source template: /pgjet/{source}/{schema}.{table}
//	type             <type prefix>.created|updated|deleted|truncated|message
//	subject          <schema>.<table>, or the message's prefix
//	time             the transaction's commit time, RFC 3339
//	datacontenttype  application/json
//	pgjetlsn         the transaction's commit LSN, X/Y
//	pgjetxid         its xid, decimal
//	pgjetindex       the change's index in it, decimal
//	data             {"before":{...},"after":{...},"op":"c"}
//
// The extensions are strings: a CloudEvents Integer is signed 32-bit, an
// xid unsigned 32-bit and an index 64-bit. The native form has no
// extensions, type <type prefix>.<schema>.<table>.<op>, source
// /pgjet/{source}, and the native document as data.
//
// Schema, table and message prefix are written as in NATS subjects
// (subject.AppendToken), so the subject is the tokens of the event's NATS
// subject, a '.' in a name cannot pass for a separator, and no control
// character reaches an attribute.
//
// Structured mode: the body is the event in the JSON event format, data
// embedded as JSON, with Content-Type application/cloudevents+json. Binary
// mode (the CloudEvents NATS protocol binding): the body is the data and
// every attribute is a ce- header, percent-encoded.
//
// It is not safe for concurrent use.
type CloudEvents struct {
	native     *Native
	binary     bool
	change     bool
	typePrefix string
	tpl        sourceTemplate

	// The source attribute of the last event rendered, as JSON and as a
	// header value, and of earlier ones; fixed when it depends on nothing.
	fixed  bool
	srcKey sourceKey
	src    *ceSource
	srcs   map[sourceKey]*ceSource

	// The commit time of the last binary header, as a header value.
	timeFor    int64
	timeHeader []string

	// The attributes of change events that their table, op and source
	// decide (the last few, and by key), and those their transaction
	// decides: rendered once for all its events.
	recent    [8]*ceConst // a few tables' events interleave
	recentPos int
	consts    map[ceKey]*ceConst
	tx        ceTx
	// The traceparent of the last binary header, as a header value.
	traceFor    string
	traceHeader []string
	// Binary mode's header values that change with every event.
	strs slab.Strings
	vals slab.Values

	scratch []byte // type, subject and extensions
}

// ceKey is what decides the source, type and subject attributes of a
// change event.
type ceKey struct {
	source, schema, table, prefix string
	op                            wire.Op
}

// ceConst are the source, type and subject attributes of the change events
// of one ceKey: as JSON, ,"source":…,"type":…,"subject":…, and as header
// values.
type ceConst struct {
	key       ceKey
	src       *ceSource
	json      []byte
	typ, subj []string
}

// ceTx are the attributes a transaction decides: as JSON,
// ,"time":"…","datacontenttype":"application/json" and in the change form
// ,"pgjetlsn":"…","pgjetxid":"…"; in binary mode the extensions as header
// values.
type ceTx struct {
	set        bool
	time       int64
	lsn        uint64
	xid        uint32
	json       []byte
	lsnH, xidH []string
}

// sourceKey is what the source attribute of an event depends on: the
// values its template uses, the others "".
type sourceKey struct {
	source, schema, table string
	message               bool
}

type ceSource struct {
	json   []byte
	header []string
	err    error
}

// maxSources bounds the source attributes kept: one per table and source
// name is few, but names are not ours to count.
const maxSources = 4096

// NewCloudEvents returns a CloudEvents renderer; cfg must pass Check.
func NewCloudEvents(cfg CloudEventsConfig) (*CloudEvents, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	c := &CloudEvents{native: NewNative(), binary: cfg.Binary, change: cfg.Change, typePrefix: cfg.TypePrefix}
	if c.typePrefix == "" {
		c.typePrefix = DefaultTypePrefix
	}
	src := cfg.Source
	if src == "" {
		src = DefaultNativeSource
		if cfg.Change {
			src = DefaultChangeSource
		}
	}
	c.tpl, _ = parseSourceTemplate(src) // checked above, defaults by the tests
	c.fixed = len(c.tpl.table) <= 1 && len(c.tpl.message) <= 1 && c.tpl.table[0].ph == literal && c.tpl.message[0].ph == literal
	if c.fixed {
		// A fixed source has no message form of its own: both are it.
		c.src = newCESource(src)
	}
	return c, nil
}

func newCESource(s string) *ceSource {
	if err := checkSource(s); err != nil {
		return &ceSource{err: fmt.Errorf("render change: source attribute %q: %w", s, err)}
	}
	return &ceSource{json: value.AppendString(nil, s), header: []string{headerValue(s)}}
}

// sourceFor returns the source attribute of e, which passed checkEvent.
func (c *CloudEvents) sourceFor(e *Event) *ceSource {
	if c.fixed {
		return c.src
	}
	t := c.tpl.table
	// A transaction's events belong to no table: the message form.
	k := sourceKey{message: e.Kind == KindBegin || e.Kind == KindCommit || e.Kind == KindChange && e.Change.Op == wire.OpMessage}
	if k.message {
		t = c.tpl.message
	}
	if uses(t, phSource) {
		k.source = e.Source.Name
	}
	if !k.message {
		if uses(t, phSchema) {
			k.schema = e.Rel.Schema
		}
		if uses(t, phTable) {
			k.table = e.Rel.Table
		}
	}
	if c.src != nil && k == c.srcKey {
		return c.src
	}
	s, ok := c.srcs[k]
	if !ok {
		if c.srcs == nil || len(c.srcs) >= maxSources {
			c.srcs = make(map[sourceKey]*ceSource)
		}
		s = newCESource(expand(c.scratch[:0], t, k.source, k.schema, k.table))
		c.srcs[k] = s
	}
	c.srcKey, c.src = k, s
	return s
}

// Header values shared by every message: nothing writes into a header's
// values after it is built, so one slice can serve them all.
var (
	specVersionHeader = []string{"1.0"}
	jsonHeader        = []string{"application/json"}
	structuredHeader  = []string{"application/cloudevents+json"}
)

// Append appends the body of e's message to b. On error b is returned
// unchanged and the error says why; the caller dead-letters the change.
func (c *CloudEvents) Append(b []byte, e *Event) ([]byte, error) {
	check := checkEvent
	if e.Kind != KindChange {
		check = checkMeta
	}
	if err := check(e); err != nil {
		return b, err
	}
	var src *ceSource
	if e.Kind == KindChange {
		src = c.constFor(e).src
	} else {
		src = c.sourceFor(e)
	}
	if src.err != nil {
		return b, src.err
	}
	start := len(b)
	if !c.binary {
		b = c.appendAttributes(b, e, src)
	}
	b, err := c.appendData(b, e)
	if err != nil {
		return b[:start], err
	}
	if !c.binary {
		b = append(b, '}')
	}
	return b, nil
}

// appendData appends the data of e, which passed checkEvent.
func (c *CloudEvents) appendData(b []byte, e *Event) ([]byte, error) {
	if e.Kind != KindChange {
		// Transaction and relation events carry the native document in
		// both forms: neither DeltaForge nor Debezium has a shape for them.
		return c.native.appendMeta(b, e)
	}
	if !c.change {
		return c.native.Append(b, e)
	}
	return c.native.appendChange(b, e)
}

// AddHeader adds the headers of the message of e, which Append rendered
// without error, to h.
func (c *CloudEvents) AddHeader(h Header, e *Event) int {
	if !c.binary {
		return h.put("Content-Type", structuredHeader)
	}
	if e.Kind == KindChange {
		return c.addChangeHeader(h, e)
	}
	a := c.attributes(e)
	fields := a.spans()
	spans := fields[:]
	if !c.change {
		spans = spans[:2]
	}
	// One allocation for the values that change with every event, and one
	// string for the others when none needs escaping.
	v := make([]string, 1+len(spans))
	v[0] = headerValue(e.ID)
	if all := headerValue(c.scratch); len(all) == len(c.scratch) {
		for i, s := range spans {
			v[i+1] = all[s.from:s.to]
		}
	} else {
		for i, s := range spans {
			v[i+1] = headerValue(s.of(c.scratch))
		}
	}
	n := h.put("ce-specversion", specVersionHeader)
	n += h.put("ce-id", v[0:1:1])
	n += h.put("ce-source", c.sourceFor(e).header)
	n += h.put("ce-type", v[1:2:2])
	n += h.put("ce-subject", v[2:3:3])
	n += h.put("ce-time", c.timeHeaderOf(e.Tx.CommitTime))
	n += h.put("ce-datacontenttype", jsonHeader)
	if c.change {
		n += h.put("ce-pgjetlsn", v[3:4:4])
		n += h.put("ce-pgjetxid", v[4:5:5])
		if a.index.to > a.index.from {
			n += h.put("ce-pgjetindex", v[5:6:6])
		}
	}
	if e.TraceParent != "" {
		n += h.put("ce-traceparent", c.traceHeaderOf(e.TraceParent))
	}
	return n + h.put("Content-Type", jsonHeader)
}

// addChangeHeader is AddHeader in binary mode for a change event: the
// attributes its table, op and transaction decide are made once for all
// their events, the id and index carved from slabs.
func (c *CloudEvents) addChangeHeader(h Header, e *Event) int {
	a := c.constFor(e)
	n := h.put("ce-specversion", specVersionHeader)
	n += h.put("ce-id", c.vals.Of(headerValue(e.ID)))
	n += h.put("ce-source", a.src.header)
	n += h.put("ce-type", a.typ)
	n += h.put("ce-subject", a.subj)
	n += h.put("ce-time", c.timeHeaderOf(e.Tx.CommitTime))
	n += h.put("ce-datacontenttype", jsonHeader)
	if c.change {
		t := c.txFor(e.Tx)
		n += h.put("ce-pgjetlsn", t.lsnH)
		n += h.put("ce-pgjetxid", t.xidH)
		c.scratch = strconv.AppendUint(c.scratch[:0], e.Index, 10)
		n += h.put("ce-pgjetindex", c.vals.Of(c.strs.Of(c.scratch)))
	}
	if e.TraceParent != "" {
		n += h.put("ce-traceparent", c.traceHeaderOf(e.TraceParent))
	}
	return n + h.put("Content-Type", jsonHeader)
}

// constFor returns the attributes e's table, op and source decide, e a
// change event that passed checkEvent.
func (c *CloudEvents) constFor(e *Event) *ceConst {
	k := ceKey{source: e.Source.Name, op: e.Change.Op}
	if k.op == wire.OpMessage {
		k.prefix = e.Change.Prefix
	} else {
		k.schema, k.table = e.Rel.Schema, e.Rel.Table
	}
	for _, a := range &c.recent {
		if a != nil && a.key == k {
			return a
		}
	}
	a, ok := c.consts[k]
	if !ok {
		if c.consts == nil || len(c.consts) >= maxSources {
			c.consts = make(map[ceKey]*ceConst)
		}
		// Copies: a raw record's strings point into it, which the map
		// would keep from the garbage collector.
		k = ceKey{source: strings.Clone(k.source), schema: strings.Clone(k.schema), table: strings.Clone(k.table), prefix: strings.Clone(k.prefix), op: k.op}
		a = &ceConst{key: k, src: c.sourceFor(e)}
		if a.src.err == nil {
			at := c.attributes(e)
			typ, subj := at.typ.of(c.scratch), at.subj.of(c.scratch)
			j := append(a.json, `,"source":`...)
			j = append(j, a.src.json...)
			j = append(j, `,"type":`...)
			j = value.AppendString(j, typ)
			j = append(j, `,"subject":`...)
			a.json = value.AppendString(j, subj)
			a.typ, a.subj = []string{headerValue(typ)}, []string{headerValue(subj)}
		}
		c.consts[k] = a
	}
	c.recent[c.recentPos] = a
	c.recentPos = (c.recentPos + 1) % len(c.recent)
	return a
}

// txFor returns the attributes transaction t decides.
func (c *CloudEvents) txFor(t *wire.Tx) *ceTx {
	x := &c.tx
	if x.set && x.time == t.CommitTime && x.lsn == t.CommitLSN && x.xid == t.Xid {
		return x
	}
	x.set, x.time, x.lsn, x.xid = true, t.CommitTime, t.CommitLSN, t.Xid
	j := append(x.json[:0], `,"time":"`...)
	j = append(j, c.native.commitTime(t.CommitTime)...)
	j = append(j, `","datacontenttype":"application/json"`...)
	if c.change {
		// Neither LSN nor decimals need escaping.
		j = append(j, `,"pgjetlsn":"`...)
		at := len(j)
		j = wire.LSN(t.CommitLSN).Append(j)
		lsn := string(j[at:])
		j = append(j, `","pgjetxid":"`...)
		at = len(j)
		j = strconv.AppendUint(j, uint64(t.Xid), 10)
		xid := string(j[at:])
		j = append(j, '"')
		if c.binary {
			// Slices of their own: messages of earlier transactions hold theirs.
			x.lsnH, x.xidH = []string{lsn}, []string{xid}
		}
	}
	x.json = j
	return x
}

// traceHeaderOf returns traceparent tp as a header value: the events of
// one raw record share it.
func (c *CloudEvents) traceHeaderOf(tp string) []string {
	if c.traceHeader == nil || c.traceFor != tp {
		c.traceFor, c.traceHeader = tp, []string{tp}
	}
	return c.traceHeader
}

// Document appends e as one JSON document for printing, given body, its
// rendered message body: in binary mode the attributes come from the
// headers, so they are put back around the data.
func (c *CloudEvents) Document(b []byte, e *Event, body []byte) []byte {
	if !c.binary {
		return append(b, body...)
	}
	b = c.appendAttributes(b, e, c.sourceFor(e))
	b = append(b, body...)
	return append(b, '}')
}

// appendAttributes appends the event's JSON object up to the value of data.
func (c *CloudEvents) appendAttributes(b []byte, e *Event, src *ceSource) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = value.AppendString(b, e.ID)
	if e.Kind == KindChange {
		b = append(b, c.constFor(e).json...)
		b = append(b, c.txFor(e.Tx).json...)
		if c.change {
			b = append(b, `,"pgjetindex":"`...)
			b = strconv.AppendUint(b, e.Index, 10)
			b = append(b, '"')
		}
		return c.appendTrace(b, e)
	}
	b = append(b, `,"source":`...)
	b = append(b, src.json...)
	a := c.attributes(e)
	b = append(b, `,"type":`...)
	b = value.AppendString(b, a.typ.of(c.scratch))
	b = append(b, `,"subject":`...)
	b = value.AppendString(b, a.subj.of(c.scratch))
	b = append(b, `,"time":"`...)
	b = append(b, c.native.commitTime(e.Tx.CommitTime)...)
	b = append(b, `","datacontenttype":"application/json"`...)
	if c.change {
		// Neither LSN nor decimals need escaping.
		b = append(b, `,"pgjetlsn":"`...)
		b = append(b, a.lsn.of(c.scratch)...)
		b = append(b, `","pgjetxid":"`...)
		b = append(b, a.xid.of(c.scratch)...)
		b = append(b, '"')
		if a.index.to > a.index.from {
			b = append(b, `,"pgjetindex":"`...)
			b = append(b, a.index.of(c.scratch)...)
			b = append(b, '"')
		}
	}
	return c.appendTrace(b, e)
}

// appendTrace ends the attributes of appendAttributes: the traceparent, if
// there is one, and data's key.
func (c *CloudEvents) appendTrace(b []byte, e *Event) []byte {
	if e.TraceParent != "" {
		// The distributed tracing extension; a traceparent needs no escaping.
		b = append(b, `,"traceparent":"`...)
		b = append(b, e.TraceParent...)
		b = append(b, '"')
	}
	return append(b, `,"data":`...)
}

// span is where an attribute is in c.scratch.
type span struct{ from, to int }

func (s span) of(b []byte) []byte { return b[s.from:s.to] }

// ceAttrs are where the attributes that change with every event are in
// c.scratch.
type ceAttrs struct{ typ, subj, lsn, xid, index span }

func (a *ceAttrs) spans() [5]span { return [5]span{a.typ, a.subj, a.lsn, a.xid, a.index} }

// changeTypes are the last word of the change form's type, by op.
var changeTypes = [...]string{
	wire.OpInsert:   ".created",
	wire.OpUpdate:   ".updated",
	wire.OpDelete:   ".deleted",
	wire.OpTruncate: ".truncated",
	wire.OpMessage:  ".message",
	wire.OpRead:     ".read",
}

// attributes writes the type and subject attributes of e, and in the
// change form its extensions, to c.scratch and says where each is.
func (c *CloudEvents) attributes(e *Event) (a ceAttrs) {
	b := append(c.scratch[:0], c.typePrefix...)
	if e.Kind != KindChange {
		return c.metaAttributes(b, e)
	}
	msg := e.Change.Op == wire.OpMessage
	switch {
	case c.change:
		b = append(b, changeTypes[e.Change.Op]...)
		a.typ = span{0, len(b)}
		b = c.appendSubject(b, e, &a.subj)
	case msg:
		b = append(b, ".message"...)
		a.typ = span{0, len(b)}
		b = c.appendSubject(b, e, &a.subj)
	default:
		// The subject is inside the type: <prefix>.<subject>.<op>.
		b = append(b, '.')
		b = c.appendSubject(b, e, &a.subj)
		b = append(b, '.')
		b = append(b, e.Change.Op.String()...)
		a.typ = span{0, len(b)}
	}
	if c.change {
		a.lsn.from = len(b)
		b = wire.LSN(e.Tx.CommitLSN).Append(b)
		a.lsn.to, a.xid.from = len(b), len(b)
		b = strconv.AppendUint(b, uint64(e.Tx.Xid), 10)
		a.xid.to, a.index.from = len(b), len(b)
		b = strconv.AppendUint(b, e.Index, 10)
		a.index.to = len(b)
	}
	c.scratch = b
	return a
}

// metaAttributes is attributes for a transaction's begin and commit events,
// of type <prefix>.transaction.begin|commit whose subject is the commit
// LSN, and relation events, of type <prefix>.relation whose subject is the
// table. In both forms, as their data is the native document.
func (c *CloudEvents) metaAttributes(b []byte, e *Event) (a ceAttrs) {
	switch e.Kind {
	case KindBegin:
		b = append(b, ".transaction.begin"...)
	case KindCommit:
		b = append(b, ".transaction.commit"...)
	default:
		b = append(b, ".relation"...)
	}
	a.typ = span{0, len(b)}
	a.subj.from = len(b)
	if e.Kind == KindRelation {
		b = appendToken(b, e.Rel.Schema)
		b = append(b, '.')
		b = appendToken(b, e.Rel.Table)
	} else {
		b = wire.LSN(e.Tx.CommitLSN).Append(b)
	}
	a.subj.to = len(b)
	if c.change {
		a.lsn.from = len(b)
		b = wire.LSN(e.Tx.CommitLSN).Append(b)
		a.lsn.to, a.xid.from = len(b), len(b)
		b = strconv.AppendUint(b, uint64(e.Tx.Xid), 10)
		a.xid.to, a.index.from = len(b), len(b)
		if e.Kind == KindRelation {
			// The index of the change it precedes.
			b = strconv.AppendUint(b, e.Index, 10)
		}
		a.index.to = len(b)
	}
	c.scratch = b
	return a
}

// appendSubject appends the subject attribute of e and sets s to where it is.
func (c *CloudEvents) appendSubject(b []byte, e *Event, s *span) []byte {
	s.from = len(b)
	if e.Change.Op == wire.OpMessage {
		b = appendToken(b, e.Change.Prefix)
	} else {
		b = appendToken(b, e.Rel.Schema)
		b = append(b, '.')
		b = appendToken(b, e.Rel.Table)
	}
	s.to = len(b)
	return b
}

// changeOps are Debezium's op letters, as JSON strings, by op.
var changeOps = [...]string{
	wire.OpInsert:   `"c"`,
	wire.OpUpdate:   `"u"`,
	wire.OpDelete:   `"d"`,
	wire.OpTruncate: `"t"`,
	wire.OpMessage:  `"m"`,
	wire.OpRead:     `"r"`,
}

// appendChange appends the data of the change form for e, which passed
// checkEvent: {"before":…,"after":…,"op":"c"}, values as in the native
// document, which also lends its "unchanged" list of unchanged TOAST
// columns and a truncate's "options" when there are any: without them an
// after that lacks a column would pass for one without it. A message is
// {"op":"m","prefix":…,"content":…,"transactional":…}. On error b comes
// back with what was appended.
func (n *Native) appendChange(b []byte, e *Event) ([]byte, error) {
	c := e.Change
	switch c.Op {
	case wire.OpMessage:
		b = append(b, `{"op":"m"`...)
		return appendMessage(b, c), nil
	case wire.OpTruncate:
		b = append(b, `{"before":null,"after":null,"op":"t"`...)
		return append(appendTruncateOptions(b, c), '}'), nil
	}
	rel := e.Rel
	_, before, after, beforeKeysOnly, err := rowImages(c, rel)
	if err != nil {
		return b, err
	}
	n.resetUnchanged(len(rel.Columns))
	b = append(b, `{"before":`...)
	if b, err = n.appendTuple(b, rel, before, beforeKeysOnly); err != nil {
		return b, err
	}
	b = append(b, `,"after":`...)
	if b, err = n.appendTuple(b, rel, after, false); err != nil {
		return b, err
	}
	b = append(b, `,"op":`...)
	b = append(b, changeOps[c.Op]...)
	return append(n.appendUnchanged(b, rel), '}'), nil
}

// appendToken appends s as subject.AppendToken does, and escapes Unicode
// noncharacters as well: CloudEvents strings must not hold them.
func appendToken(b []byte, s string) []byte {
	start := 0
	for i, r := range s {
		if !noncharacter(r) {
			continue
		}
		if start < i {
			b = subject.AppendToken(b, s[start:i])
		}
		n := utf8.RuneLen(r)
		for j := i; j < i+n; j++ {
			b = append(b, '%', upperHex[s[j]>>4], upperHex[s[j]&0xf])
		}
		start = i + n
	}
	if start == 0 {
		return subject.AppendToken(b, s)
	}
	if start < len(s) {
		b = subject.AppendToken(b, s[start:])
	}
	return b
}

func noncharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE && r <= utf8.MaxRune
}

const upperHex = "0123456789ABCDEF"

// appendPathSegment percent-encodes every byte of s but letters, digits,
// '-', '_' and '~', so that any name makes one path segment: '.' too,
// which keeps schema "a.b" apart from table "b.c" in {schema}.{table}, and
// a name of "." or ".." from being a dot segment.
func appendPathSegment(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '~' {
			b = append(b, ch)
			continue
		}
		b = append(b, '%', upperHex[ch>>4], upperHex[ch&0xf])
	}
	return b
}

func (c *CloudEvents) timeHeaderOf(t int64) []string {
	if c.timeHeader == nil || c.timeFor != t {
		c.timeFor = t
		c.timeHeader = []string{string(c.native.commitTime(t))}
	}
	return c.timeHeader
}

// headerValue percent-encodes s for a NATS header as the CloudEvents NATS
// binding asks: space, '"', '%' and every byte outside printable ASCII.
func headerValue[S ~string | ~[]byte](s S) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if headerEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return string(s)
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if ch := s[i]; headerEscape(ch) {
			b = append(b, '%', upperHex[ch>>4], upperHex[ch&0xf])
		} else {
			b = append(b, ch)
		}
	}
	return string(b)
}

func headerEscape(ch byte) bool {
	return ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '%'
}

// Batch says that structured CloudEvents travel in groups as the JSON
// batch format (an array of events); binary mode has no batch.
func (c *CloudEvents) Batch() (contentType string, ok bool) {
	return "application/cloudevents-batch+json", !c.binary
}
