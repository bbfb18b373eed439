package route

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/subject"
)

// placeholder is what a part of a template stands for; 0 is literal text.
type placeholder uint8

const (
	literal placeholder = iota
	phPrefix
	phSource
	phSchema
	phTable
	phOp
	phMessagePrefix
	phEvent
)

var placeholderNames = [...]string{
	phPrefix:        "prefix",
	phSource:        "source",
	phSchema:        "schema",
	phTable:         "table",
	phOp:            "op",
	phMessagePrefix: "message_prefix",
	phEvent:         "event",
}

func (p placeholder) String() string { return "{" + placeholderNames[p] + "}" }

// The placeholders each kind of template has values for, in the order error
// messages list them.
var (
	rowPlaceholders      = []placeholder{phPrefix, phSource, phSchema, phTable, phOp}
	messagePlaceholders  = []placeholder{phPrefix, phSource, phMessagePrefix}
	fixedPlaceholders    = []placeholder{phPrefix}
	txPlaceholders       = []placeholder{phPrefix, phSource, phEvent}
	relationPlaceholders = []placeholder{phPrefix, phSource, phSchema, phTable}
	groupPlaceholders    = []placeholder{phPrefix, phSource}
)

// part is literal text or a placeholder. {prefix} is substituted when the
// template is parsed, so it never appears in a part.
type part struct {
	ph  placeholder
	lit string
}

// template is a parsed subject template.
type template struct {
	parts []part
	// fixed: no placeholder varies per event, and text is the subject.
	fixed bool
	text  string
	// pattern is the NATS pattern covering every subject the template
	// yields: tokens holding a per-event value become '*'.
	pattern    string
	usesPrefix bool
}

// parseTemplate parses s, which may use the placeholders in allowed;
// prefix is the value of {prefix}, already validated.
func parseTemplate(s, prefix string, allowed []placeholder) (*template, error) {
	if s == "" {
		return nil, errors.New("empty subject")
	}
	t := &template{}
	var lit strings.Builder // pending literal text, merged across tokens
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i, tok := range strings.Split(s, ".") {
		if tok == "" {
			return nil, fmt.Errorf("subject %q has an empty token", s)
		}
		if i > 0 {
			lit.WriteByte('.')
		}
		for j := 0; j < len(tok); {
			switch c := tok[j]; c {
			case '{':
				end := strings.IndexAny(tok[j+1:], "{}")
				if end < 0 || tok[j+1+end] == '{' {
					return nil, fmt.Errorf("subject %q has an unbalanced '{'", s)
				}
				name := tok[j+1 : j+1+end]
				ph, err := lookupPlaceholder(name, allowed)
				if err != nil {
					return nil, fmt.Errorf("subject %q: %w", s, err)
				}
				if i == 0 && j == 0 && (ph == phSchema || ph == phTable || ph == phMessagePrefix) {
					// Names come from the database: one starting with '$'
					// would publish into the subjects NATS reserves.
					return nil, fmt.Errorf("subject %q must not start with %s: put a literal token first", s, ph)
				}
				if ph == phPrefix {
					t.usesPrefix = true
					lit.WriteString(prefix)
				} else {
					flush()
					t.parts = append(t.parts, part{ph: ph})
				}
				j += end + 2
			case '}':
				return nil, fmt.Errorf("subject %q has an unbalanced '}'", s)
			case '*', '>':
				return nil, fmt.Errorf("subject %q: wildcards are not allowed", s)
			default:
				r, n := utf8.DecodeRuneInString(tok[j:])
				if r == utf8.RuneError && n == 1 {
					return nil, fmt.Errorf("subject %q is not valid UTF-8", s)
				}
				if unicode.IsSpace(r) || unicode.IsControl(r) {
					return nil, fmt.Errorf("subject %q: whitespace and control characters are not allowed", s)
				}
				if i == 0 && j == 0 && c == '$' {
					return nil, fmt.Errorf("subject %q: subjects starting with $ are reserved by NATS", s)
				}
				lit.WriteString(tok[j : j+n])
				j += n
			}
		}
	}
	flush()
	if len(t.parts) == 1 && t.parts[0].ph == literal {
		t.fixed, t.text = true, t.parts[0].lit
	}
	t.pattern = t.makePattern()
	return t, nil
}

func lookupPlaceholder(name string, allowed []placeholder) (placeholder, error) {
	known := false
	for ph := phPrefix; int(ph) < len(placeholderNames); ph++ {
		if placeholderNames[ph] != name {
			continue
		}
		known = true
		for _, a := range allowed {
			if a == ph {
				return ph, nil
			}
		}
	}
	valid := make([]string, len(allowed))
	for i, a := range allowed {
		valid[i] = a.String()
	}
	if known {
		return 0, fmt.Errorf("{%s} has no value here; use %s", name, strings.Join(valid, ", "))
	}
	return 0, fmt.Errorf("unknown placeholder {%s}; use %s", name, strings.Join(valid, ", "))
}

// makePattern renders t with a marker for every per-event value, then turns
// each token holding a marker into '*'. Going through the rendered text
// handles a prefix of several tokens inside a token of the template.
func (t *template) makePattern() string {
	if t.fixed {
		return t.text
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph == literal {
			b.WriteString(p.lit)
		} else {
			b.WriteByte(0) // cannot be in literal text
		}
	}
	toks := strings.Split(b.String(), ".")
	for i, tok := range toks {
		if strings.IndexByte(tok, 0) >= 0 {
			toks[i] = "*"
		}
	}
	return strings.Join(toks, ".")
}

// append appends ev's subject. Every value from the database or the source
// is escaped as (part of) one token.
func (t *template) append(b []byte, ev *envelope.Event) []byte {
	if t.fixed {
		return append(b, t.text...)
	}
	for i := range t.parts {
		switch p := &t.parts[i]; p.ph {
		case literal:
			b = append(b, p.lit...)
		case phSource:
			b = subject.AppendToken(b, ev.Source.Name)
		case phSchema:
			b = subject.AppendToken(b, ev.Rel.Schema)
		case phTable:
			b = subject.AppendToken(b, ev.Rel.Table)
		case phOp:
			b = append(b, ev.Change.Op.String()...)
		case phMessagePrefix:
			b = subject.AppendToken(b, ev.Change.Prefix)
		case phEvent:
			if ev.Kind == envelope.KindBegin {
				b = append(b, "begin"...)
			} else {
				b = append(b, "commit"...)
			}
		}
	}
	return b
}
