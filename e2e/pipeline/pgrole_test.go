package pipeline

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

const roleSchema = `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE, amount numeric(12,2));
CREATE TABLE audit_extra (id int PRIMARY KEY);
`

// Invariants, for the role docs/postgres.md creates (its SQL block run as
// written, by a superuser, on a server that requires the role's password):
//   - the collector, connected as that role (LOGIN REPLICATION, SELECT on
//     the tables, no superuser, no table ownership), streams the
//     superuser's publication: a workload arrives exactly once, in commit
//     order;
//   - where the role lacks a right (creating a publication, adding a table
//     to one it does not own, replication), the collector stops at start
//     with exactly the one line docs/postgres.md shows, and no password.
func TestNonSuperuserRole(t *testing.T) {
	start := time.Now()
	const pw = "pg-role-Ahy3eeth"
	pg := pgtest.RunWith(t, pgtest.Options{HBA: []string{
		"host all pgjet 127.0.0.1/32 scram-sha-256",
		"host all norepl 127.0.0.1/32 scram-sha-256",
	}})
	e := newEnvWith(t, pg, harness.StartNATS(t, ""), roleSchema, "public.users", "public.orders")
	e.exec(docSQL(t, "docs/postgres.md", "change-me", pw))
	dsn := fmt.Sprintf("postgres://pgjet:%s@127.0.0.1:%d/postgres?sslmode=disable", pw, pg.Port)

	col := harness.StartProcess(t, "pgjet-collector", []string{"--slot", "pgjet", "--publication", "pgjet", "--nats", e.nats.URL(), "--source", "e2e"},
		[]string{"PGJET_DSN=" + dsn})
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming as role pgjet")
	}
	e.router()
	for round := range 3 {
		roleWorkload(e, round)
	}
	e.verify(30 * time.Second)
	noSecret(t, col, []string{pw})

	e.exec(`CREATE ROLE norepl LOGIN PASSWORD '` + pw + `'`)
	noRepl := strings.Replace(dsn, "pgjet:", "norepl:", 1)
	for _, c := range []struct {
		name, setup string
		args        []string
		dsn         string
		want        string
	}{
		{"create a publication", "", []string{"--publication", "pgjet_new", "--tables", "public.users"}, dsn,
			"pgjet-collector: create publication pgjet_new: permission denied for database postgres"},
		{"add a table to a publication it does not own", "", []string{"--publication", "pgjet", "--tables", "public.users,public.audit_extra"}, dsn,
			"pgjet-collector: add public.audit_extra to publication pgjet: must be owner of publication pgjet"},
		{"replicate without REPLICATION", "", []string{"--publication", "pgjet"}, noRepl,
			"pgjet-collector: replication connection to postgres://norepl:xxxxx@127.0.0.1:"},
		{"create a publication of tables it does not own", "GRANT CREATE ON DATABASE postgres TO pgjet", []string{"--publication", "pgjet_new", "--tables", "public.users"}, dsn,
			"pgjet-collector: create publication pgjet_new: must be owner of table users"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != "" {
				e.exec(c.setup)
			}
			p := harness.StartProcess(t, "pgjet-collector", append([]string{"--slot", "pgjet_denied", "--nats", e.nats.URL(), "--source", "e2e"}, c.args...),
				[]string{"PGJET_DSN=" + c.dsn})
			stopsWith(t, p, c.want, []string{pw})
		})
	}
	// Nothing was created on the way.
	var slots int
	if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgjet_denied'`).Scan(&slots); err != nil || slots != 0 {
		t.Fatalf("slot pgjet_denied: %d, %v", slots, err)
	}
	t.Logf("%s: %s", t.Name(), time.Since(start).Round(time.Millisecond))
}

// docSQL returns the first sql code block of a repository document, with
// the placeholder password replaced: tests run the documented SQL.
func docSQL(t *testing.T, doc, placeholder, password string) string {
	t.Helper()
	b, err := os.ReadFile(harness.RepoFile(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```sql\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(block, placeholder) {
		t.Fatalf("%s: no sql block with %q", doc, placeholder)
	}
	return strings.ReplaceAll(block, placeholder, password)
}

// roleWorkload is a round of single-row and multi-table transactions,
// updates, a cascading delete and a rollback on users and orders.
func roleWorkload(e *env, round int) {
	e.t.Helper()
	for i := range 10 {
		e.exec(`INSERT INTO users (name, email) VALUES ($1, $2)`, fmt.Sprintf("user %d-%d", round, i), fmt.Sprintf("u%d.%d@example.com", round, i))
	}
	e.exec(`BEGIN; INSERT INTO users (name) VALUES ('buyer'); INSERT INTO orders (user_id, amount) SELECT max(id), 9.99 FROM users;
		INSERT INTO orders (user_id, amount) SELECT max(id), 19.99 FROM users; COMMIT`)
	e.exec(`UPDATE users SET email = upper(email) WHERE id % 3 = 0`)
	e.exec(`UPDATE orders SET amount = amount * 2`)
	e.exec(`DELETE FROM users WHERE id = (SELECT min(u.id) FROM users u JOIN orders o ON o.user_id = u.id)`)
	e.exec(`BEGIN; INSERT INTO users (name) VALUES ('rolled back'); ROLLBACK`)
}

// stopsWith checks that p exits non-zero within 10 s and that its error is
// one line, its last, containing want, with none of secrets (log lines
// before it, such as warnings about the NATS setup, are allowed).
func stopsWith(t *testing.T, p *harness.Proc, want string, secrets []string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs after 10 s, want it to stop with %q\n%s", p.Name, want, p.Log())
	}
	if p.Wait() == nil {
		t.Fatalf("%s exited with status 0, want non-zero", p.Name)
	}
	lines := strings.Split(strings.TrimSpace(p.Log()), "\n")
	last, errs := lines[len(lines)-1], 0
	for _, l := range lines {
		if strings.HasPrefix(l, p.Name+": ") || strings.Contains(l, "level=ERROR") {
			errs++
		}
	}
	if !strings.HasPrefix(last, p.Name+": ") || !strings.Contains(last, want) || errs != 1 {
		t.Fatalf("%s printed, want a last line with %q:\n%s", p.Name, want, p.Log())
	}
	noSecret(t, p, append(secrets, "goroutine ", "panic"))
	t.Log(last)
}
