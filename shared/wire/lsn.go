package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in a database's write-ahead log. Its text form is
// Postgres's own, two upper-case hexadecimal halves: 16/B374D848. Every
// pgjet output, log line and flag uses that form; LSN is where it is
// written and read.
type LSN uint64

// String is l in Postgres's notation.
func (l LSN) String() string { return string(l.Append(make([]byte, 0, 17))) }

// Append appends l in Postgres's notation to b.
func (l LSN) Append(b []byte) []byte {
	b = appendUpperHex(b, uint64(l)>>32)
	b = append(b, '/')
	return appendUpperHex(b, uint64(l)&0xFFFFFFFF)
}

func appendUpperHex(b []byte, v uint64) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 16)
	for i := start; i < len(b); i++ {
		if b[i] >= 'a' {
			b[i] -= 'a' - 'A'
		}
	}
	return b
}

// MarshalText is String for encoders (JSON, YAML, flags).
func (l LSN) MarshalText() ([]byte, error) { return l.Append(nil), nil }

// UnmarshalText is ParseLSN.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLSN reads Postgres's notation: two hexadecimal halves of at most 8
// digits each, either case, around a '/'. Surrounding spaces are ignored.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if ok {
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("bad LSN %q: use Postgres's notation, e.g. 16/B374D848", s)
}
