// Package check verifies pgjet's delivery guarantees end to end: every change
// Postgres committed appears exactly once in an output stream, in commit order,
// with the values Postgres itself renders.
//
// The truth comes from Postgres, not from the test's own bookkeeping: audit
// triggers record each row change (to_jsonb of OLD and NEW) in the same
// transaction. Rolled-back work therefore vanishes from the audit by itself,
// and within one transaction the audit ids follow the order of the changes.
// Tests and benchmarks install the audit, run any workload (crashes included),
// read the audit and the output stream, and compare with Check.
package check

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/shared/pgname"
)

// AuditTable holds the recorded changes. It must not be in any publication
// (do not use FOR ALL TABLES), or its own rows would stream too.
const AuditTable = "public.pgjet_audit"

// Querier is what the audit functions need: *pgx.Conn, *pgxpool.Pool and
// pgx.Tx all fit.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Change is one row change (or truncate) as the audit trigger recorded it.
type Change struct {
	ID  int64
	Xid int64 // txid_current(): the 32-bit xid with the epoch above it
	// Op is insert, update, delete or truncate.
	Op     string
	Schema string
	Table  string
	// Before is to_jsonb(OLD) for update and delete, After is to_jsonb(NEW)
	// for insert and update; nil otherwise.
	Before []byte
	After  []byte
}

const auditSetup = `
CREATE TABLE IF NOT EXISTS public.pgjet_audit (
	id bigserial PRIMARY KEY,
	xid bigint NOT NULL DEFAULT txid_current(),
	op text NOT NULL,
	schema text NOT NULL,
	tbl text NOT NULL,
	before jsonb,
	after jsonb
);
CREATE OR REPLACE FUNCTION public.pgjet_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.pgjet_audit (op, schema, tbl, before, after) VALUES (
		lower(TG_OP), TG_TABLE_SCHEMA, TG_TABLE_NAME,
		CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
		CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
	RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.pgjet_audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.pgjet_audit (op, schema, tbl) VALUES ('truncate', TG_TABLE_SCHEMA, TG_TABLE_NAME);
	RETURN NULL;
END $$;
`

// InstallAudit creates the audit table and functions (if missing) and puts
// audit triggers on each table ("schema.table", or "table" for public).
// Installing again is harmless.
func InstallAudit(ctx context.Context, q Querier, tables ...string) error {
	if _, err := q.Exec(ctx, auditSetup); err != nil {
		return fmt.Errorf("install audit: %w", err)
	}
	for _, t := range tables {
		name, err := pgname.ParseTable(t, true)
		if err != nil {
			return fmt.Errorf("install audit: %w", err)
		}
		ident := name.Ident()
		sql := fmt.Sprintf(`
DROP TRIGGER IF EXISTS pgjet_audit_row ON %[1]s;
CREATE TRIGGER pgjet_audit_row AFTER INSERT OR UPDATE OR DELETE ON %[1]s
	FOR EACH ROW EXECUTE FUNCTION public.pgjet_audit_row();
DROP TRIGGER IF EXISTS pgjet_audit_truncate ON %[1]s;
CREATE TRIGGER pgjet_audit_truncate AFTER TRUNCATE ON %[1]s
	FOR EACH STATEMENT EXECUTE FUNCTION public.pgjet_audit_truncate();
`, ident)
		if _, err := q.Exec(ctx, sql); err != nil {
			return fmt.Errorf("audit triggers on %s: %w", t, err)
		}
	}
	return nil
}

// ReadAudit returns every recorded change in id order.
func ReadAudit(ctx context.Context, q Querier) ([]Change, error) {
	// jsonb as text: the exact rendering Postgres gives, independent of how a
	// driver maps jsonb.
	rows, err := q.Query(ctx, `SELECT id, xid, op, schema, tbl, before::text, after::text
		FROM public.pgjet_audit ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var before, after *string
		if err := rows.Scan(&c.ID, &c.Xid, &c.Op, &c.Schema, &c.Table, &before, &after); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		if before != nil {
			c.Before = []byte(*before)
		}
		if after != nil {
			c.After = []byte(*after)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}
