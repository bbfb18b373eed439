package wire

import (
	"errors"
	"fmt"
	"strings"
)

// The raw stream's subjects: one per source, RawSubjectPrefix + source name.
// The collector writes them; routers read RawFilter and nothing else, so a
// record on another subject would look like a gap to them.
const (
	RawSubjectPrefix = "pgjet.raw."
	RawFilter        = RawSubjectPrefix + ">"
	// DefaultRawStream is the raw stream's name unless configured.
	DefaultRawStream = "PGJET_RAW"
)

// RawSubject is the raw subject of the source named source.
func RawSubject(source string) string { return RawSubjectPrefix + source }

// SourceOfSubject is RawSubject's inverse: the source whose raw subject is
// subject, and false for a subject that is not one (another prefix, or
// more than one token after it).
func SourceOfSubject(subject string) (string, bool) {
	source, ok := strings.CutPrefix(subject, RawSubjectPrefix)
	if !ok || source == "" || strings.ContainsAny(source, ".*>") {
		return "", false
	}
	return source, true
}

// CheckName reports whether s can name a JetStream stream, a durable
// consumer or a source: letters, digits, '_' and '-', at most 255 bytes.
// Both binaries accept the same names, and every such name is one subject
// token and one file name on the server.
func CheckName(s string) error {
	if s == "" {
		return fmt.Errorf("empty: use letters, digits, '_' and '-'")
	}
	if len(s) > 255 {
		return fmt.Errorf("%q is longer than 255 bytes", s[:32]+"...")
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("%q: use letters, digits, '_' and '-'", s)
	}
	return nil
}

// CheckSlotName reports whether s can name a replication slot, Postgres's
// rule: lower-case letters, digits and '_', at most 63 bytes. A flag and a
// pipeline file accept the same names, and the default source name (the
// slot's) is then a valid name too.
func CheckSlotName(s string) error {
	if s == "" || len(s) > 63 || strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_')
	}) >= 0 {
		// Without the name: a caller may not show a value from the environment.
		return errors.New("PostgreSQL allows lower-case letters, digits and '_', at most 63")
	}
	return nil
}

// TextFormat are the session settings the collector's replication
// connection runs with, so that every text value it stores has one form
// whatever the server's defaults: the router's value decoders parse
// exactly these (ISO dates, UTC, Postgres intervals, shortest exact
// floats, hex bytea), which is also what to_jsonb renders.
var TextFormat = []struct{ Name, Value string }{
	{"DateStyle", "ISO, MDY"},
	{"TimeZone", "UTC"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
}

// PartitionHeader names, on every message of a partitioned route, the
// share of the output ("i/N") whose router published it: each router
// resumes from its own last events in an output they all write.
const PartitionHeader = "Pgjet-Partition"
