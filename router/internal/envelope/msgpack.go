package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// msgpackContentType is MessagePack's media type as IANA registered it
// (2024); application/msgpack and application/x-msgpack are older,
// unregistered spellings. Native JSON sets no Content-Type: its render
// time is within noise (BenchmarkMsgpack), but it would add 32 bytes to
// every stored message, 7% of a typical insert; its absence means JSON.
var msgpackContentType = []string{"application/vnd.msgpack"}

// withEncoding wraps r, a JSON renderer, for o.Encoding; newDoc builds a
// second JSON renderer for Document. Envelopes that have a msgpack form
// call it from their factory.
func withEncoding(o Options, r Renderer, newDoc func() (Renderer, error)) (Renderer, error) {
	if o.Encoding == "json" {
		return r, nil
	}
	if o.Encoding != "msgpack" {
		return nil, &OptionError{Key: "encoding", Err: fmt.Errorf("%q: use json or msgpack", o.Encoding)}
	}
	doc, err := newDoc()
	if err != nil {
		return nil, err
	}
	return &msgpackRenderer{json: r, doc: doc}, nil
}

// msgpackRenderer renders an envelope's JSON and transcodes it to
// MessagePack: one definition of every envelope's content, whatever the
// encoding, so the two cannot drift apart.
type msgpackRenderer struct {
	json Renderer
	// doc re-renders the JSON for Document: the relay prints after a whole
	// record is rendered, and json's state (Debezium's key for Header)
	// belongs to the event it rendered last.
	doc Renderer
	buf []byte
	tc  transcoder
}

func (m *msgpackRenderer) Append(b []byte, e *Event) ([]byte, error) {
	var err error
	if m.buf, err = m.json.Append(m.buf[:0], e); err != nil {
		return b, err
	}
	out, err := m.tc.append(b, m.buf)
	if err != nil {
		return b, fmt.Errorf("encode msgpack: %w", err)
	}
	return out, nil
}

func (m *msgpackRenderer) AddHeader(h Header, e *Event) int {
	n := m.json.AddHeader(h, e)
	if ct, ok := h["Content-Type"]; ok {
		n -= fieldSize("Content-Type", ct) // replaced
	}
	return n + h.put("Content-Type", msgpackContentType)
}

// Document appends the JSON document of e, not its MessagePack body: stdout
// is text. It renders e again; that cannot fail, as Append rendered the
// same event with the same settings.
func (m *msgpackRenderer) Document(b []byte, e *Event, _ []byte) []byte {
	out, err := m.doc.Append(b, e)
	if err != nil {
		return b
	}
	return m.doc.Document(b, e, out[len(b):])
}

// A transcoder turns JSON into MessagePack in one pass, keeping the order of
// object keys. Containers get a one-byte header (fixmap, fixarray) when
// opened, and the few with 16 elements or more are moved up when closed to
// make room for a longer one: cheaper than counting elements in a first
// pass over every document (see BenchmarkMsgpackTranscode). Numbers keep
// their value exactly:
//
//   - an integer (no fraction, no exponent) in the range of int64 (negative)
//     or uint64 is an integer, in the fewest bytes;
//   - any other number is a float64 when the float64 nearest to it prints
//     (strconv.FormatFloat, shortest) as the same decimal value: 199.90 is
//     199.9, 1e3 is 1000.0, 0.1 is 0.1;
//   - otherwise (more digits than a float64 holds, out of its range) a
//     string of the number's JSON text: a numeric(40,10) never loses
//     digits, 12345678901234567890.1234567890 stays
//     "12345678901234567890.1234567890".
//
// Strings come out as encoding/json reads them: escapes decoded, a \u
// surrogate pair combined, a lone surrogate or a byte of invalid UTF-8 made
// U+FFFD.
type transcoder struct {
	stack   []frame
	scratch []byte // a string with escapes, decoded
	digits  []byte // significant digits of a number, for the float64 test
}

type frame struct {
	at  int // offset of the container's header in dst
	n   int // elements so far (map: pairs)
	obj bool
}

var errSyntax = errors.New("invalid JSON")

// append appends the MessagePack form of the JSON document src to dst. On
// error dst comes back unchanged.
func (t *transcoder) append(dst, src []byte) ([]byte, error) {
	start := len(dst)
	out, err := t.run(dst, src)
	if err != nil {
		return dst[:start], err
	}
	return out, nil
}

