// Package jsoncmp compares JSON documents by meaning, exactly: it is the
// oracle that checks pgjet's output against what Postgres renders (to_jsonb),
// so it must never call two different values equal.
//
// Numbers compare by exact decimal value (1.50 equals 1.5, 1e2 equals 100,
// nothing is rounded through float64). Strings compare byte for byte, except
// that two strings that both read as timestamps compare as instants:
// "2024-01-02T03:04:05Z" equals "2024-01-02 03:04:05+00:00", and
// "2024-01-02T03:04:05.5" equals "2024-01-02 03:04:05.500000". A timestamp with
// a zone never equals one without. Object member order does not matter, but
// duplicate keys are a difference (consumers disagree on which one wins).
// Types never coerce: the string "1" is not the number 1.
package jsoncmp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxDiffs bounds the report: past a few differences the rest is noise.
const maxDiffs = 20

// Equal reports whether want and got are the same JSON value under the rules
// above. When they are not, the string lists the differences, one per line,
// each with the path where it occurs ("$.after.name: want "a", got "b"").
func Equal(want, got []byte) (bool, string) {
	w, err := parse(want)
	if err != nil {
		return false, "invalid want: " + err.Error()
	}
	g, err := parse(got)
	if err != nil {
		return false, "invalid got: " + err.Error()
	}
	var c comparer
	c.compare("$", w, g)
	if len(c.diffs) == 0 {
		return true, ""
	}
	if c.more > 0 {
		c.diffs = append(c.diffs, fmt.Sprintf("... and %d more differences", c.more))
	}
	return false, strings.Join(c.diffs, "\n")
}

// node is a parsed JSON value. Numbers keep their literal text.
type node struct {
	kind  kind
	text  string // string value, or number literal
	keys  []string
	elems []*node // array elements, or object values in the order of keys
}

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

func parse(doc []byte) (*node, error) {
	// encoding/json silently turns invalid UTF-8 into U+FFFD: that would hide
	// a broken encoder.
	if !utf8.Valid(doc) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	n, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return n, nil
}

func parseValue(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: kNull}, nil
	case bool:
		n := &node{kind: kBool, text: "false"}
		if t {
			n.text = "true"
		}
		return n, nil
	case json.Number:
		return &node{kind: kNumber, text: string(t)}, nil
	case string:
		return &node{kind: kString, text: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := &node{kind: kArray}
			for dec.More() {
				e, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, e)
			}
			_, err := dec.Token() // ']'
			return n, err
		case '{':
			n := &node{kind: kObject}
			seen := make(map[string]bool)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("duplicate object key %q", k)
				}
				seen[k] = true
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.elems = append(n.elems, v)
			}
			_, err := dec.Token() // '}'
			return n, err
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

type comparer struct {
	diffs []string
	more  int
}

func (c *comparer) add(path, format string, args ...any) {
	if len(c.diffs) == maxDiffs {
		c.more++
		return
	}
	c.diffs = append(c.diffs, path+": "+fmt.Sprintf(format, args...))
}

func (c *comparer) compare(path string, w, g *node) {
	if w.kind != g.kind {
		c.add(path, "want %s %s, got %s %s", w.kind, short(w), g.kind, short(g))
		return
	}
	switch w.kind {
	case kNull:
	case kBool:
		if w.text != g.text {
			c.add(path, "want %s, got %s", w.text, g.text)
		}
	case kNumber:
		if !numbersEqual(w.text, g.text) {
			c.add(path, "want %s, got %s", w.text, g.text)
		}
	case kString:
		if w.text != g.text && !sameInstant(w.text, g.text) {
			c.add(path, "want %s, got %s", strconv.Quote(w.text), strconv.Quote(g.text))
		}
	case kArray:
		if len(w.elems) != len(g.elems) {
			c.add(path, "want %d elements, got %d: want %s, got %s", len(w.elems), len(g.elems), short(w), short(g))
			return
		}
		for i := range w.elems {
			c.compare(fmt.Sprintf("%s[%d]", path, i), w.elems[i], g.elems[i])
		}
	case kObject:
		gi := make(map[string]int, len(g.keys))
		for i, k := range g.keys {
			gi[k] = i
		}
		for i, k := range w.keys {
			j, ok := gi[k]
			if !ok {
				c.add(memberPath(path, k), "missing (want %s)", short(w.elems[i]))
				continue
			}
			delete(gi, k)
			c.compare(memberPath(path, k), w.elems[i], g.elems[j])
		}
		for i, k := range g.keys { // in got's order, for a stable report
			if _, extra := gi[k]; extra {
				c.add(memberPath(path, k), "unexpected (got %s)", short(g.elems[i]))
			}
		}
	}
}

