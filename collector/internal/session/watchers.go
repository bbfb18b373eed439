package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/collector/internal/heartbeat"
	"github.com/pgjet/pgjet/collector/internal/pubwatch"
)

// publicationWatchInterval is how often the publication is read for
// changes: a catalog query, cheap next to the latency of noticing.
const publicationWatchInterval = 10 * time.Second

// startWatchers starts, for the life of the process (not of a session),
// the heartbeat when configured, on its own connection. A first heartbeat
// the user must fix ends the collector with one line.
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
	return nil
}

// watchPublication starts the publication watch, once per process, from
// the publication as the session found it (read on pgc).
func (s *session) watchPublication(ctx context.Context, pgc *pgx.Conn) {
	if s.watching {
		return
	}
	f, err := pubwatch.Probe(ctx, pgc)
	if err != nil {
		s.log.Warn("publication changes are not watched", "err", err)
		return
	}
	st, ok, err := pubwatch.Read(ctx, pgc, f, s.cfg.Publication)
	if err != nil || !ok {
		s.log.Warn("publication changes are not watched", "err", err)
		return
	}
	s.watching = true
	go pubwatch.Watch(ctx, s.cfg.DSN, s.cfg.Publication, publicationWatchInterval, st, s.log)
}