func (t *transcoder) run(dst, src []byte) ([]byte, error) {
	t.stack = t.stack[:0]
	i := 0
	var err error
	for {
		// A value begins at i.
		i = skipSpace(src, i)
		if i >= len(src) {
			return dst, errSyntax
		}
		switch c := src[i]; c {
		case '{', '[':
			t.stack = append(t.stack, frame{at: len(dst), obj: c == '{'})
			if c == '{' {
				dst = append(dst, 0x80)
			} else {
				dst = append(dst, 0x90)
			}
			i = skipSpace(src, i+1)
			if i < len(src) && src[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				i++
				t.stack = t.stack[:len(t.stack)-1]
				break
			}
			if c == '{' {
				if dst, i, err = t.key(dst, src, i); err != nil {
					return dst, err
				}
			}
			continue
		case '"':
			if dst, i, err = t.str(dst, src, i); err != nil {
				return dst, err
			}
		case 't':
			if !hasAt(src, i, "true") {
				return dst, errSyntax
			}
			dst, i = append(dst, 0xc3), i+4
		case 'f':
			if !hasAt(src, i, "false") {
				return dst, errSyntax
			}
			dst, i = append(dst, 0xc2), i+5
		case 'n':
			if !hasAt(src, i, "null") {
				return dst, errSyntax
			}
			dst, i = append(dst, 0xc0), i+4
		default:
			if dst, i, err = t.number(dst, src, i); err != nil {
				return dst, err
			}
		}
		// A value ended at i: what follows closes its containers or
		// begins the next value.
		for {
			if len(t.stack) == 0 {
				if skipSpace(src, i) != len(src) {
					return dst, errSyntax
				}
				return dst, nil
			}
			top := &t.stack[len(t.stack)-1]
			top.n++
			i = skipSpace(src, i)
			if i >= len(src) {
				return dst, errSyntax
			}
			if src[i] == ',' {
				i++
				if top.obj {
					if dst, i, err = t.key(dst, src, skipSpace(src, i)); err != nil {
						return dst, err
					}
				}
				break
			}
			if top.obj && src[i] != '}' || !top.obj && src[i] != ']' {
				return dst, errSyntax
			}
			i++
			dst = closeContainer(dst, *top)
			// The container is a value of the one around it.
			t.stack = t.stack[:len(t.stack)-1]
		}
	}
}

// key transcodes an object key at i and its colon.
func (t *transcoder) key(dst, src []byte, i int) ([]byte, int, error) {
	if i >= len(src) || src[i] != '"' {
		return dst, i, errSyntax
	}
	dst, i, err := t.str(dst, src, i)
	if err != nil {
		return dst, i, err
	}
	i = skipSpace(src, i)
	if i >= len(src) || src[i] != ':' {
		return dst, i, errSyntax
	}
	return dst, i + 1, nil
}

// closeContainer writes the header of f, whose elements follow its
// one-byte placeholder.
func closeContainer(dst []byte, f frame) []byte {
	switch {
	case f.n < 16:
		dst[f.at] |= byte(f.n)
		return dst
	case f.n <= math.MaxUint16:
		dst = shiftUp(dst, f.at+1, 2)
		if f.obj {
			dst[f.at] = 0xde
		} else {
			dst[f.at] = 0xdc
		}
		binary.BigEndian.PutUint16(dst[f.at+1:], uint16(f.n))
	default:
		dst = shiftUp(dst, f.at+1, 4)
		if f.obj {
			dst[f.at] = 0xdf
		} else {
			dst[f.at] = 0xdd
		}
		binary.BigEndian.PutUint32(dst[f.at+1:], uint32(f.n))
	}
	return dst
}

// shiftUp moves dst[from:] up by k bytes.
func shiftUp(dst []byte, from, k int) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, k)...)
	copy(dst[from+k:], dst[from:n])
	return dst
}

