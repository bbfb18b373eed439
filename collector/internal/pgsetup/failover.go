package pgsetup

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FailoverVersion is the first PostgreSQL major with failover slots
// (synchronized to standbys by sync_replication_slots).
const FailoverVersion = 17

// ServerMajor is the server's major version.
func ServerMajor(ctx context.Context, conn *pgx.Conn) (int, error) {
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return 0, fmt.Errorf("read server_version_num: %w", err)
	}
	return num / 10000, nil
}

// CheckFailover refuses --failover on a server without failover slots,
// before any slot is created.
func CheckFailover(ctx context.Context, conn *pgx.Conn, want bool) error {
	if !want {
		return nil
	}
	major, err := ServerMajor(ctx, conn)
	if err != nil {
		return err
	}
	if major < FailoverVersion {
		return fmt.Errorf("--failover (source.config.failover) needs PostgreSQL %d or later, this server is %d: drop the option, or upgrade; before 17 a standby has no copy of the slot, so after a promotion the slot must be recreated (--recreate-slot: a gap notice, then a backfill of the published tables)",
			FailoverVersion, major)
	}
	return nil
}

// SetFailover makes slot a failover slot unless it is one: a slot just
// created, or one made before --failover was given. conn is a normal
// connection, repl a replication connection that does not hold the slot
// (ALTER_REPLICATION_SLOT needs it inactive). Only after CheckFailover.
func SetFailover(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot string, log *slog.Logger) error {
	var failover bool
	if err := conn.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&failover); err != nil {
		return fmt.Errorf("look up replication slot %s: %w", slot, err)
	}
	if failover {
		return nil
	}
	cmd := fmt.Sprintf("ALTER_REPLICATION_SLOT %s (FAILOVER true)", pgx.Identifier{slot}.Sanitize())
	if _, err := repl.Exec(ctx, cmd).ReadAll(); err != nil {
		return fmt.Errorf("make replication slot %s a failover slot: %w", slot, userError(err))
	}
	log.Info("replication slot is a failover slot now: standbys with sync_replication_slots = on keep a copy of it", "slot", slot)
	return nil
}
