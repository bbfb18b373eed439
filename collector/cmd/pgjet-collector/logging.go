package main

import (
	"fmt"
	"log/slog"
	"os"
)

// parseLogFormat reads --log-format: json reports whether it is JSON.
func parseLogFormat(v string) (json bool, err error) {
	switch v {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("bad --log-format %q: use text or json", v)
}

// newLogger logs to stderr, as text or one JSON object per line.
func newLogger(json bool, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
