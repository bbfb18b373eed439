package onebox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/pgjet/pgjet/collector/internal/command"
	"github.com/pgjet/pgjet/router/relays"
	"github.com/pgjet/pgjet/shared/metrics"
)

// Run runs the collector (and its embedded server) and the routes of c
// until ctx ends (nil) or either fails, which stops the other. At a stop
// the routes stop first, so that their last acks reach the server the
// collector runs.
func Run(ctx context.Context, c *Config, log *slog.Logger) error {
	col, rel, err := c.parts(log)
	if err != nil {
		return err
	}
	for _, line := range rel.Describe() {
		log.Info("route", "route", line)
	}
	addr := c.Metrics
	if addr == "" {
		addr = col.MetricsAddr() // a pipeline file's spec.metrics.listen
	}
	if addr != "" {
		reg, collectorReady := col.Metrics()
		routesReady := rel.Metrics(reg)
		srv, err := metrics.Start(addr, reg, func() error { return errors.Join(collectorReady(), routesReady()) })
		if err != nil {
			return fmt.Errorf("--metrics %s: %w", addr, err)
		}
		defer srv.Close()
		log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
	}

	collectorCtx, stopCollector := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCollector()
	routesCtx, stopRoutes := context.WithCancel(ctx)
	defer stopRoutes()
	collectorDone, routesDone := make(chan error, 1), make(chan error, 1)
	go func() { collectorDone <- col.Run(collectorCtx, log.With("part", "collector")) }()
	if addr := col.Embedded(); addr != "" {
		// The routes would find the server missing and retry a second later.
		if err := waitListening(ctx, addr, collectorDone); err != nil {
			stopCollector()
			return err
		}
	}
	go func() { routesDone <- rel.Run(routesCtx, log.With("part", "router"), os.Stdout) }()
	select {
	case err := <-routesDone:
		stopCollector()
		return errors.Join(err, <-collectorDone)
	case err := <-collectorDone:
		stopRoutes()
		if rerr := <-routesDone; err == nil {
			err = rerr
		}
		if err == nil && ctx.Err() == nil {
			err = errors.New("the collector stopped")
		}
		return err
	}
}

// parts configures the collector and the routes.
func (c *Config) parts(log *slog.Logger) (*command.Collector, *relays.Relays, error) {
	warn := func(msg string, args ...any) { log.Warn(msg, args...) }
	if c.File != "" {
		col, err := command.Parse([]string{"--config", c.File})
		if err != nil {
			return nil, nil, err
		}
		rel, err := relays.FromFile(c.File, os.LookupEnv, warn)
		if err != nil {
			return nil, nil, err
		}
		return col, rel, nil
	}
	col, err := command.ParseDoc(flagsPipeline, c.Doc, nil)
	if err != nil {
		return nil, nil, err
	}
	rel, err := relays.FromDoc(c.Doc, nil, warn)
	if err != nil {
		return nil, nil, fmt.Errorf("%s:\n%w", flagsPipeline, err)
	}
	return col, rel, nil
}

// waitListening waits until the embedded server accepts connections at
// addr, the collector ended (its error), or ctx ended (nil).
func waitListening(ctx context.Context, addr string, collectorDone <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-collectorDone:
			if err == nil {
				err = errors.New("the collector stopped before its server listened")
			}
			return err
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
