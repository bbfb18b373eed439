package main

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/pgjet/pgjet/shared/metrics"
)

// startMetrics serves --metrics for cfg's plan, if given; stop is safe to
// call more than once.
func startMetrics(cfg config, log *slog.Logger) (stop func(), err error) {
	if cfg.metrics == "" {
		return func() {}, nil
	}
	reg := metrics.NewRegistry()
	cfg.plan.Metrics = plan.NewMetrics(reg)
	srv, err := metrics.Start(cfg.metrics, reg, cfg.plan.Metrics.Ready)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", cfg.metrics, err)
	}
	log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
	return sync.OnceFunc(srv.Close), nil
}
