package value

import (
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// escapeHex are the digits of a \u escape: upper case, as Jackson writes
// them (Debezium's JSON), so that a Debezium event's bytes are its own.
// JSON reads either case alike.
const escapeHex = "0123456789ABCDEF"

// safeASCII marks the bytes that go into a JSON string unescaped.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s to b as a JSON string. Control characters, quotes and
// backslashes are escaped; invalid UTF-8 bytes become U+FFFD, so the result is
// valid JSON whatever s holds. It accepts strings and byte slices alike so that
// callers never convert (and allocate) to call it.
func AppendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, to be copied unescaped
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', escapeHex[c>>4], escapeHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		size := validRuneLen(s, i)
		if size == 0 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// validRuneLen returns the length of the valid UTF-8 sequence starting at
// s[i] (a non-ASCII byte), or 0 if there is none. It follows utf8.DecodeRune's
// rules (no overlong forms, no surrogates, nothing above U+10FFFF) but works on
// strings and byte slices alike.
func validRuneLen[S ~string | ~[]byte](s S, i int) int {
	c := s[i]
	var n int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		n = 3
	case c == 0xED:
		n, hi = 3, 0x9F
	case c == 0xF0:
		n, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F
	default:
		return 0
	}
	if i+n > len(s) {
		return 0
	}
	if c2 := s[i+1]; c2 < lo || c2 > hi {
		return 0
	}
	for k := 2; k < n; k++ {
		if c := s[i+k]; c < 0x80 || c > 0xBF {
			return 0
		}
	}
	return n
}
