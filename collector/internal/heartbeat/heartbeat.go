// Package heartbeat writes into the source database now and then, so that
// its replication slot moves while the published tables are idle.
//
// WAL is shared by every database of a cluster. A slot's confirmed position
// moves when its collector stores a transaction, or when a keepalive tells
// it the walsender has nothing more to send; a walsender that is always
// behind (other databases write faster than it catches up) sends no such
// keepalive, and the slot then holds all the WAL the other databases write.
// A heartbeat is a small transaction in this database: the walsender sends
// it, the collector confirms past it (without storing it), and the slot
// moves.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// Config configures the heartbeat.
type Config struct {
	// Interval between two heartbeats; 0: no heartbeat.
	Interval time.Duration
	// DSN is where heartbeats are written: the source database, or its
	// primary when the collector decodes from a standby (a standby cannot
	// write).
	DSN string
	// Query, when set, is run instead of writing a heartbeat message: an
	// action query of the user's, e.g. an UPDATE of a published table, so
	// that consumers see the heartbeats too.
	Query string
	// Source is the message's content: which collector wrote it.
	Source string
}

// Stats counts heartbeats, for metrics.
type Stats struct {
	Written atomic.Uint64
	Failed  atomic.Uint64
}

// Heartbeat writes heartbeats on a connection of its own.
type Heartbeat struct {
	cfg   Config
	stats *Stats
	log   *slog.Logger
	conn  *pgx.Conn
	// failing: the last beat failed (logged once until one succeeds).
	failing bool
}

// New returns a heartbeat counting into stats (nil: its own).
func New(cfg Config, stats *Stats, log *slog.Logger) *Heartbeat {
	if stats == nil {
		stats = new(Stats)
	}
	return &Heartbeat{cfg: cfg, stats: stats, log: log}
}

// Check writes a first heartbeat: an error the user must fix (a standby
// where the primary was meant, a role that may not write the message, a
// broken query) comes back as one line; a server that cannot be reached is
// only logged, for Run to retry.
func (h *Heartbeat) Check(ctx context.Context) error {
	lsn, err := h.beat(ctx)
	switch {
	case err == nil:
		h.log.Info("heartbeat", "every", h.cfg.Interval, "dsn", redact.DSN(h.cfg.DSN), "lsn", lsn, "query", h.cfg.Query != "")
		return nil
	case userError(err):
		return err
	}
	h.log.Warn("heartbeat not written; retrying", "err", err)
	h.failing = true
	return nil
}

// Run writes a heartbeat every interval until ctx ends.
func (h *Heartbeat) Run(ctx context.Context) {
	defer h.close()
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lsn, err := h.beat(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !h.failing {
				h.log.Warn("heartbeat not written; retrying every interval", "every", h.cfg.Interval, "err", err)
			}
			h.failing = true
		case h.failing:
			h.log.Info("heartbeat written again", "lsn", lsn)
			h.failing = false
		default:
			h.log.Debug("heartbeat", "lsn", lsn)
		}
	}
}

// beat writes one heartbeat and returns the position of its commit (0 for
// an action query), connecting first if needed.
func (h *Heartbeat) beat(ctx context.Context) (lsn pglogrepl.LSN, err error) {
	defer func() {
		if err != nil {
			h.stats.Failed.Add(1)
			h.close() // connect (and check the server) again next time
			return
		}
		h.stats.Written.Add(1)
	}()
	bctx, cancel := context.WithTimeout(ctx, max(h.cfg.Interval, 10*time.Second))
	defer cancel()
	if h.conn == nil {
		cfg, err := pgx.ParseConfig(h.cfg.DSN)
		if err != nil {
			return 0, fmt.Errorf("heartbeat: bad DSN: %w", err)
		}
		cfg.RuntimeParams["application_name"] = "pgjet-collector heartbeat"
		// The heartbeat must reach the WAL on disk to be sent: never
		// asynchronously committed, whatever the server's default.
		cfg.RuntimeParams["synchronous_commit"] = "local"
		if h.conn, err = pgx.ConnectConfig(bctx, cfg); err != nil {
			h.conn = nil
			return 0, fmt.Errorf("heartbeat: connect to %s: %w", redact.DSN(h.cfg.DSN), err)
		}
		var standby bool
		if err := h.conn.QueryRow(bctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil {
			return 0, fmt.Errorf("heartbeat: %w", err)
		}
		if standby {
			return 0, &UserError{fmt.Errorf("heartbeat: %s is a standby, which cannot write: give --heartbeat-dsn (spec.source.config.heartbeat.dsn) naming the primary", redact.DSN(h.cfg.DSN))}
		}
	}
	if h.cfg.Query != "" {
		if _, err := h.conn.Exec(bctx, h.cfg.Query); err != nil {
			return 0, explain(fmt.Errorf("heartbeat query: %w", err))
		}
		return 0, nil
	}
	// Transactional: its commit flushes it to disk, on every version (a
	// non-transactional message is flushed by a later commit only, before
	// PostgreSQL 17's flush argument).
	var text string
	if err := h.conn.QueryRow(bctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, wire.HeartbeatPrefix, h.cfg.Source).Scan(&text); err != nil {
		return 0, explain(fmt.Errorf("heartbeat: %w", err))
	}
	return pglogrepl.ParseLSN(text)
}

func (h *Heartbeat) close() {
	if h.conn != nil {
		h.conn.Close(context.Background())
		h.conn = nil
	}
}

// SQLSTATEs of the mistakes a user can make.
const (
	readOnlyTransaction   = "25006" // a standby
	insufficientPrivilege = "42501"
)

// explain adds what to do to the errors a user can fix.
func explain(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case readOnlyTransaction:
		return &UserError{fmt.Errorf("%w: the heartbeat's server or session is read-only: give --heartbeat-dsn naming the primary", err)}
	case insufficientPrivilege:
		return &UserError{fmt.Errorf("%w: the heartbeat's role needs the REPLICATION attribute (pg_logical_emit_message) or the privileges of --heartbeat-query", err)}
	}
	if pgErr.Code[:2] == "42" { // syntax error or access rule violation: a broken query
		return &UserError{err}
	}
	return err
}

// UserError is a heartbeat error that retrying does not fix.
type UserError struct{ err error }

func (e *UserError) Error() string { return e.err.Error() }
func (e *UserError) Unwrap() error { return e.err }

func userError(err error) bool {
	var ue *UserError
	return errors.As(err, &ue)
}
