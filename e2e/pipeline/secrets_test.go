package pipeline

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariants, for collector and router given a NATS password and a Postgres
// DSN with a password through the environment (PGJET_NATS_PASSWORD,
// PGJET_DSN), at debug log level:
//   - /proc/<pid>/cmdline of neither holds a password;
//   - no log line holds one (in any spelling: as given or URL-encoded),
//     while they work, across a Postgres restart (the collector logs the
//     failed session and reconnects), and when Postgres refuses the
//     password, in a URL or a key=value DSN (then the collector stops with
//     one line that names the refusal);
//   - a workload still arrives exactly once.
func TestSecretsStayOutOfLogsAndProcessListings(t *testing.T) {
	start := time.Now()
	const natsPW = "nats-pw-Eiph4ied"
	// Characters that URL-encode, a comma (a URL keeps it as it is), and a
	// quote and a space for key=value strings.
	const pgPW, wrongPW = "pg-pw/Zo0'ch ie?x,y", "pg-wrong/Ga1'ph ee&y,z"
	secrets := []string{natsPW, pgPW, url.QueryEscape(pgPW), url.PathEscape(pgPW), url.UserPassword("", pgPW).String()[1:],
		wrongPW, url.UserPassword("", wrongPW).String()[1:], "Zo0'ch", "Ga1'ph"}

	pg := pgtest.RunWith(t, pgtest.Options{HBA: []string{"host all pgjet 127.0.0.1/32 scram-sha-256"}})
	e := newEnvWith(t, pg, harness.StartNATSWith(t, "", fmt.Sprintf("authorization { user: pgjet, password: %q }", natsPW)),
		roleSchema, "public.users", "public.orders")
	e.exec(`CREATE ROLE pgjet LOGIN REPLICATION PASSWORD ` + sqlLiteral(pgPW))
	e.exec(`GRANT SELECT ON users, orders TO pgjet`) // the initial snapshot reads them
	e.exec(`CREATE PUBLICATION pgjet FOR TABLE users, orders`)
	urlDSN := func(pw string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", url.UserPassword("pgjet", pw), pg.Port)
	}
	kvDSN := func(pw string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=pgjet sslmode=disable password=%s", pg.Port, kvQuote(pw))
	}
	natsEnv := []string{"PGJET_NATS_USER=pgjet", "PGJET_NATS_PASSWORD=" + natsPW, "PGJET_LOG_LEVEL=debug"}

	col := harness.StartProcess(t, "pgjet-collector", []string{"--slot", "pgjet", "--publication", "pgjet", "--nats", e.nats.URL(), "--source", "e2e"},
		append([]string{"PGJET_DSN=" + urlDSN(pgPW)}, natsEnv...))
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", e.nats.URL()}, natsEnv)
	if !col.WaitForLog("msg=streaming", 30*time.Second) || !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("collector or router did not start")
	}
	for _, p := range []*harness.Proc{col, rt} {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(cmdline), s) {
				t.Fatalf("%s's command line holds %q: %q", p.Name, s, cmdline)
			}
		}
	}
	roleWorkload(e, 0)
	// A session that fails while streaming is logged, and the collector
	// reconnects with the same DSN.
	if err := pg.StopMode("fast"); err != nil {
		t.Fatal(err)
	}
	if !col.WaitForLog("replication session ended; reconnecting", 10*time.Second) {
		t.Fatal("collector did not notice Postgres stopping")
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(col.Log(), "msg=streaming") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("collector did not stream again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.reconnect()
	roleWorkload(e, 1)
	e.verifyAs(30*time.Second, nats.UserInfo("pgjet", natsPW))
	for _, p := range []*harness.Proc{col, rt} {
		noSecret(t, p, secrets)
	}

	for name, dsn := range map[string]string{"url": urlDSN(wrongPW), "key=value": kvDSN(wrongPW)} {
		t.Run("wrong password in a "+name+" DSN", func(t *testing.T) {
			p := harness.StartProcess(t, "pgjet-collector", []string{"--slot", "pgjet", "--publication", "pgjet", "--nats", e.nats.URL(), "--source", "e2e"},
				append([]string{"PGJET_DSN=" + dsn}, natsEnv...))
			stopsWith(t, p, `password authentication failed for user "pgjet"`, secrets)
		})
	}
	t.Logf("%s: %s", t.Name(), time.Since(start).Round(time.Millisecond))
}

// sqlLiteral quotes s as an SQL string literal.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// kvQuote quotes s as a value of a libpq key=value connection string.
func kvQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

// reconnect replaces the test's Postgres connection, after a restart.
func (e *env) reconnect() {
	e.t.Helper()
	conn, err := pgx.Connect(context.Background(), e.pg.DSN(""))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	e.conn = conn
}
