package pgtest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartLogical(t *testing.T) {
	c := Run(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
}

// The variable that picks a version gets that version, as the server
// itself reports it.
func TestVersionIsTheOneAskedFor(t *testing.T) {
	c := Run(t)
	got, err := c.Major(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv(VersionEnv); want != "" && strconv.Itoa(got) != want {
		t.Fatalf("server is PostgreSQL %d, %s=%s", got, VersionEnv, want)
	}
	t.Logf("PostgreSQL %d", got)
}

// A standby replays the primary's writes and, promoted, accepts its own
// on the next timeline.
func TestStandbyPromote(t *testing.T) {
	ctx := context.Background()
	p := Run(t)
	if err := p.Exec(ctx, "CREATE TABLE t (id int primary key)"); err != nil {
		t.Fatal(err)
	}
	s, err := p.StartStandby("standby1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := p.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	sc, err := pgx.Connect(ctx, s.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n != 1; {
		if err := sc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("standby did not replay the insert within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("promoted standby refuses writes: %v", err)
	}
	var recovering bool
	if err := sc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil || recovering {
		t.Fatalf("still in recovery after promote (err %v)", err)
	}
}