func memberPath(path, key string) string {
	for _, r := range key {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return path + "[" + strconv.Quote(key) + "]"
		}
	}
	return path + "." + key
}

// short renders n compactly for a difference report.
func short(n *node) string {
	var sb strings.Builder
	render(&sb, n)
	s := sb.String()
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func render(sb *strings.Builder, n *node) {
	switch n.kind {
	case kNull:
		sb.WriteString("null")
	case kBool, kNumber:
		sb.WriteString(n.text)
	case kString:
		sb.WriteString(strconv.Quote(n.text))
	case kArray:
		sb.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				sb.WriteByte(',')
			}
			render(sb, e)
		}
		sb.WriteByte(']')
	case kObject:
		sb.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Quote(k))
			sb.WriteByte(':')
			render(sb, n.elems[i])
		}
		sb.WriteByte('}')
	}
}

// maxExponent bounds the exponents numbersEqual expands into big.Rat. Postgres
// never prints exponents beyond float8's ±324; a huge one would only make a
// malicious document expensive, so those compare literally.
const maxExponent = 100000

// numbersEqual compares two JSON number literals (already syntax-checked by
// the parser) by exact value.
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	if hugeExponent(a) || hugeExponent(b) {
		return false
	}
	ra, ok1 := new(big.Rat).SetString(a)
	rb, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0
}

func hugeExponent(s string) bool {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return false
	}
	e, err := strconv.Atoi(s[i+1:])
	return err != nil || e > maxExponent || e < -maxExponent
}

// sameInstant reports whether a and b both read as timestamps, both with a
// zone or both without, and denote the same instant (or wall-clock time).
func sameInstant(a, b string) bool {
	ta, za, ok := parseTimestamp(a)
	if !ok {
		return false
	}
	tb, zb, ok := parseTimestamp(b)
	return ok && za == zb && ta.Equal(tb)
}

// parseTimestamp reads "YYYY-MM-DD[T ]HH:MM:SS[.fraction][zone]", zone being
// Z or ±HH[[:]MM[[:]SS]]. Fields out of range are not timestamps (time.Date
// would normalize them and make different strings equal).
func parseTimestamp(s string) (t time.Time, zoned, ok bool) {
	var f [6]int
	layout := "dddd-dd-dd?dd:dd:dd"
	if len(s) < len(layout) {
		return t, false, false
	}
	fi, v := 0, 0
	for i := 0; i < len(layout); i++ {
		c := s[i]
		switch layout[i] {
		case 'd':
			if c < '0' || c > '9' {
				return t, false, false
			}
			v = v*10 + int(c-'0')
			if i+1 == len(layout) || layout[i+1] != 'd' {
				f[fi], fi, v = v, fi+1, 0
			}
		case '?':
			if c != 'T' && c != ' ' {
				return t, false, false
			}
		default:
			if c != layout[i] {
				return t, false, false
			}
		}
	}
	year, month, day, hour, min, sec := f[0], f[1], f[2], f[3], f[4], f[5]
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || min > 59 || sec > 59 {
		return t, false, false
	}
	rest := s[len(layout):]
	nsec := 0
	if strings.HasPrefix(rest, ".") {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		digits := rest[1:n]
		if len(digits) == 0 || len(digits) > 9 {
			return t, false, false
		}
		nsec, _ = strconv.Atoi(digits + strings.Repeat("0", 9-len(digits)))
		rest = rest[n:]
	}
	offset := 0
	switch {
	case rest == "":
	case rest == "Z":
		zoned = true
	case rest[0] == '+' || rest[0] == '-':
		zoned = true
		var ok bool
		if offset, ok = parseOffset(rest[1:]); !ok {
			return t, false, false
		}
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return t, false, false
	}
	t = time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	return t, zoned, true
}

// parseOffset reads HH, HHMM, HH:MM, HHMMSS or HH:MM:SS as seconds.
func parseOffset(s string) (int, bool) {
	var parts [3]int
	n := 0
	colon := len(s) > 2 && s[2] == ':'
	for i := 0; i < len(s); n++ {
		if n == 3 || i+2 > len(s) || s[i] < '0' || s[i] > '9' || s[i+1] < '0' || s[i+1] > '9' {
			return 0, false
		}
		parts[n] = int(s[i]-'0')*10 + int(s[i+1]-'0')
		i += 2
		if i < len(s) {
			if colon {
				if s[i] != ':' {
					return 0, false
				}
				i++
				if i == len(s) {
					return 0, false
				}
			} else if s[i] == ':' {
				return 0, false
			}
		}
	}
	if n == 0 || parts[1] > 59 || parts[2] > 59 {
		return 0, false
	}
	return parts[0]*3600 + parts[1]*60 + parts[2], true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
