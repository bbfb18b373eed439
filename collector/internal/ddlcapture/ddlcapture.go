// Package ddlcapture installs DDL capture in a database: event triggers
// that write, in each DDL command's own transaction, a transactional
// logical decoding message (prefix wire.DDLPrefix, content a wire.DDL as
// JSON). The message reaches the raw stream like any change, so consumers
// see the DDL text at its commit position and time, before the changes
// that follow it.
//
// Event triggers need a superuser to create. Capture must never fail the
// user's DDL: an error inside it becomes a WARNING (in the server log and
// to the client), and the DDL goes on without its message.
package ddlcapture

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/wire"
)

// Schema holds the capture's functions.
const Schema = "pgjet"

// The event triggers' names.
const (
	Trigger     = "pgjet_ddl_capture"
	DropTrigger = "pgjet_ddl_capture_drop"
)

// droppedSetting carries what sql_drop saw to ddl_command_end of the same
// command, which writes one message for both: sql_drop fires first, and
// only it can list dropped objects.
const droppedSetting = "pgjet.ddl_dropped"

// InstallSQL is the SQL that installs capture (idempotent), for a
// superuser to run as it is.
func InstallSQL() string {
	return fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %[1]s;

-- Called at sql_drop, before ddl_command_end of the same command: keeps
-- the dropped objects for it.
CREATE OR REPLACE FUNCTION %[1]s.ddl_capture_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
	PERFORM set_config('%[4]s', coalesce((
		SELECT jsonb_agg(jsonb_build_object('type', object_type, 'schema', coalesce(schema_name, ''),
			'identity', object_identity, 'dropped', true) ORDER BY object_identity)
		FROM pg_event_trigger_dropped_objects() WHERE original), '[]')::text, true);
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'pgjet DDL capture: %%: this DDL is not captured', SQLERRM;
END $fn$;

-- Called at ddl_command_end: writes one message for the command.
CREATE OR REPLACE FUNCTION %[1]s.ddl_capture() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
	objects jsonb;
	dropped text := nullif(current_setting('%[4]s', true), '');
BEGIN
	SELECT coalesce(jsonb_agg(jsonb_build_object('type', object_type, 'schema', coalesce(schema_name, ''),
		'identity', object_identity, 'dropped', false)), '[]')
		INTO objects FROM pg_event_trigger_ddl_commands();
	IF dropped IS NOT NULL THEN
		objects := objects || dropped::jsonb;
		PERFORM set_config('%[4]s', '', true);
	END IF;
	PERFORM pg_logical_emit_message(true, '%[5]s', jsonb_build_object('tag', tg_tag, 'query', current_query(),
		'user', session_user, 'objects', objects)::text);
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'pgjet DDL capture: %%: this DDL is not captured', SQLERRM;
END $fn$;

DROP EVENT TRIGGER IF EXISTS %[3]s;
CREATE EVENT TRIGGER %[3]s ON sql_drop EXECUTE FUNCTION %[1]s.ddl_capture_drop();
DROP EVENT TRIGGER IF EXISTS %[2]s;
CREATE EVENT TRIGGER %[2]s ON ddl_command_end EXECUTE FUNCTION %[1]s.ddl_capture();
`, Schema, Trigger, DropTrigger, droppedSetting, wire.DDLPrefix)
}

// UninstallSQL is the SQL that removes capture (the schema stays, in case
// it holds anything else).
func UninstallSQL() string {
	return fmt.Sprintf(`DROP EVENT TRIGGER IF EXISTS %[2]s;
DROP EVENT TRIGGER IF EXISTS %[3]s;
DROP FUNCTION IF EXISTS %[1]s.ddl_capture();
DROP FUNCTION IF EXISTS %[1]s.ddl_capture_drop();
`, Schema, Trigger, DropTrigger)
}

// Install installs capture in conn's database, in one transaction.
func Install(ctx context.Context, conn *pgx.Conn) error { return run(ctx, conn, InstallSQL()) }

// Uninstall removes it.
func Uninstall(ctx context.Context, conn *pgx.Conn) error { return run(ctx, conn, UninstallSQL()) }

func run(ctx context.Context, conn *pgx.Conn, sql string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
}

// Installed reports whether both event triggers exist and are enabled.
func Installed(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_event_trigger WHERE evtname IN ($1, $2) AND evtenabled <> 'D'`, Trigger, DropTrigger).Scan(&n)
	return n == 2, err
}
