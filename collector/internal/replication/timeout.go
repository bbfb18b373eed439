package replication

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultStatusInterval is the longest time between two status updates
// when the server's wal_sender_timeout allows it.
const DefaultStatusInterval = 10 * time.Second

// StatusInterval is how often a session must report to the walsender on
// conn (a replication connection, before START_REPLICATION): the walsender
// ends a connection that has not replied for wal_sender_timeout, and a
// reader held by a full queue reads no keepalive requests, so it reports on
// its own at least twice per timeout.
func StatusInterval(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
	res, err := conn.Exec(ctx, "SHOW wal_sender_timeout").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("read wal_sender_timeout: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, fmt.Errorf("read wal_sender_timeout: unexpected answer")
	}
	timeout, err := parseSetting(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("wal_sender_timeout: %w", err)
	}
	return statusIntervalFor(timeout), nil
}

// statusIntervalFor is the status interval under a wal_sender_timeout (0:
// none).
func statusIntervalFor(timeout time.Duration) time.Duration {
	if timeout <= 0 || timeout/2 >= DefaultStatusInterval {
		return DefaultStatusInterval
	}
	// Half the timeout; the holding loop reports at half of that again.
	return max(timeout/2, 100*time.Millisecond)
}

// parseSetting reads a time setting as SHOW prints it: a number and a unit
// (ms, s, min, h, d), or 0.
func parseSetting(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	unit := map[string]time.Duration{"": time.Millisecond, "ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := unit[s[i:]]
	if !ok {
		return 0, fmt.Errorf("bad time unit in %q", s)
	}
	return time.Duration(n) * u, nil
}
