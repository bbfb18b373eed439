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

// SenderTimeout is the wal_sender_timeout of the walsender on conn (a
// replication connection, before START_REPLICATION; 0: none): the
// walsender ends a connection that has not replied for that long.
func SenderTimeout(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
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
	return timeout, nil
}

// StatusIntervalFor is how often a session reports to a walsender whose
// wal_sender_timeout is timeout (0: none or unknown): a reader held by a
// full queue reads no keepalive requests, so it reports on its own at
// least twice per timeout.
func StatusIntervalFor(timeout time.Duration) time.Duration {
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