func skipSpace(src []byte, i int) int {
	if i < len(src) && src[i] > ' ' {
		return i
	}
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasAt(src []byte, i int, word string) bool {
	return len(src)-i >= len(word) && string(src[i:i+len(word)]) == word
}

// plain marks the bytes a string can hold as they are: ASCII but for
// quote, backslash and control characters.
var plain = func() (p [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		p[c] = c != '"' && c != '\\'
	}
	return p
}()

// str transcodes the string whose opening quote is at i.
func (t *transcoder) str(dst, src []byte, i int) ([]byte, int, error) {
	j := i + 1
	ascii := true
	for {
		for j < len(src) && plain[src[j]] {
			j++
		}
		if j >= len(src) {
			return dst, j, errSyntax
		}
		c := src[j]
		if c == '"' {
			break
		}
		if c < 0x80 {
			// An escape, or a control character slowStr rejects.
			return t.slowStr(dst, src, i)
		}
		ascii = false
		j++
	}
	s := src[i+1 : j]
	if !ascii && !utf8.Valid(s) {
		return t.slowStr(dst, src, i)
	}
	return append(appendStrHeader(dst, len(s)), s...), j + 1, nil
}

// slowStr decodes the string at i into t.scratch as encoding/json does.
func (t *transcoder) slowStr(dst, src []byte, i int) ([]byte, int, error) {
	b := t.scratch[:0]
	j := i + 1
	for {
		if j >= len(src) {
			return dst, j, errSyntax
		}
		c := src[j]
		switch {
		case c == '"':
			t.scratch = b
			return append(appendStrHeader(dst, len(b)), b...), j + 1, nil
		case c < 0x20:
			return dst, j, errSyntax
		case c == '\\':
			if j+1 >= len(src) {
				return dst, j, errSyntax
			}
			switch e := src[j+1]; e {
			case '"', '\\', '/':
				b, j = append(b, e), j+2
			case 'b':
				b, j = append(b, '\b'), j+2
			case 'f':
				b, j = append(b, '\f'), j+2
			case 'n':
				b, j = append(b, '\n'), j+2
			case 'r':
				b, j = append(b, '\r'), j+2
			case 't':
				b, j = append(b, '\t'), j+2
			case 'u':
				r := hex4(src, j+2)
				if r < 0 {
					return dst, j, errSyntax
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4u(src, j); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							b, j = utf8.AppendRune(b, dec), j+6
							break
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
			default:
				return dst, j, errSyntax
			}
		case c < 0x80:
			b, j = append(b, c), j+1
		default:
			r, size := utf8.DecodeRune(src[j:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, src[j:j+size]...)
			}
			j += size
		}
	}
}

// hex4u reads the \uXXXX at i, or returns -1.
func hex4u(src []byte, i int) rune {
	if len(src)-i < 6 || src[i] != '\\' || src[i+1] != 'u' {
		return -1
	}
	return hex4(src, i+2)
}

// hex4 reads the four hex digits at i, or returns -1.
func hex4(src []byte, i int) rune {
	if len(src)-i < 4 {
		return -1
	}
	var r rune
	for _, c := range src[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

func appendStrHeader(dst []byte, n int) []byte {
	switch {
	case n < 32:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xda, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
}

// number transcodes the number at i by the rule of transcoder.
func (t *transcoder) number(dst, src []byte, i int) ([]byte, int, error) {
	start := i
	neg := false
	if i < len(src) && src[i] == '-' {
		neg = true
		i++
	}
	// The integer part, accumulated while it fits a uint64.
	intStart := i
	var u uint64
	fits := true
	for ; i < len(src) && '0' <= src[i] && src[i] <= '9'; i++ {
		d := uint64(src[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			fits = false
		}
		u = u*10 + d
	}
	if i == intStart || src[intStart] == '0' && i-intStart > 1 {
		return dst, i, errSyntax
	}
	integral := true
	if i < len(src) && src[i] == '.' {
		integral = false
		i++
		fracStart := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		if i == fracStart {
			return dst, i, errSyntax
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		integral = false
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		expStart := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		if i == expStart {
			return dst, i, errSyntax
		}
	}
	text := src[start:i]
	if integral && fits {
		switch {
		case !neg:
			return appendUint(dst, u), i, nil
		case u <= 1<<63:
			return appendInt(dst, -int64(u)), i, nil
		}
	}
	if f, ok := t.exactFloat(text); ok {
		return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f)), i, nil
	}
	return append(appendStrHeader(dst, len(text)), text...), i, nil
}

// exactFloat returns the float64 nearest to the JSON number text and
// whether it prints as the same decimal value.
func (t *transcoder) exactFloat(text []byte) (float64, bool) {
	digits, exp := significand(t.digits[:0], text)
	t.digits = digits
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, false
	}
	// Up to 15 significant digits in the normal range always come back
	// (DBL_DIG): most numbers skip formatting the float.
	if len(digits) <= 15 && -300 <= exp && exp <= 300 {
		return f, true
	}
	var buf [32]byte
	back, backExp := significand(digits[len(digits):], strconv.AppendFloat(buf[:0], f, 'e', -1, 64))
	return f, backExp == exp && string(back) == string(digits)
}

// significand appends to b the significant digits of the JSON number text,
// without leading or trailing zeros, and returns them with the exponent
// that makes the number 0.digits × 10^exp (exp 0 for zero). The exponent
// saturates far beyond float64's range, where no exponent matters.
func significand(b, text []byte) ([]byte, int) {
	start := len(b)
	point := 0 // digits of text before its decimal point, less leading zeros
	seenPoint := false
	i := 0
	if i < len(text) && text[i] == '-' {
		i++
	}
	for ; i < len(text); i++ {
		c := text[i]
		if c == '.' {
			seenPoint = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if len(b) == start && c == '0' {
			if seenPoint {
				point--
			}
			continue
		}
		b = append(b, c)
		if !seenPoint {
			point++
		}
	}
	exp := 0
	if i < len(text) { // 'e' or 'E'
		i++
		eneg := false
		if text[i] == '+' || text[i] == '-' {
			eneg = text[i] == '-'
			i++
		}
		for ; i < len(text); i++ {
			if exp < 1e6 {
				exp = exp*10 + int(text[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	for len(b) > start && b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	if len(b) == start {
		return b[start:], 0
	}
	return b[start:], point + exp
}

func appendUint(dst []byte, u uint64) []byte {
	switch {
	case u < 0x80:
		return append(dst, byte(u))
	case u <= math.MaxUint8:
		return append(dst, 0xcc, byte(u))
	case u <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(u))
	case u <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(u))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), u)
}

func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}
