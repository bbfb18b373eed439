package pgsetup

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CheckStandby reports whether the server is a standby, refusing one that
// cannot decode. Logical decoding on a standby came with PostgreSQL 16,
// together with pg_log_standby_snapshot(): its presence is the probe.
func CheckStandby(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var standby, decodes bool
	var version string
	err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), to_regproc('pg_catalog.pg_log_standby_snapshot') IS NOT NULL, current_setting('server_version')`).
		Scan(&standby, &decodes, &version)
	if err != nil {
		return false, fmt.Errorf("check whether the server is a standby: %w", err)
	}
	if standby && !decodes {
		return true, fmt.Errorf("the server is a standby running PostgreSQL %s, which cannot decode logical replication (standbys can from PostgreSQL 16): point --dsn at the primary", version)
	}
	return standby, nil
}
