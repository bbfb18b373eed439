package pgsetup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CREATE_REPLICATION_SLOT returns only at a consistent point: after every
// transaction that was running when it started has ended (and, on a
// standby, after the primary has logged its running transactions). Behind
// an idle-in-transaction session it waits for as long as that session
// lives, saying nothing. createSlot says what it waits for, first after
// slotWaitFirst, then every slotWaitEvery.
var (
	slotWaitFirst = 3 * time.Second
	slotWaitEvery = 30 * time.Second
)

// createSlot runs create, which creates the slot on repl, reporting on
// conn (a normal connection, unused meanwhile) what the creation waits for.
func createSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot string, log *slog.Logger, create func() error) error {
	done := make(chan error, 1)
	go func() { done <- create() }()
	began := time.Now()
	t := time.NewTimer(slotWaitFirst)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if waited := time.Since(began); waited >= slotWaitFirst {
				log.Info("replication slot created after waiting", "slot", slot, "waited", waited.Round(time.Second))
			}
			return err
		case <-t.C:
			t.Reset(slotWaitEvery)
			waited := time.Since(began).Round(time.Second)
			if msg, err := slotWait(ctx, conn, repl.PID()); err != nil {
				log.Warn(fmt.Sprintf("creating replication slot %s has waited %s; cannot tell for what", slot, waited), "err", err)
			} else {
				log.Warn(fmt.Sprintf("creating replication slot %s has waited %s: %s", slot, waited, msg), "slot", slot)
			}
		}
	}
}

// slotWait describes what the walsender pid waits for.
func slotWait(ctx context.Context, conn *pgx.Conn, pid uint32) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		recovery                           bool
		blocker                            *int32
		user, app, state, xid, query, tmpl string
		since                              *time.Time
		others                             int
	)
	err := conn.QueryRow(qctx, `SELECT pg_is_in_recovery(), a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), coalesce(a.state, ''),
		a.xact_start, coalesce(a.backend_xid::text, ''), left(regexp_replace(coalesce(a.query, ''), '\s+', ' ', 'g'), 120),
		(SELECT count(*) FROM pg_stat_activity b WHERE b.backend_xid IS NOT NULL AND b.pid <> $1)::int
		FROM (SELECT 1) one LEFT JOIN pg_stat_activity a ON a.pid = ANY(pg_blocking_pids($1))
		ORDER BY a.xact_start NULLS LAST LIMIT 1`, int32(pid)).Scan(&recovery, &blocker, &user, &app, &state, &since, &xid, &query, &others)
	if err != nil {
		return "", err
	}
	if recovery {
		return "on a standby, a slot waits for the primary to log its running transactions, which it does every 15 s while anything writes there: write on the primary, or run SELECT pg_log_standby_snapshot() there (--heartbeat with --heartbeat-dsn keeps the primary writing)", nil
	}
	if blocker == nil {
		var gid string
		var prepared *time.Time
		err := conn.QueryRow(qctx, `SELECT gid, prepared FROM pg_prepared_xacts ORDER BY prepared LIMIT 1`).Scan(&gid, &prepared)
		if err == nil {
			return fmt.Sprintf("a slot starts where no transaction is running, and prepared transaction %q (since %s) is: COMMIT PREPARED or ROLLBACK PREPARED it", gid, prepared.Format(time.RFC3339)), nil
		}
		return fmt.Sprintf("a slot starts where no transaction is running, and transactions with an xid are running (%d)", others), nil
	}
	tmpl = "a slot starts where no transaction is running, and pid %d (user %s, application %q, %s since %s, xid %s) has one open: %q (transactions with an xid running in all: %d). End it, or end its session: SELECT pg_terminate_backend(%d)"
	started := "unknown"
	if since != nil {
		started = since.Format(time.RFC3339)
	}
	return fmt.Sprintf(tmpl, *blocker, user, app, state, started, xid, query, others, *blocker), nil
}
