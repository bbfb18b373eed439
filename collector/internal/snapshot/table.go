// Package snapshot reads the rows of published tables into the raw stream
// as reads (wire.OpRead): the initial snapshot, taken from the replication
// slot's exported snapshot before the slot streams, and the chunks of
// backfills (package backfill). It knows tables as pgoutput announces them,
// reads them in key order in chunks of bounded size, turns rows into
// fragments for the publisher, and keeps the progress of every snapshot in
// a JetStream key-value bucket.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/pgname"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// Table is a published table as a snapshot reads it.
type Table struct {
	OID          uint32
	Schema, Name string
	// Rel is the relation as pgoutput announces it: the published columns
	// in order, their types, and the replica identity's key flags. Reads
	// carry it, so the router renders them as it renders the changes.
	Rel *wire.Relation
	// Key indexes Rel.Columns: the columns of the unique key the table is
	// read in order of, a chunk at a time (keyset pagination). Nil for a
	// table without one, which only an initial snapshot reads (in one scan
	// of its exported snapshot, not resumable).
	Key []int
	// KeyTypes are the SQL types of Key's columns (format_type), which
	// the chunk query casts the last key's text to.
	KeyTypes []string
	// KeyFrom says where Key comes from, for messages: "primary key", or
	// the unique index's name.
	KeyFrom string
	// Partitioned: a partitioned table, read through its root with its
	// partitions (the publication publishes via the root).
	Partitioned bool
	// RowFilter is the publication's row filter (PostgreSQL 15+), "" for
	// none: a snapshot reads only the rows the publication would send.
	RowFilter string
	// Estimate is the planner's row count (pg_class.reltuples), for
	// progress and ETA; 0 when unknown.
	Estimate int64
}

// String is schema.table as pgjet names tables everywhere (quoted where
// a part needs it, see pgname).
func (t *Table) String() string { return pgname.Table{Schema: t.Schema, Name: t.Name}.String() }

// ident is the table's quoted name for SQL.
func (t *Table) ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// NoKeyError says a table cannot be read in chunks: it has no unique key
// every row has.
type NoKeyError struct{ Table string }

func (e *NoKeyError) Error() string {
	return fmt.Sprintf("table %s has no primary key, replica identity index or unique index on NOT NULL columns: snapshots read a table in key order, a chunk at a time, and follow its rows by key; add a primary key (or such a unique index), or leave the table out of the snapshot's tables", e.Table)
}

// NotPublishedError says a table asked for is not in the publication: its
// changes do not stream, so a snapshot of it would be alone.
type NotPublishedError struct{ Table, Publication string }

func (e *NotPublishedError) Error() string {
	return fmt.Sprintf("table %s is not in publication %s: add it (ALTER PUBLICATION %s ADD TABLE %s) so that its changes stream, then snapshot it",
		e.Table, e.Publication, pgx.Identifier{e.Publication}.Sanitize(), e.Table)
}

// TypeResolver describes a user-defined type as the decoder does, so reads
// carry the same column types as changes.
type TypeResolver func(ctx context.Context, oid uint32) (pgtypes.Type, error)

