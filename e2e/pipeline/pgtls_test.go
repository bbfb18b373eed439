package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariants, against a Postgres with a server certificate of its own CA:
//   - the collector given sslmode=verify-full and that CA streams over TLS
//     (both its connections are encrypted) and a workload arrives exactly
//     once, in commit order;
//   - given another CA, it stops at start with one line saying the server's
//     certificate is not trusted, without retrying.
func TestPostgresVerifyFull(t *testing.T) {
	start := time.Now()
	pg := pgtest.RunWith(t, pgtest.Options{TLS: true})
	e := newEnvWith(t, pg, harness.StartNATS(t, ""), roleSchema, "public.users", "public.orders")
	dsn := func(ca string) string {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s", pg.Port, ca)
	}

	col := harness.StartProcess(t, "pgjet-collector", []string{"--slot", "pgjet_tls", "--publication", "pgjet_tls", "--tables", e.tables,
		"--nats", e.nats.URL(), "--source", "e2e"}, []string{"PGJET_DSN=" + dsn(pg.CAFile())})
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming over TLS")
	}
	// The walsender serves the replication connection; the other one is
	// open while the collector runs too.
	var walsenders, plain int
	if err := e.conn.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE a.backend_type = 'walsender'), count(*) FILTER (WHERE NOT s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.pid <> pg_backend_pid() AND a.usename = 'postgres' AND a.client_addr IS NOT NULL`).Scan(&walsenders, &plain); err != nil {
		t.Fatal(err)
	}
	if walsenders != 1 || plain != 0 {
		t.Fatalf("collector connections: %d walsenders, %d without TLS; want 1 and 0", walsenders, plain)
	}
	e.router()
	for round := range 2 {
		roleWorkload(e, round)
	}
	e.verify(30 * time.Second)

	other := writeFile(t, t.TempDir(), "other-ca.pem", newCA(t, "some other CA").certPEM)
	p := harness.StartProcess(t, "pgjet-collector", []string{"--slot", "pgjet_tls2", "--publication", "pgjet_tls", "--nats", e.nats.URL(), "--source", "e2e"},
		[]string{"PGJET_DSN=" + dsn(other)})
	stopsWith(t, p, "tls: failed to verify certificate: x509: certificate signed by unknown authority", nil)
	t.Logf("%s: %s", t.Name(), time.Since(start).Round(time.Millisecond))
}
