package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/pgjet/pgjet/router/internal/routing"
	"github.com/pgjet/pgjet/shared/metrics"
)

// startMetrics serves --metrics for cfg's plan, if given; stop is safe to
// call more than once.
func startMetrics(cfg config, log *slog.Logger) (stop func(), err error) {
	if cfg.metrics == "" {
		return func() {}, nil
	}
	reg := metrics.NewRegistry()
	cfg.plan.Metrics = routing.NewMetrics(reg)
	srv, err := metrics.Start(cfg.metrics, reg, cfg.plan.Metrics.Ready)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", cfg.metrics, err)
	}
	log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
	return sync.OnceFunc(srv.Close), nil
}

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
