package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/replication"
)

// A session given up on because its walsender went silent leaves that
// walsender behind, holding the slot until the server notices the
// connection is gone (wal_sender_timeout, or TCP keepalives: a minute or
// much more). The next session knows its pid, and ends it: the pid was
// this collector's own walsender, so nothing else is disturbed.

// staleWalsenderError: the slot is still held by the walsender of a session
// that went silent; it was asked to terminate, and the session is made
// again shortly.
type staleWalsenderError struct {
	pid        uint32
	terminated bool
}

func (e *staleWalsenderError) Error() string {
	if !e.terminated {
		return fmt.Sprintf("replication slot still held by the silent walsender (pid %d), which could not be terminated (the role needs to be the same role or have pg_signal_backend): waiting for the server to notice (wal_sender_timeout)", e.pid)
	}
	return fmt.Sprintf("replication slot still held by the silent walsender (pid %d) of the previous session: asked it to terminate", e.pid)
}

// noteSilent remembers the walsender of a session that ended silent.
func (s *session) noteSilent(err error) {
	var silent *replication.SilentError
	if errors.As(err, &silent) {
		s.silentPID = silent.PID
	}
}

// releaseStale turns a busy slot held by the silent walsender of the
// previous session into a transient error, after asking that walsender to
// terminate. Other errors pass unchanged.
func (s *session) releaseStale(ctx context.Context, pgc *pgx.Conn, err error) error {
	var busy *pgsetup.SlotBusyError
	if s.silentPID == 0 || !errors.As(err, &busy) || uint32(busy.PID) != s.silentPID {
		return err
	}
	var ok bool
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if qerr := pgc.QueryRow(qctx, `SELECT pg_terminate_backend($1)`, int32(busy.PID)).Scan(&ok); qerr != nil {
		s.log.Warn("cannot terminate the silent walsender", "pid", busy.PID, "err", qerr)
	}
	s.log.Warn("terminating the silent walsender of the previous session, which still holds the slot", "pid", busy.PID, "slot", s.cfg.Slot, "signalled", ok)
	return &staleWalsenderError{pid: s.silentPID, terminated: ok}
}

// replicationTimeout is cfg.ReplicationTimeout, or by default the server's
// wal_sender_timeout (at least 30 s; 5 min when the server has none, or it
// could not be read): a busy walsender that cannot read the collector's
// replies sends a keepalive after half of it, so a live one is always
// heard within it.
func (s *session) replicationTimeout(walSenderTimeout time.Duration) time.Duration {
	if s.cfg.ReplicationTimeout > 0 {
		return s.cfg.ReplicationTimeout
	}
	if walSenderTimeout <= 0 {
		return 5 * time.Minute
	}
	return max(walSenderTimeout, 30*time.Second)
}
