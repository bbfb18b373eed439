// Package pgname reads the table names the collector is given (--tables,
// spec.source.config.tables): schema.table, where each part is taken as
// written or, double-quoted as in SQL, may hold anything, dots and commas
// included ("" for a quote). A list separates names with commas outside
// quotes.
package pgname

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Table is a schema-qualified table name.
type Table struct{ Schema, Name string }

// DefaultSchema is the schema of a name given without one.
const DefaultSchema = "public"

// Ident is the name as an SQL identifier, each part quoted.
func (t Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// String is the name as the collector takes it: each part as it is,
// double-quoted when it holds a dot, a comma, a quote or spaces at its
// ends, so that ParseTable reads it back.
func (t Table) String() string { return quote(t.Schema) + "." + quote(t.Name) }

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, `.,"`) || strings.TrimSpace(s) != s {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// ParseTable reads schema.table; a name without a schema is in
// DefaultSchema when bare is true, an error otherwise. The reason of an
// error says how to write the name.
func ParseTable(s string, bare bool) (Table, error) {
	parts, err := split(strings.TrimSpace(s), '.')
	if err != nil {
		return Table{}, fmt.Errorf("bad table %q: %w", s, err)
	}
	switch {
	case len(parts) == 1 && bare:
		return Table{Schema: DefaultSchema, Name: parts[0]}, nil
	case len(parts) == 1:
		return Table{}, fmt.Errorf("bad table %q: use schema.table, e.g. public.users", s)
	case len(parts) > 2:
		return Table{}, fmt.Errorf(`bad table %q: %d dot-separated parts; a schema or table whose name holds a dot is written in double quotes, e.g. "my.schema".users or public."my.table"`, s, len(parts))
	}
	return Table{Schema: parts[0], Name: parts[1]}, nil
}

// SplitList splits a comma-separated list of names, leaving commas inside
// double quotes alone; empty items are dropped.
func SplitList(s string) ([]string, error) {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted // "" inside quotes toggles twice
		case s[i] == ',' && !quoted:
			if item := strings.TrimSpace(s[start:i]); item != "" {
				out = append(out, item)
			}
			start = i + 1
		}
	}
	if quoted {
		return nil, fmt.Errorf("bad table list %q: a double quote is not closed", s)
	}
	if item := strings.TrimSpace(s[start:]); item != "" {
		out = append(out, item)
	}
	return out, nil
}

// split splits s at sep outside double quotes, unquoting each part.
func split(s string, sep byte) ([]string, error) {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '"' && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case quoted && c == '"':
			quoted = false
			if i+1 < len(s) && s[i+1] != sep {
				return nil, fmt.Errorf("text after a closing quote: write the whole part in quotes")
			}
		case quoted:
			cur.WriteByte(c)
		case c == '"':
			if cur.Len() > 0 {
				return nil, fmt.Errorf("a quote inside an unquoted name: quote the whole part, doubling inner quotes")
			}
			quoted = true
		case c == sep:
			if cur.Len() == 0 {
				return nil, fmt.Errorf("an empty part: use schema.table, e.g. public.users")
			}
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("a double quote is not closed")
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("an empty part: use schema.table, e.g. public.users")
	}
	return append(parts, cur.String()), nil
}
