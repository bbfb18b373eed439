package wire

import (
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

// PartitionHeader names, on every message of a partitioned route, the
// share of the output ("i/N") whose router published it: each router
// resumes from its own last events in an output they all write.
const PartitionHeader = "Pgjet-Partition"
