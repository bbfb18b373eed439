// Package subject maps change events to NATS subjects.
//
// Subjects are {prefix}.{schema}.{table}.{op} for row changes and truncates,
// and {prefix}._messages.{message prefix} for logical decoding messages. Names
// come from the database and may hold anything, so each such token is escaped:
// a hostile table name can never add tokens, wildcards or spaces to a subject.
package subject

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pgjet/pgjet/shared/wire"
)

// Reserved tokens after the prefix. Every row subject has three tokens after
// the prefix and every message subject two, so the shapes never coincide.
const (
	MessagesToken   = "_messages"
	DeadLetterToken = "_deadletter"
	// NoticesToken: {prefix}._notices.{kind}, the collector's notices
	// (wire.IsNotice), e.g. phantoms after a failover.
	NoticesToken = "_notices"
)

// AppendSubject appends the subject of change c to b. rel is the relation the
// event is for (for a truncate of several tables, the one of this event); it is
// ignored for logical decoding messages.
func AppendSubject(b []byte, prefix string, c *wire.Change, rel *wire.Relation) []byte {
	if c.Op == wire.OpMessage {
		return AppendMessage(b, prefix, c.Prefix)
	}
	return AppendRow(b, prefix, rel.Schema, rel.Table, c.Op)
}

// AppendRow appends {prefix}.{schema}.{table}.{op}.
func AppendRow(b []byte, prefix, schema, table string, op wire.Op) []byte {
	b = append(b, prefix...)
	b = append(b, '.')
	b = AppendToken(b, schema)
	b = append(b, '.')
	b = AppendToken(b, table)
	b = append(b, '.')
	return append(b, op.String()...)
}

// AppendMessage appends {prefix}._messages.{message prefix}.
func AppendMessage(b []byte, prefix, msgPrefix string) []byte {
	b = append(b, prefix...)
	b = append(b, '.')
	b = append(b, MessagesToken...)
	b = append(b, '.')
	return AppendToken(b, msgPrefix)
}

// DeadLetter is the subject of undecodable events.
func DeadLetter(prefix string) string {
	return prefix + "." + DeadLetterToken
}

const hexDigits = "0123456789ABCDEF"

// AppendToken appends s escaped as one subject token. '.', '*', '>', '%',
// whitespace, control characters and bytes that are not UTF-8 become %XX per
// byte; everything else, unicode letters included, stays readable. The empty
// string becomes a lone "%", which no escaped string can be, because an
// empty token would make the subject invalid.
func AppendToken(b []byte, s string) []byte {
	if s == "" {
		return append(b, '%')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%' {
				b = appendEscaped(b, c)
			} else {
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = appendEscaped(b, c)
			i++
			continue
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			for j := i; j < i+n; j++ {
				b = appendEscaped(b, s[j])
			}
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

func appendEscaped(b []byte, c byte) []byte {
	return append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
}

// Token returns s escaped as one subject token.
func Token(s string) string {
	return string(AppendToken(nil, s))
}

// ValidPrefix reports whether p can prefix subjects: one or more non-empty
// literal tokens (no wildcards, no whitespace), not starting with '$', which
// NATS reserves for its own APIs.
func ValidPrefix(p string) error {
	if p == "" {
		return errors.New("subject prefix is empty")
	}
	if strings.HasPrefix(p, "$") {
		return fmt.Errorf("subject prefix %q: subjects starting with $ are reserved by NATS", p)
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return fmt.Errorf("subject prefix %q has an empty token", p)
		}
		if strings.ContainsAny(tok, "*>") {
			return fmt.Errorf("subject prefix %q: wildcards are not allowed", p)
		}
		for _, r := range tok {
			if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
				return fmt.Errorf("subject prefix %q: whitespace and control characters are not allowed", p)
			}
		}
	}
	return nil
}
