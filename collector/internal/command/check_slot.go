package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/opcheck"
)

// checkInvalidated FAILs an invalidated slot with Postgres's reason, the
// changes lost and the way out; it reports whether the slot is invalidated.
func checkInvalidated(ctx context.Context, cfg config, conn *pgx.Conn, r *opcheck.Report) bool {
	st, err := pgsetup.ReadSlot(ctx, conn, cfg.slot)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read slot %s: %v", cfg.slot, err), "")
		return true
	}
	if !st.Invalidated() {
		return false
	}
	fix := "start the collector with --recreate-slot (it drops the slot, tells consumers with a gap notice and creates it again; or --auto-recreate-slot N); " + gapBackfill(cfg) + "; to keep it from happening again, raise max_slot_wal_keep_size and alert on the slot's lag"
	if st.Invalidation == "idle_timeout" {
		fix = strings.Replace(fix, "raise max_slot_wal_keep_size", "raise idle_replication_slot_timeout", 1)
	}
	r.Fail(fmt.Sprintf("slot %s was invalidated (%s: %s): the changes committed after %s, its confirmed position, can no longer be streamed (WAL is at %s now)",
		cfg.slot, st.Invalidation, pgsetup.InvalidationCause(st.Invalidation), pglogrepl.LSN(st.ConfirmedFlush), pglogrepl.LSN(st.CurrentWAL)), fix)
	return true
}

// peekTimeout bounds checkSlotDecodes: a slot far behind may decode a lot
// of WAL before its next published change.
const peekTimeout = 10 * time.Second

// checkSlotDecodes finds a publication dropped and created again after the
// slot's position, which the slot can never decode past. A publication
// whose catalog row is newer than the slot's catalog_xmin may be one; only
// then, and only while no process holds the slot, it decodes the slot's
// next transaction without consuming it
// (pg_logical_slot_peek_binary_changes: the slot does not move), as the
// collector would. (A collector starting in that moment finds the slot
// busy, as with another collector.)
func checkSlotDecodes(ctx context.Context, cfg config, conn *pgx.Conn, r *opcheck.Report, facts *pgFacts) {
	s := facts.slot
	if s == nil || s.active || s.walStatus == "lost" || s.plugin != "pgoutput" {
		return
	}
	var newer bool
	err := conn.QueryRow(ctx, `SELECT coalesce(age(p.xmin) < age(s.catalog_xmin), false) FROM pg_publication p, pg_replication_slots s
		WHERE p.pubname = $1 AND s.slot_name = $2`, cfg.publication, cfg.slot).Scan(&newer)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !newer {
		return
	}
	if err != nil {
		r.Warn(fmt.Sprintf("cannot check that slot %s decodes: %v", cfg.slot, err), "")
		return
	}
	pctx, cancel := context.WithTimeout(ctx, peekTimeout+5*time.Second)
	defer cancel()
	tx, err := conn.Begin(pctx)
	if err != nil {
		r.Warn(fmt.Sprintf("cannot check that slot %s decodes: %v", cfg.slot, err), "")
		return
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(pctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", peekTimeout.Milliseconds())); err != nil {
		r.Warn(fmt.Sprintf("cannot check that slot %s decodes: %v", cfg.slot, err), "")
		return
	}
	var n int
	noticed := len(facts.notices)
	err = tx.QueryRow(pctx, `SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, 1, 'proto_version', '1', 'publication_names', $2)`,
		cfg.slot, pgx.Identifier{cfg.publication}.Sanitize()).Scan(&n)
	for _, notice := range facts.notices[noticed:] {
		if skipped := pgsetup.PublicationSkipped(notice, cfg.slot, cfg.publication); skipped != nil && err == nil {
			err = skipped
		}
	}
	var pgErr *pgconn.PgError
	var gone *pgsetup.PublicationGoneError
	switch {
	case err == nil:
		r.OK("slot %s decodes with publication %s, which changed after the slot's position (its next transaction peeked, the slot not moved)", cfg.slot, cfg.publication)
	case errors.As(pgsetup.ExplainStreamError(err, cfg.slot, cfg.publication), &gone):
		r.Fail(fmt.Sprintf("slot %s cannot decode past a change%s: publication %s did not exist when it was made (it was dropped, and perhaps created again, after the slot's position); every collector start fails there",
			cfg.slot, at(gone.At), cfg.publication),
			fmt.Sprintf("drop the slot (SELECT pg_drop_replication_slot('%s')), start the collector with --recreate-slot (the changes committed since are missing: a gap notice tells consumers); %s", cfg.slot, gapBackfill(cfg)))
	case errors.As(err, &pgErr) && pgErr.Code == pgsetup.SQLStateObjectInUse:
		r.OK("slot %s is in use: its decoding was not peeked", cfg.slot)
	case errors.As(err, &pgErr) && pgErr.Code == "57014": // query_canceled: the timeout
		r.Warn(fmt.Sprintf("slot %s: no published change decoded within %s (a long backlog?): whether it decodes was not checked", cfg.slot, opcheck.Dur(peekTimeout)), "")
	default:
		r.Warn(fmt.Sprintf("cannot check that slot %s decodes: %v", cfg.slot, err), "")
	}
}

func at(lsn string) string {
	if lsn == "" {
		return ""
	}
	return " at " + lsn
}

// statusInvalidated adds the invalidation of the slot to status: the
// reason, the changes lost and the way out.
func statusInvalidated(ctx context.Context, cfg config, conn *pgx.Conn, w *statusWriter) {
	st, err := pgsetup.ReadSlot(ctx, conn, cfg.slot)
	if err != nil || !st.Invalidated() {
		return
	}
	w.line("invalidated", "%s (%s): the changes committed after %s (its confirmed position) up to its re-creation are lost to the stream (WAL at %s: %s so far); restart the collector with --recreate-slot; %s",
		st.Invalidation, pgsetup.InvalidationCause(st.Invalidation), pglogrepl.LSN(st.ConfirmedFlush), pglogrepl.LSN(st.CurrentWAL), opcheck.Bytes(int64(st.CurrentWAL-st.ConfirmedFlush)), gapBackfill(cfg))
}

// gapBackfill says what reads the published tables again after the slot is
// created again: the collector requests that backfill itself unless the
// snapshot mode is never (session/recreate.go).
func gapBackfill(cfg config) string {
	if cfg.snap.mode == snapshot.ModeNever {
		return "then backfill the published tables (pgjet-collector backfill): with snapshot mode never the collector does not"
	}
	return "the collector then backfills the published tables itself"
}
