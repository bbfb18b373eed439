package command

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/collector/internal/ddlcapture"
	"github.com/pgjet/pgjet/collector/internal/pubwatch"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/wire"
)

// checkStream reports what makes the stream differ from the tables as a
// consumer reading them would see them: row filters and column lists,
// generated columns, how partitions are named; and the standby and DDL
// capture. What the server can do is probed from its catalogs.
func checkStream(ctx context.Context, cfg config, conn *pgx.Conn, srv server, r *opcheck.Report) {
	checkStandbyDecoding(ctx, cfg, conn, srv, r)
	f, err := pubwatch.Probe(ctx, conn)
	if err != nil {
		r.Fail(err.Error(), "")
		return
	}
	st, ok, err := pubwatch.Read(ctx, conn, f, cfg.publication)
	if err != nil {
		r.Fail(err.Error(), "")
		return
	}
	if ok {
		pub := pgx.Identifier{cfg.publication}.Sanitize()
		for _, t := range st.Tables {
			if t.RowFilter != "" {
				r.Warn(fmt.Sprintf("table %s is published with a row filter (WHERE %s): rows outside it never arrive, an UPDATE that moves a row into it arrives as an INSERT, one that moves a row out of it as a DELETE", t.Name, t.RowFilter),
					fmt.Sprintf("if consumers must see every row: ALTER PUBLICATION %s SET TABLE ... %s without WHERE", pub, t.Name))
			}
			if t.Columns != nil {
				r.Warn(fmt.Sprintf("table %s is published with a column list (%s): its other columns never arrive, in any event", t.Name, strings.Join(t.Columns, ", ")),
					fmt.Sprintf("if consumers need them: ALTER PUBLICATION %s SET TABLE ... %s without a column list", pub, t.Name))
			}
		}
		checkGenerated(ctx, cfg, conn, f, st, r)
		checkPartitions(ctx, cfg, conn, st, r)
	}
	if on, err := ddlcapture.Installed(ctx, conn); err == nil && on {
		r.OK("DDL capture is installed: each DDL command arrives as a %s message", wire.DDLPrefix)
	} else if err == nil {
		r.OK("DDL capture is not installed (optional: pgjet-collector ddl-capture install, see docs/postgres.md)")
	}
}

// checkStandbyDecoding: a standby can decode from PostgreSQL 16 on.
func checkStandbyDecoding(ctx context.Context, cfg config, conn *pgx.Conn, srv server, r *opcheck.Report) {
	if !srv.recovery {
		return
	}
	var decodes, feedback bool
	if err := conn.QueryRow(ctx, `SELECT to_regproc('pg_catalog.pg_log_standby_snapshot') IS NOT NULL, current_setting('hot_standby_feedback') = 'on'`).Scan(&decodes, &feedback); err != nil {
		r.Fail(fmt.Sprintf("cannot read the standby's settings: %v", err), "")
		return
	}
	if !decodes {
		r.Fail(fmt.Sprintf("the server is a standby running PostgreSQL %s, which cannot decode logical replication (standbys can from PostgreSQL 16)", srv.version), "point --dsn at the primary")
		return
	}
	r.OK("the server is a standby: the collector decodes there (PostgreSQL 16+); the publication is created and changed on the primary")
	if !feedback {
		r.Warn("hot_standby_feedback is off on the standby: the primary may remove catalog rows the slot still needs, and the slot is then invalidated (conflicting)",
			"set hot_standby_feedback = on on the standby, with a physical slot on the primary (primary_slot_name)")
	}
	if cfg.heartbeat > 0 && cfg.heartbeatDSN == "" {
		r.Fail("--heartbeat writes into --dsn, a standby, which cannot write", "give --heartbeat-dsn naming the primary")
	}
}

// checkGenerated: generated columns are sent only when stored and
// published (publish_generated_columns, PostgreSQL 18).
func checkGenerated(ctx context.Context, cfg config, conn *pgx.Conn, f pubwatch.Features, st pubwatch.State, r *opcheck.Report) {
	names := make([]string, len(st.Tables))
	for i, t := range st.Tables {
		names[i] = t.Name
	}
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) || '.' || quote_ident(a.attname), a.attgenerated::text
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attrelid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
		ORDER BY 1`, names)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read generated columns: %v", err), "")
		return
	}
	type gen struct{ col, kind string }
	cols, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (gen, error) {
		var g gen
		return g, row.Scan(&g.col, &g.kind)
	})
	if err != nil || len(cols) == 0 {
		return
	}
	var stored, virtual []string
	for _, g := range cols {
		if g.kind == "s" {
			stored = append(stored, g.col)
		} else {
			virtual = append(virtual, g.col)
		}
	}
	pub := pgx.Identifier{cfg.publication}.Sanitize()
	switch {
	case len(stored) == 0:
	case !f.GeneratedColumns:
		r.Warn(fmt.Sprintf("stored generated columns %s never arrive: this server does not publish generated columns (PostgreSQL 18 can)", strings.Join(stored, ", ")),
			"consumers compute them, or upgrade to PostgreSQL 18 and set publish_generated_columns = stored")
	case st.GeneratedColumns != "stored":
		r.Warn(fmt.Sprintf("stored generated columns %s never arrive: publication %s has publish_generated_columns = %s", strings.Join(stored, ", "), cfg.publication, st.GeneratedColumns),
			fmt.Sprintf("ALTER PUBLICATION %s SET (publish_generated_columns = stored)", pub))
	default:
		r.OK("stored generated columns are published (%s)", strings.Join(stored, ", "))
	}
	if len(virtual) > 0 {
		r.Warn(fmt.Sprintf("virtual generated columns %s never arrive: Postgres publishes stored generated columns only", strings.Join(virtual, ", ")),
			"consumers compute them, or make them STORED")
	}
}

// checkPartitions says how changes of published partitioned tables are
// named.
func checkPartitions(ctx context.Context, cfg config, conn *pgx.Conn, st pubwatch.State, r *opcheck.Report) {
	var parted []string
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'p' AND c.oid IN (SELECT pr.prrelid FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1)
		ORDER BY 1`, cfg.publication)
	if err == nil {
		parted, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(parted) == 0 {
		return
	}
	if st.ViaRoot {
		r.OK("partitioned tables %s: changes of every partition arrive named by the root table (publish_via_partition_root on)", strings.Join(parted, ", "))
	} else {
		r.OK("partitioned tables %s: changes arrive named by each partition, new ones included (publish_via_partition_root off; turn it on to name them by the root)", strings.Join(parted, ", "))
	}
}
