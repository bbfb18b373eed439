package subject

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pgjet/pgjet/shared/wire"
)

func TestAppendToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "users", "users"},
		{"underscore and digits", "order_items_2024", "order_items_2024"},
		{"mixed case and dash", "My-Table", "My-Table"},
		{"dot", "a.b", "a%2Eb"},
		{"star", "*", "%2A"},
		{"gt", ">", "%3E"},
		{"percent", "100%", "100%25"},
		{"already escaped looking", "a%2Eb", "a%252Eb"},
		{"space", "my table", "my%20table"},
		{"tab newline cr", "a\tb\nc\rd", "a%09b%0Ac%0Dd"},
		{"nul", "a\x00b", "a%00b"},
		{"del", "a\x7fb", "a%7Fb"},
		{"wildcard attack", "x.>", "x%2E%3E"},
		{"subject injection", "users.insert postgres.*", "users%2Einsert%20postgres%2E%2A"},
		{"unicode letters stay", "użytkownicy_日本", "użytkownicy_日本"},
		{"emoji stays", "🐘", "🐘"},
		{"no-break space", "a\u00a0b", "a%C2%A0b"},
		{"em space", "a\u2003b", "a%E2%80%83b"},
		{"c1 control", "a\u0085b", "a%C2%85b"},
		{"invalid utf8", "a\xffb", "a%FFb"},
		{"truncated utf8", "a\xc3", "a%C3"},
		{"empty", "", "%"},
		{"quote and slash stay", `"x"/y\z`, `"x"/y\z`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Token(tt.in)
			if got != tt.want {
				t.Fatalf("Token(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("Token(%q) = %q is not valid UTF-8", tt.in, got)
			}
			if strings.ContainsAny(got, ".*> \t\r\n") {
				t.Fatalf("Token(%q) = %q can break a subject", tt.in, got)
			}
		})
	}
}

func TestAppendSubject(t *testing.T) {
	users := &wire.Relation{Schema: "public", Table: "users"}
	hostile := &wire.Relation{Schema: "a.b", Table: "> *"}
	tests := []struct {
		name   string
		prefix string
		change wire.Change
		rel    *wire.Relation
		want   string
	}{
		{"insert", "postgres", wire.Change{Op: wire.OpInsert}, users, "postgres.public.users.insert"},
		{"update", "postgres", wire.Change{Op: wire.OpUpdate}, users, "postgres.public.users.update"},
		{"delete", "postgres", wire.Change{Op: wire.OpDelete}, users, "postgres.public.users.delete"},
		{"truncate", "postgres", wire.Change{Op: wire.OpTruncate}, users, "postgres.public.users.truncate"},
		{"multi-token prefix", "acme.cdc", wire.Change{Op: wire.OpInsert}, users, "acme.cdc.public.users.insert"},
		{"hostile names", "postgres", wire.Change{Op: wire.OpDelete}, hostile, "postgres.a%2Eb.%3E%20%2A.delete"},
		{"message", "postgres", wire.Change{Op: wire.OpMessage, Prefix: "outbox"}, nil, "postgres._messages.outbox"},
		{"hostile message prefix", "postgres", wire.Change{Op: wire.OpMessage, Prefix: "a.b.>"}, nil, "postgres._messages.a%2Eb%2E%3E"},
		{"empty message prefix", "postgres", wire.Change{Op: wire.OpMessage}, nil, "postgres._messages.%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte("keep:")
			got := AppendSubject(b, tt.prefix, &tt.change, tt.rel)
			if string(got) != "keep:"+tt.want {
				t.Fatalf("AppendSubject = %q, want %q", got, "keep:"+tt.want)
			}
			if !validPublishSubject(tt.want) {
				t.Fatalf("%q is not a valid publish subject", tt.want)
			}
			wantTokens := len(strings.Split(tt.prefix, ".")) + 3
			if tt.change.Op == wire.OpMessage {
				wantTokens--
			}
			if n := len(strings.Split(tt.want, ".")); n != wantTokens {
				t.Fatalf("%q has %d tokens, want %d", tt.want, n, wantTokens)
			}
		})
	}
}

// validPublishSubject is NATS's rule for a subject one may publish to.
func validPublishSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

func TestAppendSubjectDoesNotAllocate(t *testing.T) {
	c := &wire.Change{Op: wire.OpUpdate}
	rel := &wire.Relation{Schema: "public", Table: "my.table"}
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendSubject(buf[:0], "postgres", c, rel)
	})
	if allocs != 0 {
		t.Fatalf("AppendSubject allocates %v times per call", allocs)
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"postgres", true},
		{"acme.cdc", true},
		{"", false},
		{"a..b", false},
		{".a", false},
		{"a.", false},
		{"a.*", false},
		{"a.>", false},
		{"a b", false},
		{"a\tb", false},
		{"$JS", false},
	}
	for _, tt := range tests {
		err := ValidPrefix(tt.prefix)
		if (err == nil) != tt.ok {
			t.Errorf("ValidPrefix(%q) = %v, want ok=%v", tt.prefix, err, tt.ok)
		}
	}
}
