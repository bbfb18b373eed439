package pipeline

import (
	"errors"
	"fmt"
	"strings"
)

// expansion is the result of expanding one scalar.
type expansion struct {
	value string
	// env is true when a ${...} was replaced: the value may be a secret
	// from the environment and is never shown.
	env bool
	// missing are variables that are unset and have no default.
	missing []string
}

// expand replaces ${VAR}, ${VAR:-default} and $$ in s. Like the shell, the
// default also applies to a variable set to "". A '$' before anything else
// stays as it is, except before a name, where it is an error: $VAR is
// almost certainly a ${VAR} that would otherwise reach a server verbatim.
// Errors never quote s, which may be a password.
func expand(s string, lookup func(string) (string, bool)) (expansion, error) {
	if !strings.Contains(s, "$") {
		return expansion{value: s}, nil
	}
	var x expansion
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		switch {
		case strings.HasPrefix(s, "$"):
			b.WriteByte('$')
			s = s[1:]
		case strings.HasPrefix(s, "{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return x, errors.New("a ${ has no closing }: write ${NAME} or ${NAME:-default}, and $$ for a literal $")
			}
			expr := s[1:end]
			s = s[end+1:]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !isName(name) {
				return x, errors.New("a ${...} is neither ${NAME} nor ${NAME:-default} (NAME: letters, digits and '_'); write $$ for a literal $")
			}
			x.env = true
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				x.missing = append(x.missing, name)
			}
			b.WriteString(v)
		case s != "" && isNameStart(s[0]):
			return x, errors.New("a $ is followed by a name: write ${NAME} to use a variable, or $$ for a literal $")
		default:
			b.WriteByte('$')
		}
	}
	x.value = b.String()
	return x, nil
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isNameStart(c) && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// missingMessage is the error for an unset variable without a default.
func missingMessage(name string) string {
	return fmt.Sprintf("environment variable %s is not set (set it, or write ${%s:-value})", name, name)
}
