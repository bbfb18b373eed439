// Package pgtypes describes Postgres user-defined types as the raw record
// carries them (wire.TypeInfo), from the catalog: the collector describes
// each type a relation uses this way, and tests that stand in for the
// collector do the same.
package pgtypes

import (
	"context"
	"errors"

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
	err := conn.QueryRow(ctx, `WITH RECURSIVE chain AS (
			SELECT t.oid, t.typtype, t.typbasetype, t.typtypmod, 0 AS depth FROM pg_type t WHERE t.oid = $1
			UNION ALL
			SELECT b.oid, b.typtype, b.typbasetype, b.typtypmod, c.depth + 1
			FROM chain c JOIN pg_type b ON b.oid = c.typbasetype
			WHERE c.typtype = 'd' AND c.depth < 100)
		SELECT n.nspname, t.typname, t.typtype::text, t.typelem,
			CASE WHEN t.typtype = 'd' THEN coalesce((SELECT oid FROM chain WHERE typtype <> 'd' ORDER BY depth LIMIT 1), t.typbasetype) ELSE t.typbasetype END,
			coalesce(e.typtype::text, ''),
			coalesce((SELECT typtypmod FROM chain WHERE typtype = 'd' AND typtypmod <> -1 ORDER BY depth LIMIT 1), -1)
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
		WHERE t.oid = $1`, oid).Scan(&ti.Schema, &ti.Name, &kind, &ti.ElemOID, &ti.BaseOID, &elemKind, &t.DomainTypeMod)
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
	return t, nil
}
