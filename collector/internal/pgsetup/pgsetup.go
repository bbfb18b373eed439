// Package pgsetup checks and prepares a PostgreSQL database for the
// collector: wal_level, the publication, the replication slot. Problems a
// user can fix come back as one line saying what to do.
package pgsetup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/shared/pgname"
)

// Config names what the collector reads.
type Config struct {
	Slot        string
	Publication string
	// Tables ("schema.table") to create the publication with, or to add to
	// it; empty means the publication must exist.
	Tables []string
}

// SlotBusyError says another process holds the slot.
type SlotBusyError struct {
	Slot string
	PID  int32
}

func (e *SlotBusyError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("replication slot %q is in use by another process: is another collector running? (start this one with --standby to wait for it)", e.Slot)
	}
	return fmt.Sprintf("replication slot %q is in use by another process (pid %d): is another collector running? (start this one with --standby to wait for it)", e.Slot, e.PID)
}

// SlotMissingError says the slot is gone although the raw stream holds
// records read from it: it was dropped, and what was committed meanwhile is
// not in the stream. Recreating it silently would hide that loss.
type SlotMissingError struct {
	Slot, Source, Last string
}

func (e *SlotMissingError) Error() string {
	return fmt.Sprintf("replication slot %q does not exist, but the raw stream holds records of source %q up to %s: the slot was dropped and changes committed since may be missing; to start again from now, accepting that gap, pass --recreate-slot",
		e.Slot, e.Source, e.Last)
}

// Slot is the state of the replication slot at start.
type Slot struct {
	ConfirmedFlush uint64
	Created        bool
	// Snapshot names the snapshot a slot created now exported
	// (CreateOptions.ExportSnapshot); valid while the replication
	// connection stays idle. ConsistentPoint is where the slot starts.
	Snapshot        string
	ConsistentPoint uint64
}

// CreateOptions say how a missing slot is created.
type CreateOptions struct {
	// ExportSnapshot exports the snapshot of the slot's consistent point,
	// for an initial snapshot: the replication connection must then stay
	// idle until every reader has imported it.
	ExportSnapshot bool
}

// CheckServer verifies the server can do logical replication.
func CheckServer(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("wal_level is %q but must be logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL", level)
	}
	return nil
}

// EnsurePublication checks the publication, creating it or adding tables when
// c.Tables is set, and warns about tables whose updates and deletes would fail.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, c Config, log *slog.Logger) error {
	var exists, allTables bool
	err := conn.QueryRow(ctx, "SELECT true, puballtables FROM pg_publication WHERE pubname = $1", c.Publication).Scan(&exists, &allTables)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up publication %s: %w", c.Publication, err)
	}
	if !exists && len(c.Tables) == 0 {
		return fmt.Errorf("publication %q does not exist: create it (CREATE PUBLICATION %s FOR TABLE ...) or pass --tables schema.table,... to let pgjet create it",
			c.Publication, pgx.Identifier{c.Publication}.Sanitize())
	}
	var idents []string
	for _, t := range c.Tables {
		id, err := tableIdent(t)
		if err != nil {
			return err
		}
		idents = append(idents, id)
	}
	if !exists {
		sql := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pgx.Identifier{c.Publication}.Sanitize(), strings.Join(idents, ", ")) + publicationOptions(ctx, conn)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create publication %s: %w", c.Publication, userError(err))
		}
		log.Info("created publication", "publication", c.Publication, "tables", c.Tables)
	} else if !allTables {
		for i, t := range c.Tables {
			var in bool
			err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
				WHERE p.pubname = $1 AND pr.prrelid = $2::regclass)`, c.Publication, idents[i]).Scan(&in)
			if err != nil {
				return fmt.Errorf("check table %s: %w", t, userError(err))
			}
			if !in {
				sql := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pgx.Identifier{c.Publication}.Sanitize(), idents[i])
				if _, err := conn.Exec(ctx, sql); err != nil {
					return fmt.Errorf("add %s to publication %s: %w", t, c.Publication, userError(err))
				}
				log.Info("added table to publication", "publication", c.Publication, "table", t)
			}
		}
	}
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_publication_tables pt
		JOIN pg_namespace n ON n.nspname = pt.schemaname
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1 AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (
			SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))`, c.Publication)
	if err != nil {
		return fmt.Errorf("check replica identity: %w", err)
	}
	noIdent, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("check replica identity: %w", err)
	}
	for _, t := range noIdent {
		log.Warn("table has no replica identity: UPDATE and DELETE on it fail while it is in a publication; add a primary key or run ALTER TABLE "+t+" REPLICA IDENTITY FULL", "table", t)
	}
	return nil
}

