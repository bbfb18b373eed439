// Package redact removes passwords from connection strings before they are
// logged or shown in errors.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// DSN returns dsn with any password replaced by "xxxxx". It handles URLs
// (postgres://u:p@h/db, nats://u:p@h, nats://token@h) and key=value strings (password=p);
// comma-separated URL lists are redacted element by element.
func DSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		parts := strings.Split(dsn, ",")
		for i, p := range parts {
			parts[i] = oneURL(p)
		}
		return strings.Join(parts, ",")
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

func oneURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// Unparseable: do not risk echoing a secret.
		if i := strings.LastIndex(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				return s[:j+3] + "xxxxx@" + s[i+1:]
			}
		}
		return s
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
