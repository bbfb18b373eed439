// Package pubwatch reads what a publication publishes, and watches it while
// the collector runs: tables added or removed (by ALTER PUBLICATION, by a
// table created in a schema published with TABLES IN SCHEMA, or under FOR
// ALL TABLES), options changed. Postgres applies such changes to the
// stream from the transaction after them, without telling the client: the
// collector logs them, so that an operator can tell why a table's changes
// start or stop.
package pubwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is what a publication publishes.
type State struct {
	AllTables bool
	// Operations published: insert, update, delete, truncate.
	Operations []string
	// ViaRoot: changes of partitions are published as their root
	// table's (publish_via_partition_root).
	ViaRoot bool
	// GeneratedColumns is publish_generated_columns ("none" or "stored"),
	// "" where the server has no such option (before PostgreSQL 18: never
	// published).
	GeneratedColumns string
	// Schemas published whole (TABLES IN SCHEMA), sorted.
	Schemas []string
	// Tables published, sorted by name.
	Tables []Table
}

// Table is one published table.
type Table struct {
	Name string // schema.table, quoted where needed
	// RowFilter is its WHERE clause; "" when none.
	RowFilter string
	// Columns lists the published columns when a column list restricts
	// them; nil when every column is published.
	Columns []string
}

// Features are the publication options the server has, probed from its
// catalogs rather than assumed from its version.
type Features struct {
	ViaRoot          bool // pg_publication.pubviaroot (13+)
	GeneratedColumns bool // pg_publication.pubgencols (18+)
	Schemas          bool // pg_publication_namespace (15+)
	Filters          bool // pg_publication_tables.rowfilter and attnames (15+)
}

// Probe reads the server's Features.
func Probe(ctx context.Context, conn *pgx.Conn) (Features, error) {
	var f Features
	err := conn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubviaroot'),
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubgencols'),
		to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_publication_tables'::regclass AND attname = 'rowfilter')`).
		Scan(&f.ViaRoot, &f.GeneratedColumns, &f.Schemas, &f.Filters)
	if err != nil {
		return f, fmt.Errorf("probe publication features: %w", err)
	}
	return f, nil
}

// Read returns the publication's state; ok is false when it does not exist.
func Read(ctx context.Context, conn *pgx.Conn, f Features, pub string) (s State, ok bool, err error) {
	viaRoot, gencols := "false", "''"
	if f.ViaRoot {
		viaRoot = "pubviaroot"
	}
	if f.GeneratedColumns {
		gencols = "CASE pubgencols WHEN 's' THEN 'stored' ELSE 'none' END"
	}
	var ins, upd, del, trunc bool
	err = conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, `+viaRoot+`, `+gencols+`
		FROM pg_publication WHERE pubname = $1`, pub).Scan(&s.AllTables, &ins, &upd, &del, &trunc, &s.ViaRoot, &s.GeneratedColumns)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read publication %s: %w", pub, err)
	}
	for _, o := range []struct {
		on   bool
		name string
	}{{ins, "insert"}, {upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
		if o.on {
			s.Operations = append(s.Operations, o.name)
		}
	}
	if f.Schemas {
		rows, err := conn.Query(ctx, `SELECT quote_ident(n.nspname) FROM pg_publication_namespace pn
			JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid
			WHERE p.pubname = $1 ORDER BY 1`, pub)
		if err != nil {
			return s, false, fmt.Errorf("read publication %s schemas: %w", pub, err)
		}
		if s.Schemas, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return s, false, fmt.Errorf("read publication %s schemas: %w", pub, err)
		}
	}
	filters := "'', NULL::text[]"
	if f.Filters {
		// A column list is pg_publication_rel.prattrs (NULL: every
		// column); pg_publication_tables.attnames lists the published
		// columns either way.
		filters = `coalesce(pt.rowfilter, ''), (SELECT array_agg(a.attname::text ORDER BY a.attnum)
			FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
			JOIN pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs::int2[])
			WHERE p.pubname = pt.pubname AND pr.prrelid = format('%I.%I', pt.schemaname, pt.tablename)::regclass)`
	}
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', pt.schemaname, pt.tablename), `+filters+`
		FROM pg_publication_tables pt WHERE pt.pubname = $1 ORDER BY 1`, pub)
	if err != nil {
		return s, false, fmt.Errorf("read publication %s tables: %w", pub, err)
	}
	s.Tables, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Table, error) {
		var t Table
		return t, row.Scan(&t.Name, &t.RowFilter, &t.Columns)
	})
	if err != nil {
		return s, false, fmt.Errorf("read publication %s tables: %w", pub, err)
	}
	return s, true, nil
}