func tableIdent(t string) (string, error) {
	name, err := pgname.ParseTable(t, true)
	if err != nil {
		return "", fmt.Errorf("--tables: %w", err)
	}
	return name.Ident(), nil
}

// EnsureSlot checks the slot, creating it (pgoutput) on conn, a replication
// connection, when it is missing.
// A missing slot is an error (*SlotMissingError) when missing is not nil;
// an invalidated one is a *SlotInvalidatedError.
func EnsureSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot string, missing *SlotMissingError, opts CreateOptions, log *slog.Logger) (Slot, error) {
	st, err := ReadSlot(ctx, conn, slot)
	if err != nil {
		return Slot{}, err
	}
	if !st.Exists {
		if missing != nil {
			return Slot{}, missing
		}
		action := "NOEXPORT_SNAPSHOT"
		if opts.ExportSnapshot {
			action = ExportSnapshotAction(ctx, conn)
		}
		var res pglogrepl.CreateReplicationSlotResult
		if err := createSlot(ctx, conn, repl, slot, log, func() error {
			var err error
			res, err = pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput",
				pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
			return err
		}); err != nil {
			return Slot{}, fmt.Errorf("create replication slot %s: %w", slot, userError(err))
		}
		log.Info("created replication slot", "slot", slot, "consistent_point", res.ConsistentPoint, "exported_snapshot", res.SnapshotName)
		s, err := EnsureSlot(ctx, conn, repl, slot, nil, opts, log)
		s.Created, s.Snapshot = true, res.SnapshotName
		if lsn, perr := pglogrepl.ParseLSN(res.ConsistentPoint); perr == nil {
			s.ConsistentPoint = uint64(lsn)
		}
		return s, err
	}
	if st.Plugin != "pgoutput" {
		return Slot{}, fmt.Errorf("replication slot %q uses plugin %q, pgjet needs pgoutput: choose another --slot", slot, st.Plugin)
	}
	if current := conn.Config().Database; st.Database != current {
		return Slot{}, fmt.Errorf("replication slot %q belongs to database %q, not %q: choose another --slot or connect to %s", slot, st.Database, current, st.Database)
	}
	// Before the holder: the walsender of an invalidated slot may not have
	// let go of it yet.
	if st.Invalidated() {
		return Slot{}, &SlotInvalidatedError{Slot: slot, Reason: st.Invalidation, From: st.ConfirmedFlush, Current: st.CurrentWAL}
	}
	if st.Active {
		return Slot{}, &SlotBusyError{Slot: slot, PID: st.PID}
	}
	return Slot{ConfirmedFlush: st.ConfirmedFlush}, nil
}

// ExportSnapshotAction exports the slot's snapshot: PostgreSQL 15's option
// syntax, the older keyword before it.
func ExportSnapshotAction(ctx context.Context, conn *pgx.Conn) string {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err == nil && version >= 150000 {
		return "(SNAPSHOT 'export')"
	}
	return "EXPORT_SNAPSHOT"
}

// userError keeps a Postgres error to its message and hint.
func userError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Hint != "" {
			return fmt.Errorf("%s (%s)", pgErr.Message, pgErr.Hint)
		}
		return errors.New(pgErr.Message)
	}
	return err
}