// Describe loads the tables of publication named in names ("schema.table"),
// or all of its tables when names is empty, in the publication's order of
// schema and name. A table asked for that is not published is a
// *NotPublishedError; one without a usable key a *NoKeyError, unless
// keyless (then its Key is nil).
func Describe(ctx context.Context, conn *pgx.Conn, publication string, names []string, resolve TypeResolver, keyless bool) ([]*Table, error) {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	// Column lists and row filters came with PostgreSQL 15.
	cols, filter := "NULL::text[]", "NULL::text"
	if version >= 150000 {
		cols, filter = "pt.attnames", "pt.rowfilter"
	}
	rows, err := conn.Query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relreplident::text, c.relkind = 'p',
			CASE WHEN c.relkind = 'p' THEN coalesce((SELECT sum(greatest(l.reltuples, 0)) FROM pg_partition_tree(c.oid) pt2
				JOIN pg_class l ON l.oid = pt2.relid WHERE pt2.isleaf), 0) ELSE greatest(c.reltuples, 0) END::bigint,
			`+cols+`, `+filter+`
		FROM pg_publication_tables pt
		JOIN pg_namespace n ON n.nspname = pt.schemaname
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1 ORDER BY n.nspname, c.relname`, publication)
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
	}
	type pubTable struct {
		t        *Table
		replid   string
		attnames []string
	}
	var all []pubTable
	for rows.Next() {
		var p pubTable
		var filter *string
		p.t = &Table{}
		if err := rows.Scan(&p.t.OID, &p.t.Schema, &p.t.Name, &p.replid, &p.t.Partitioned, &p.t.Estimate, &p.attnames, &filter); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
		}
		if filter != nil {
			p.t.RowFilter = *filter
		}
		all = append(all, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
	}
	var picked []pubTable
	if len(names) == 0 {
		picked = all
	} else {
		for _, name := range names {
			want, err := pgname.ParseTable(name, true)
			if err != nil {
				return nil, err
			}
			i := slices.IndexFunc(all, func(p pubTable) bool { return p.t.Schema == want.Schema && p.t.Name == want.Name })
			if i < 0 {
				return nil, &NotPublishedError{Table: want.String(), Publication: publication}
			}
			if !slices.ContainsFunc(picked, func(p pubTable) bool { return p.t == all[i].t }) {
				picked = append(picked, all[i])
			}
		}
	}
	out := make([]*Table, 0, len(picked))
	for _, p := range picked {
		if err := describe(ctx, conn, p.t, p.replid, p.attnames, resolve); err != nil && !(keyless && IsNoKey(err)) {
			return nil, err
		}
		out = append(out, p.t)
	}
	return out, nil
}

// describe fills in t's relation and key.
func describe(ctx context.Context, conn *pgx.Conn, t *Table, replid string, attnames []string, resolve TypeResolver) error {
	var role string
	var canRead bool
	if err := conn.QueryRow(ctx, "SELECT current_user, has_table_privilege($1::oid, 'SELECT')", t.OID).Scan(&role, &canRead); err != nil {
		return fmt.Errorf("privileges on %s: %w", t, err)
	}
	if !canRead {
		return fmt.Errorf("role %s may not read table %s: a snapshot reads its rows; run GRANT SELECT ON %s TO %s, or leave the table out of the snapshot (snapshot.tables, or snapshot.mode: never)",
			role, t, t.ident(), pgx.Identifier{role}.Sanitize())
	}
	rows, err := conn.Query(ctx, `SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, t.OID)
	if err != nil {
		return fmt.Errorf("columns of %s: %w", t, err)
	}
	type column struct {
		num     int16
		notNull bool
		typ     string
	}
	var cols []column
	rel := &wire.Relation{ID: t.OID, Schema: t.Schema, Table: t.Name, ReplicaIdentity: replid[0]}
	for rows.Next() {
		var c wire.Column
		var col column
		if err := rows.Scan(&col.num, &c.Name, &c.TypeOID, &c.TypeMod, &col.notNull, &col.typ); err != nil {
			rows.Close()
			return fmt.Errorf("columns of %s: %w", t, err)
		}
		// A publication's column list sends only its columns.
		if attnames != nil && !slices.Contains(attnames, c.Name) {
			continue
		}
		rel.Columns = append(rel.Columns, c)
		cols = append(cols, col)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("columns of %s: %w", t, err)
	}
	for i := range rel.Columns {
		c := &rel.Columns[i]
		if c.TypeOID >= firstUserOID && resolve != nil {
			typ, err := resolve(ctx, c.TypeOID)
			if err != nil {
				return fmt.Errorf("type of %s.%s: %w", t, c.Name, err)
			}
			c.Type, c.TypeMod = typ.Info, typ.ColumnTypeMod(c.TypeMod)
		}
	}

	// What changes of the table say of its columns (NOT NULL, defaults,
	// primary key), reads say too.
	facts, err := pgtypes.ReadRelation(ctx, conn, t.OID)
	if err != nil {
		return fmt.Errorf("catalog of %s: %w", t, err)
	}
	facts.Fill(rel)

	// Unique indexes over plain columns, without predicate, valid.
	irows, err := conn.Query(ctx, `SELECT i.indexrelid::regclass::text, i.indisprimary, i.indisreplident,
			(i.indkey::int2[])[0:i.indnkeyatts - 1]
		FROM pg_index i
		WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
		ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid::regclass::text`, t.OID)
	if err != nil {
		return fmt.Errorf("indexes of %s: %w", t, err)
	}
	type index struct {
		name            string
		primary, replid bool
		attnums         []int16
	}
	var indexes []index
	for irows.Next() {
		var ix index
		if err := irows.Scan(&ix.name, &ix.primary, &ix.replid, &ix.attnums); err != nil {
			irows.Close()
			return fmt.Errorf("indexes of %s: %w", t, err)
		}
		indexes = append(indexes, ix)
	}
	if err := irows.Err(); err != nil {
		return fmt.Errorf("indexes of %s: %w", t, err)
	}
	position := func(num int16) int {
		return slices.IndexFunc(cols, func(c column) bool { return c.num == num })
	}
	positions := func(ix index) ([]int, bool) {
		var ps []int
		for _, n := range ix.attnums {
			p := position(n)
			if p < 0 {
				return nil, false // not published
			}
			ps = append(ps, p)
		}
		return ps, true
	}

	// Key flags as pgoutput sets them: every column under REPLICA
	// IDENTITY FULL, the identity index's columns otherwise (the primary
	// key by default), none under NOTHING.
	var identity *index
	for i := range indexes {
		ix := &indexes[i]
		if replid == "i" && ix.replid || replid == "d" && ix.primary {
			identity = ix
		}
	}
	switch {
	case replid == "f":
		for i := range rel.Columns {
			rel.Columns[i].Key = true
		}
	case identity != nil:
		for _, n := range identity.attnums {
			if p := position(n); p >= 0 {
				rel.Columns[p].Key = true
			}
		}
	}

	// The key the table is read in order of, which must also identify the
	// rows of its changes: the identity index (its old values come with
	// every change of them), else the primary key, else (the whole old row
	// comes with REPLICA IDENTITY FULL, and without an identity only
	// inserts are possible) a unique index over NOT NULL columns.
	var key *index
	switch {
	case identity != nil:
		key = identity
	case replid == "f" || replid == "n" || replid == "d":
		for i := range indexes {
			ix := &indexes[i]
			ps, ok := positions(*ix)
			if !ok {
				continue
			}
			notNull := true
			for _, p := range ps {
				notNull = notNull && cols[p].notNull
			}
			if ix.primary || notNull {
				key = ix
				break
			}
		}
	}
	t.Rel = rel
	if key == nil {
		return &NoKeyError{Table: t.String()}
	}
	ps, ok := positions(*key)
	if !ok {
		return fmt.Errorf("table %s: key %s has columns the publication's column list leaves out: snapshots need them; add them to the column list", t, key.name)
	}
	t.Key = ps
	for _, p := range ps {
		t.KeyTypes = append(t.KeyTypes, cols[p].typ)
	}
	t.KeyFrom = key.name
	if key.primary {
		t.KeyFrom = "primary key " + key.name
	}
	return nil
}

// firstUserOID is FirstNormalObjectId: OIDs below are built in.
const firstUserOID = 16384

// IsNoKey reports whether err says a table has no usable key.
func IsNoKey(err error) bool {
	var nk *NoKeyError
	return errors.As(err, &nk)
}