// Changes lists what differs from old to cur, one line each: the tables
// removed (whose changes are no longer streamed), the tables added, and
// the options changed.
func Changes(old, cur State) []string {
	var out []string
	was := map[string]Table{}
	for _, t := range old.Tables {
		was[t.Name] = t
	}
	is := map[string]Table{}
	for _, t := range cur.Tables {
		is[t.Name] = t
	}
	for _, t := range old.Tables {
		if _, ok := is[t.Name]; !ok {
			out = append(out, "table "+t.Name+" removed: its changes are no longer streamed")
		}
	}
	for _, t := range cur.Tables {
		o, ok := was[t.Name]
		if !ok {
			out = append(out, "table "+t.Name+" added: its changes are streamed from the transaction after the change")
			continue
		}
		if o.RowFilter != t.RowFilter {
			out = append(out, fmt.Sprintf("table %s row filter %q -> %q", t.Name, o.RowFilter, t.RowFilter))
		}
		if !slices.Equal(o.Columns, t.Columns) {
			out = append(out, fmt.Sprintf("table %s columns %s -> %s", t.Name, columns(o.Columns), columns(t.Columns)))
		}
	}
	if old.AllTables != cur.AllTables {
		out = append(out, fmt.Sprintf("FOR ALL TABLES %v -> %v", old.AllTables, cur.AllTables))
	}
	if !slices.Equal(old.Schemas, cur.Schemas) {
		out = append(out, fmt.Sprintf("TABLES IN SCHEMA %s -> %s", list(old.Schemas), list(cur.Schemas)))
	}
	if !slices.Equal(old.Operations, cur.Operations) {
		out = append(out, fmt.Sprintf("publish %s -> %s", list(old.Operations), list(cur.Operations)))
	}
	if old.ViaRoot != cur.ViaRoot {
		out = append(out, fmt.Sprintf("publish_via_partition_root %v -> %v: partitions' changes are now named by their %s", old.ViaRoot, cur.ViaRoot,
			map[bool]string{true: "root table", false: "own table"}[cur.ViaRoot]))
	}
	if old.GeneratedColumns != cur.GeneratedColumns {
		out = append(out, fmt.Sprintf("publish_generated_columns %s -> %s", old.GeneratedColumns, cur.GeneratedColumns))
	}
	return out
}

func columns(c []string) string {
	if c == nil {
		return "(all)"
	}
	return "(" + strings.Join(c, ", ") + ")"
}

func list(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// Watch reads the publication every interval, on a connection of its own
// to dsn, and logs how it differs from the state before, starting from
// last, until ctx ends. A failed read is retried at the next interval.
func Watch(ctx context.Context, dsn, pub string, every time.Duration, last State, log *slog.Logger) {
	var (
		conn  *pgx.Conn
		f     Features
		known = true // last holds a state read
	)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	read := func() (State, bool, error) {
		qctx, cancel := context.WithTimeout(ctx, max(every, 10*time.Second))
		defer cancel()
		if conn == nil {
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				return State{}, false, err
			}
			cfg.RuntimeParams["application_name"] = "pgjet-collector publication watch"
			if conn, err = pgx.ConnectConfig(qctx, cfg); err != nil {
				conn = nil
				return State{}, false, err
			}
			if f, err = Probe(qctx, conn); err != nil {
				return State{}, false, err
			}
		}
		s, ok, err := Read(qctx, conn, f, pub)
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
		return s, ok, err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, ok, err := read()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Debug("publication watch", "err", err)
			}
		case !ok:
			// A dropped publication ends the stream with Postgres's own
			// error: the session reports it.
			known = false
		case known:
			changes := Changes(last, s)
			for _, c := range changes {
				log.Warn("publication "+pub+" changed: "+c, "publication", pub)
			}
			last = s
		default:
			last, known = s, true
		}
	}
}
