package pgtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A TLS cluster is verified with its CA for 127.0.0.1 and localhost, and an
// HBA line makes a role give its password.
func TestStartWithTLSAndHBA(t *testing.T) {
	c := RunWith(t, Options{TLS: true, HBA: []string{"host all pw 127.0.0.1/32 scram-sha-256"}})
	ctx := context.Background()
	if err := c.Exec(ctx, "CREATE ROLE pw LOGIN PASSWORD 'secret'"); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s", host, c.Port, c.CAFile()))
		if err != nil {
			t.Fatalf("verify-full to %s: %v", host, err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Fatalf("connection to %s: ssl %v, %v", host, ssl, err)
		}
		conn.Close(ctx)
	}
	dsn := fmt.Sprintf("postgres://pw:%%s@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	if _, err := pgx.Connect(ctx, fmt.Sprintf(dsn, "wrong")); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf(dsn, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}
