package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/backfill"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// transient errors end a session but not the process: the server restarted
// or the network failed. Everything else needs the user.
func transient(err error) bool {
	var restart *restartError
	if errors.As(err, &restart) {
		return true
	}
	// The backfill engine was interrupted (its connection failed, a
	// standby cancelled a read): a new session (after the usual wait, in
	// case the cause persists) resumes its job.
	if errors.Is(err, backfill.ErrInterrupted) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57: operator intervention (shutdown,
		// crash recovery, "cannot connect now"); 40001: how a standby
		// cancels a query for a conflict with recovery (an initial
		// snapshot read there: the next session goes on with it).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57") || pgErr.Code == "40001"
	}
	// NATS unreachable or slow while a session (re)starts: the client
	// reconnects by itself.
	if natsconn.Transient(err) {
		return true
	}
	// A walsender that went silent, or still holds the slot after it: the
	// session is made again.
	var silent *replication.SilentError
	var stale *staleWalsenderError
	if errors.As(err, &silent) || errors.As(err, &stale) {
		return true
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed)
}

// unreachable errors say no server could be connected to, or none that
// accepts writes (target_session_attrs=read-write while a standby is not
// promoted yet).
func unreachable(err error) bool {
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr)
}

// ConnectReplication opens a replication connection. Text values are
// rendered in fixed formats regardless of server defaults, so routers can
// parse them. Server notices on it go to log (nil: dropped) and to observe
// (nil: none): a walsender says only there why it waits (e.g. for a
// standby named in synchronized_standby_slots), and PostgreSQL 18 says
// only there that it skips changes (a publication missing at a change).
func ConnectReplication(ctx context.Context, dsn string, log *slog.Logger, observe func(*pgconn.Notice)) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("bad --dsn: %w", ConnError(err))
	}
	if log != nil || observe != nil {
		pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			if log != nil {
				logNotice(log, n)
			}
			if observe != nil {
				observe(n)
			}
		}
	}
	pc.RuntimeParams["replication"] = "database"
	pc.RuntimeParams["application_name"] = "pgjet-collector"
	for _, p := range wire.TextFormat {
		pc.RuntimeParams[p.Name] = p.Value
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("replication connection to %s: %w", redact.DSN(dsn), ConnError(err))
	}
	return conn, nil
}

// logNotice logs a server notice at the level its severity says.
func logNotice(log *slog.Logger, n *pgconn.Notice) {
	level := slog.LevelInfo
	switch n.SeverityUnlocalized {
	case "WARNING":
		level = slog.LevelWarn
	case "DEBUG", "LOG":
		level = slog.LevelDebug
	}
	args := []any{"severity", n.SeverityUnlocalized, "code", n.Code}
	if n.Detail != "" {
		args = append(args, "detail", n.Detail)
	}
	if n.Hint != "" {
		args = append(args, "hint", n.Hint)
	}
	log.Log(context.Background(), level, "PostgreSQL says on the replication connection: "+n.Message, args...)
}

// ConnError shortens pgconn's errors, which repeat the DSN (and so could
// leak a password), to their cause, keeping the cause for errors.As.
func ConnError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &shortError{msg: pgErr.Message, err: err}
	}
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		cause = ce.Unwrap()
	}
	// Several connection attempts (addresses, TLS modes) come back as
	// several lines, often the same: keep one line.
	var lines []string
	for _, l := range strings.Split(cause.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return &shortError{msg: strings.Join(lines, "; "), err: err}
}

type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }
