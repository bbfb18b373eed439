// Package pgtypes describes from the catalog what pgoutput does not send:
// user-defined types as the raw record carries them (wire.TypeInfo), and
// what the catalog says of a relation's columns (NOT NULL, defaults, the
// primary key). The collector describes each relation this way when
// Postgres announces it, and tests that stand in for the collector do the
// same.
package pgtypes

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/wire"
)

// Type is a user-defined type as the raw record describes it.
type Type struct {
	Info wire.TypeInfo
	// DomainTypeMod is, for a domain, the type modifier it gives its
	// values: that of the nearest domain in its chain of domains that has
	// one (CREATE DOMAIN price AS numeric(6,2)); -1 for none.
	DomainTypeMod int32
}

// ColumnTypeMod is the type modifier the raw record gives a column of type
// t whose own modifier (atttypmod, as pgoutput sends it) is mod. A column
// of a domain type has none of its own: it gets the domain's, so that a
// domain over numeric(6,2) or bit(3) keeps its scale or length.
func (t Type) ColumnTypeMod(mod int32) int32 {
	if mod == -1 && t.Info.Kind == 'd' {
		return t.DomainTypeMod
	}
	return mod
}

// Resolve describes the user-defined type oid (>= 16384) for the router.
// A domain is described by its base type through any chain of domains
// over domains (BaseOID is the first type that is not a domain) and by
// DomainTypeMod: the router renders it as that base type with that
// modifier, as Debezium does (its PostgresType.getRootType and
// getDefaultLength). A type dropped meanwhile is the zero Type (with no
// modifier): the router renders its values as text.
func Resolve(ctx context.Context, conn *pgx.Conn, oid uint32) (Type, error) {
	t := Type{DomainTypeMod: -1}
	ti := &t.Info
	var kind, elemKind string
	var labels []string
	err := conn.QueryRow(ctx, `WITH RECURSIVE chain AS (
			SELECT t.oid, t.typtype, t.typbasetype, t.typtypmod, 0 AS depth FROM pg_type t WHERE t.oid = $1
			UNION ALL
			SELECT b.oid, b.typtype, b.typbasetype, b.typtypmod, c.depth + 1
			FROM chain c JOIN pg_type b ON b.oid = c.typbasetype
			WHERE c.typtype = 'd' AND c.depth < 100)
		SELECT n.nspname, t.typname, t.typtype::text, t.typelem,
			CASE WHEN t.typtype = 'd' THEN coalesce((SELECT oid FROM chain WHERE typtype <> 'd' ORDER BY depth LIMIT 1), t.typbasetype) ELSE t.typbasetype END,
			coalesce(e.typtype::text, ''),
			coalesce((SELECT typtypmod FROM chain WHERE typtype = 'd' AND typtypmod <> -1 ORDER BY depth LIMIT 1), -1),
			(SELECT array_agg(l.enumlabel::text ORDER BY l.enumsortorder) FROM pg_enum l
			 WHERE l.enumtypid = CASE WHEN t.typtype = 'e' THEN t.oid WHEN e.typtype = 'e' THEN e.oid END)
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
		WHERE t.oid = $1`, oid).Scan(&ti.Schema, &ti.Name, &kind, &ti.ElemOID, &ti.BaseOID, &elemKind, &t.DomainTypeMod, &labels)
	if errors.Is(err, pgx.ErrNoRows) {
		return Type{DomainTypeMod: -1}, nil
	}
	if err != nil {
		return Type{DomainTypeMod: -1}, err
	}
	if kind != "" {
		ti.Kind = kind[0]
	}
	if elemKind != "" {
		ti.ElemKind = elemKind[0]
	}
	if ti.Kind == 'e' || ti.ElemKind == 'e' {
		// An enum without labels yet has an empty list, not none.
		ti.Labels = append([]string{}, labels...)
	}
	return t, nil
}

// IsEnum reports whether t is an enum or an array of one: the types whose
// labels the raw record carries.
func (t *Type) IsEnum() bool { return t.Info.Kind == 'e' || t.Info.ElemKind == 'e' }

// Catalog reads types and relations over Conn, a connection of its own (a
// replication connection runs no queries while it streams).
type Catalog struct{ Conn *pgx.Conn }

// Type is Resolve over c's connection.
func (c Catalog) Type(ctx context.Context, oid uint32) (Type, error) {
	return Resolve(ctx, c.Conn, oid)
}

// Relation is ReadRelation over c's connection.
func (c Catalog) Relation(ctx context.Context, relid uint32) (Relation, error) {
	return ReadRelation(ctx, c.Conn, relid)
}

// Column is what the catalog says of one column (wire.Column's NotNull,
// Default and PrimaryKey).
type Column struct {
	NotNull    bool
	Default    string
	PrimaryKey uint16
}

// Relation is what the catalog says of a relation's columns, by name (the
// name is what relation messages and the catalog share). Empty for a
// relation dropped meanwhile.
type Relation map[string]Column

// Fill sets what the catalog says on rel's columns, and rel.Catalog when
// it says anything: a table dropped meanwhile has nothing to say, and its
// record says so rather than that no column is NOT NULL.
func (r Relation) Fill(rel *wire.Relation) {
	rel.Catalog = len(r) > 0
	for i := range rel.Columns {
		c := &rel.Columns[i]
		f := r[c.Name]
		c.NotNull, c.Default, c.PrimaryKey = f.NotNull, f.Default, f.PrimaryKey
	}
}

// relationQuery reads the columns of relation $1 (see ReadRelation).
const relationQuery = `WITH key AS MATERIALIZED (
			SELECT i.indkey::int2[] AS cols
			FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
			WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisunique AND 0 <> ALL (i.indkey::int2[])
				AND NOT EXISTS (SELECT FROM pg_index p WHERE p.indrelid = $1 AND p.indisprimary))
			ORDER BY i.indisprimary DESC, i.indisclustered DESC, ic.relname::text COLLATE "C"
			LIMIT 1),
		pos AS (SELECT k.attnum, min(k.n) AS n FROM key, unnest(key.cols) WITH ORDINALITY k(attnum, n) GROUP BY k.attnum)
		SELECT a.attname::text, a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
			coalesce(pg_get_expr(d.adbin, d.adrelid), ''), coalesce(pos.n, 0)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			LEFT JOIN pos ON pos.attnum = a.attnum
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`

// ReadRelation reads what the catalog says of the columns of relation
// relid, as Debezium's PostgreSQL connector reads them through the JDBC
// driver when Postgres announces a relation (PgOutputMessageDecoder
// handleRelationMessage; pgjdbc getColumns, getPrimaryKeys, getIndexInfo):
//   - NOT NULL: the column's, or its domain's;
//   - the default as pg_get_expr prints it (a generated column's
//     expression too, as the driver reports it), under the session
//     settings of wire.TextFormat, the forms the router parses;
//   - the position in the primary key or, for a table without one, in its
//     first unique index whose columns are all plain columns (Debezium
//     skips those over expressions), the driver's order: clustered first,
//     then by index name.
//
// One round trip: the settings and the query go as one batch, in one
// implicit transaction.
func ReadRelation(ctx context.Context, conn *pgx.Conn, relid uint32) (Relation, error) {
	b := &pgx.Batch{}
	for _, s := range wire.TextFormat {
		b.Queue("SELECT set_config($1, $2, true)", s.Name, s.Value)
	}
	rel := Relation{}
	b.Queue(relationQuery, relid).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var c Column
			var pos int64
			if err := rows.Scan(&name, &c.NotNull, &c.Default, &pos); err != nil {
				return err
			}
			c.PrimaryKey = uint16(pos)
			rel[name] = c
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read the catalog of relation %d: %w", relid, err)
	}
	return rel, nil
}
