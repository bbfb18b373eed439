// Package logging makes the processes' loggers from their --log-format and
// --log-level flags: the same flags, words and errors in both binaries.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// ParseFormat reads --log-format: json reports whether it is JSON.
func ParseFormat(v string) (json bool, err error) {
	switch v {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("bad --log-format %q: use text or json", v)
}

// New logs to w, as text or one JSON object per line.
func New(w io.Writer, json bool, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
