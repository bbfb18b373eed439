// Package redact removes passwords from connection strings before they are
// logged or shown in errors.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// kvPassword matches a password in a key=value string: quoted, or unquoted
// where a backslash escapes the next character (libpq's rules).
var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.?)+)`)

// queryPassword matches a password parameter of a URL's query.
var queryPassword = regexp.MustCompile(`(?i)([?&]password=)[^&#]*`)

// DSN returns dsn with any password replaced by "xxxxx". It handles URLs
// (postgres://u:p@h/db, nats://u:p@h, nats://token@h) and key=value strings (password=p);
// comma-separated NATS URL lists are redacted element by element. A Postgres
// URL is one URL even with commas: its host list has them, and so may its
// password (a URL need not encode a comma).
func DSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
	}
	if scheme, _, _ := strings.Cut(strings.TrimSpace(dsn), "://"); pgSchemes[strings.ToLower(scheme)] {
		return oneURL(dsn)
	}
	parts := strings.Split(dsn, ",")
	for i, p := range parts {
		parts[i] = oneURL(p)
	}
	return strings.Join(parts, ",")
}

var (
	natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}
	pgSchemes   = map[string]bool{"postgres": true, "postgresql": true}
)

func oneURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Opaque != "" || strings.Contains(u.Host+u.Path, "@") {
		// Unparseable, or parsed with an @ outside the user part (a raw
		// '/', '?' or '#' in the password ends it early): do not risk
		// echoing a secret.
		return masked(s)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else if natsSchemes[strings.ToLower(u.Scheme)] && u.User.Username() != "" {
			// NATS reads a lone user part as a token.
			u.User = url.User("xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// masked replaces everything between the scheme (or the start) and the
// last @ with xxxxx, and any password parameter.
func masked(s string) string {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		start := 0
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			start = j + 3
		}
		s = s[:start] + "xxxxx@" + s[i+1:]
	}
	return queryPassword.ReplaceAllString(s, "${1}xxxxx")
}
