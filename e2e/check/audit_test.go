package check

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// The audit must record exactly the committed changes, with xids that match
// what logical decoding reports, and per (xid, table) in the order decoding
// delivers them: that is what Check relies on. test_decoding (shipped with
// the server) is the independent witness here.
func TestAuditMatchesLogicalDecoding(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Run(t).Connect(t)
	exec := pgtest.Execer(t, conn)
	exec(`CREATE TABLE users (id int PRIMARY KEY, name text);
		CREATE TABLE "Odd Orders" (id int PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE, note text)`)
	for range 2 { // installing twice must be harmless
		if err := InstallAudit(ctx, conn, "users", `public.Odd Orders`); err != nil {
			t.Fatal(err)
		}
	}
	exec(`SELECT pg_create_logical_replication_slot('witness', 'test_decoding')`)

	exec(`BEGIN;
		INSERT INTO users VALUES (1, 'a');
		INSERT INTO "Odd Orders" VALUES (10, 1, 'x'), (11, 1, 'y');
		COMMIT`)
	exec(`BEGIN; INSERT INTO users VALUES (2, 'rolled back'); ROLLBACK`)
	// A cascade: the users row is deleted first in the WAL, but its audit
	// trigger fires after the cascaded deletes' triggers.
	exec(`BEGIN;
		UPDATE users SET name = 'b' WHERE id = 1;
		SAVEPOINT s; INSERT INTO users VALUES (3, 'rolled back to savepoint'); ROLLBACK TO s;
		DELETE FROM users WHERE id = 1;
		COMMIT`)
	exec(`INSERT INTO users VALUES (4, 'd')`)
	exec(`TRUNCATE "Odd Orders"`)

	changes, err := ReadAudit(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var fromAudit []string
	for _, c := range changes {
		if strings.Contains(string(c.Before)+string(c.After), "rolled back") {
			t.Errorf("rolled-back change audited: %+v", c)
		}
		fromAudit = append(fromAudit, fmt.Sprintf("%d %s.%s %s", uint32(c.Xid), c.Schema, c.Table, c.Op))
	}

	rows, err := conn.Query(ctx, `SELECT data FROM pg_logical_slot_get_changes('witness', NULL, NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	begin := regexp.MustCompile(`^BEGIN (\d+)$`)
	change := regexp.MustCompile(`^table (\S+|\S+\."[^"]+"): (INSERT|UPDATE|DELETE|TRUNCATE):`)
	var fromWAL []string
	var xid uint64
	for _, l := range lines {
		if m := begin.FindStringSubmatch(l); m != nil {
			xid, _ = strconv.ParseUint(m[1], 10, 32)
			continue
		}
		m := change.FindStringSubmatch(l)
		if m == nil || m[1] == "public.pgjet_audit" {
			continue
		}
		table := strings.ReplaceAll(m[1], `"`, "")
		fromWAL = append(fromWAL, fmt.Sprintf("%d %s %s", xid, table, strings.ToLower(m[2])))
	}

	// Same changes, same xids, and the same order within each (xid, table).
	if got, want := perTable(fromAudit), perTable(fromWAL); got != want {
		t.Errorf("audit and decoding disagree\naudit:\n%s\ndecoding:\n%s", got, want)
	}
	if len(changes) != 9 {
		t.Errorf("audited %d changes, want 9:\n%s", len(changes), strings.Join(fromAudit, "\n"))
	}
	for _, c := range changes {
		if c.Op == "update" && (!strings.Contains(string(c.Before), `"name": "a"`) || !strings.Contains(string(c.After), `"name": "b"`)) {
			t.Errorf("update recorded as %s -> %s", c.Before, c.After)
		}
	}
}

// perTable groups "xid table op" lines by xid and table, keeping the order
// within each group.
func perTable(lines []string) string {
	var keys []string
	groups := map[string][]string{}
	for _, l := range lines {
		i := strings.LastIndexByte(l, ' ')
		k := l[:i]
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], l[i+1:])
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s: %s\n", k, strings.Join(groups[k], " "))
	}
	return sb.String()
}
