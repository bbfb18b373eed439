package envelope

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/router/internal/subject"
	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// DefaultTypePrefix starts the type attribute of CloudEvents.
const DefaultTypePrefix = "io.pgjet"

// CloudEventsConfig configures the CloudEvents envelope.
type CloudEventsConfig struct {
	// Binary selects the binary content mode: attributes in ce- headers,
	// the native document as the body. Otherwise structured: the whole
	// event as JSON in the body.
	Binary bool
	// Source is the source attribute of every event; "" derives it from the
	// raw record's source name: /pgjet/<name>.
	Source string
	// TypePrefix starts every type attribute; "" for DefaultTypePrefix.
	TypePrefix string
}

// Check reports what is wrong with c, as an *OptionError naming the
// setting.
func (c CloudEventsConfig) Check() error {
	if c.Source != "" {
		if err := checkSource(c.Source); err != nil {
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
	Mode       string `json:"mode"` // structured (default) or binary
	Source     string `json:"source"`
	TypePrefix string `json:"type_prefix"`
}

// newCloudEvents is the registry's factory.
func newCloudEvents(o Options) (Renderer, error) {
	if err := jsonOnly("cloudevents", o); err != nil {
		return nil, err
	}
	var s cloudEventsSettings
	if err := decodeSettings(o.Settings, &s); err != nil {
		return nil, err
	}
	cfg := CloudEventsConfig{Source: s.Source, TypePrefix: s.TypePrefix}
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

// CloudEvents renders CloudEvents 1.0 whose data is the native document:
//
//	specversion      1.0
//	id               the event's id (its Nats-Msg-Id): unique per source
//	source           CloudEventsConfig.Source, or /pgjet/<source name>
//	type             <type prefix>.<schema>.<table>.<op>, or <type prefix>.message
//	subject          <schema>.<table>, or the message's prefix
//	time             the transaction's commit time, RFC 3339
//	datacontenttype  application/json
//
// Schema, table and message prefix are written as in NATS subjects
// (subject.AppendToken), so type and subject end with the tokens of the
// event's NATS subject, a '.' in a name cannot pass for a separator, and no
// control character reaches an attribute.
//
// Structured mode: the body is the event in the JSON event format, data
// embedded as JSON, with Content-Type application/cloudevents+json. Binary
// mode (the CloudEvents NATS protocol binding): the body is the native
// document and every attribute is a ce- header, percent-encoded.
//
// It is not safe for concurrent use.
type CloudEvents struct {
	native     *Native
	binary     bool
	typePrefix string
	fixed      bool // the source attribute does not depend on the event

	// The source attribute of the last source name rendered (or the fixed
	// one), as JSON and as a header value.
	srcName   string
	srcJSON   []byte
	srcHeader []string

	// The commit time of the last binary header, as a header value.
	timeFor    int64
	timeHeader []string

	scratch []byte // type and subject
}

// NewCloudEvents returns a CloudEvents renderer; cfg must pass Check.
func NewCloudEvents(cfg CloudEventsConfig) (*CloudEvents, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	c := &CloudEvents{native: NewNative(), binary: cfg.Binary, typePrefix: cfg.TypePrefix}
	if c.typePrefix == "" {
		c.typePrefix = DefaultTypePrefix
	}
	if cfg.Source != "" {
		c.fixed = true
		c.setSource(cfg.Source)
	}
	return c, nil
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
	if c.binary {
		return c.native.Append(b, e)
	}
	if err := checkEvent(e); err != nil {
		return b, err
	}
	start := len(b)
	b = c.appendAttributes(b, e)
	b, err := c.native.Append(b, e)
	if err != nil {
		return b[:start], err
	}
	return append(b, '}'), nil
}

// Header returns a header for the message of e, which Append rendered
// without error, with room for the two headers the caller adds
// (Nats-Msg-Id, Nats-Expected-Stream).
func (c *CloudEvents) Header(e *Event) nats.Header {
	if !c.binary {
		h := make(nats.Header, 3)
		h["Content-Type"] = structuredHeader
		return h
	}
	typ, subj := c.typeAndSubject(e)
	// One allocation for the values that change with every event, and one
	// string for type and subject when neither needs escaping.
	v := make([]string, 3)
	v[0] = headerValue(e.ID)
	if all := headerValue(c.scratch); len(all) == len(c.scratch) {
		v[1], v[2] = all[typ.from:typ.to], all[subj.from:subj.to]
	} else {
		v[1], v[2] = headerValue(typ.of(c.scratch)), headerValue(subj.of(c.scratch))
	}
	h := make(nats.Header, 10)
	h["ce-specversion"] = specVersionHeader
	h["ce-id"] = v[0:1:1]
	c.sourceFor(e.Source.Name)
	h["ce-source"] = c.srcHeader
	h["ce-type"] = v[1:2:2]
	h["ce-subject"] = v[2:3:3]
	h["ce-time"] = c.timeHeaderOf(e.Tx.CommitTime)
	h["ce-datacontenttype"] = jsonHeader
	h["Content-Type"] = jsonHeader
	return h
}

// Document appends e as one JSON document for printing, given body, its
// rendered message body: in binary mode the attributes come from the
// headers, so they are put back around the data.
func (c *CloudEvents) Document(b []byte, e *Event, body []byte) []byte {
	if !c.binary {
		return append(b, body...)
	}
	b = c.appendAttributes(b, e)
	b = append(b, body...)
	return append(b, '}')
}

// appendAttributes appends the event's JSON object up to the value of data.
func (c *CloudEvents) appendAttributes(b []byte, e *Event) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = value.AppendString(b, e.ID)
	b = append(b, `,"source":`...)
	c.sourceFor(e.Source.Name)
	b = append(b, c.srcJSON...)
	typ, subj := c.typeAndSubject(e)
	b = append(b, `,"type":`...)
	b = value.AppendString(b, typ.of(c.scratch))
	b = append(b, `,"subject":`...)
	b = value.AppendString(b, subj.of(c.scratch))
	b = append(b, `,"time":"`...)
	b = append(b, c.native.commitTime(e.Tx.CommitTime)...)
	return append(b, `","datacontenttype":"application/json","data":`...)
}

// span is where an attribute is in c.scratch.
type span struct{ from, to int }

func (s span) of(b []byte) []byte { return b[s.from:s.to] }

// typeAndSubject writes the type and subject attributes of e to c.scratch
// and says where each is.
func (c *CloudEvents) typeAndSubject(e *Event) (typ, subj span) {
	b := append(c.scratch[:0], c.typePrefix...)
	if e.Change.Op == wire.OpMessage {
		b = append(b, ".message"...)
		n := len(b)
		b = appendToken(b, e.Change.Prefix)
		c.scratch = b
		return span{0, n}, span{n, len(b)}
	}
	b = append(b, '.')
	from := len(b)
	b = appendToken(b, e.Rel.Schema)
	b = append(b, '.')
	b = appendToken(b, e.Rel.Table)
	to := len(b)
	b = append(b, '.')
	b = append(b, e.Change.Op.String()...)
	c.scratch = b
	return span{0, len(b)}, span{from, to}
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

// sourceFor sets the source attribute for a source named name.
func (c *CloudEvents) sourceFor(name string) {
	if !c.fixed && (c.srcJSON == nil || c.srcName != name) {
		c.srcName = name
		c.setSource("/pgjet/" + pathSegment(name))
	}
}

func (c *CloudEvents) setSource(s string) {
	c.srcJSON = value.AppendString(c.srcJSON[:0], s)
	c.srcHeader = []string{headerValue(s)}
}

// pathSegment percent-encodes every byte of s but RFC 3986's unreserved
// characters, so that any source name makes one path segment.
func pathSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[ch>>4])
		b.WriteByte(upperHex[ch&0xf])
	}
	return b.String()
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
