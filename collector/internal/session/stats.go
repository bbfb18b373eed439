package session

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
)

// logStats logs the process's totals, and the rate and lags of the last
// interval from the difference of two readings (see package lag): /metrics
// reads the same totals.
func logStats(ctx context.Context, pub *rawstream.Publisher, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	tot := pub.Totals()
	lastChanges, _ := pub.Stats()
	lastRead, lastStored := tot.ReadLag.Snapshot(), tot.StoredLag.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changes, msgs := pub.Stats()
			readNow, storedNow := tot.ReadLag.Snapshot(), tot.StoredLag.Snapshot()
			read, stored := readNow.Since(lastRead), storedNow.Since(lastStored)
			lastRead, lastStored = readNow, storedNow
			if changes != lastChanges {
				// Lags from commit (Postgres's clock) to decoded and to stored
				// in the raw stream, over the last interval: the first is the
				// walsender's share, the difference the collector's.
				log.Info("progress", "changes", changes, "raw_messages", msgs, "changes_per_s", (changes-lastChanges)/10,
					"confirmed", pglogrepl.LSN(pub.Confirmed()),
					"read_lag_p50", read.P50, "read_lag_p99", read.P99, "read_lag_max", read.Max,
					"stored_lag_p50", stored.P50, "stored_lag_p99", stored.P99, "stored_lag_max", stored.Max)
				lastChanges = changes
			}
		}
	}
}
