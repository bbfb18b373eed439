package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/pgjet/pgjet/collector/internal/heartbeat"
	"github.com/pgjet/pgjet/collector/internal/pubwatch"
)

// publicationWatchInterval is how often the publication is read for
// changes: a catalog query, cheap next to the latency of noticing.
const publicationWatchInterval = 10 * time.Second

// startWatchers starts, for the life of the process (not of a session),
// the heartbeat when configured and the publication watch, each on its own
// connection. A first heartbeat the user must fix ends the collector with
// one line.
func startWatchers(ctx context.Context, cfg Config, log *slog.Logger) error {
	if hc := cfg.Heartbeat; hc.Interval > 0 {
		if hc.DSN == "" {
			hc.DSN = cfg.DSN
		}
		if hc.Source == "" {
			hc.Source = cfg.Source
		}
		hb := heartbeat.New(hc, cfg.HeartbeatStats, log.With("component", "heartbeat"))
		if err := hb.Check(ctx); err != nil {
			return err
		}
		go hb.Run(ctx)
	}
	go pubwatch.Watch(ctx, cfg.DSN, cfg.Publication, publicationWatchInterval, log)
	return nil
}
