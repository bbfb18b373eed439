package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// runCmd runs a pgjet binary to its end: its output and exit code.
func runCmd(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	p := harness.StartProcess(t, name, args, env)
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s %v did not exit", name, args)
	}
	var ee *exec.ExitError
	if err := p.Wait(); errors.As(err, &ee) {
		return p.Log(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return p.Log(), 0
}

func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, out)
		}
	}
}

// `pgjet-collector check` on a database that cannot work names every
// problem with its fix and exits 1: wal_level replica, a published table
// without replica identity, a role without REPLICATION, and a NATS user
// that may not publish raw records.
func TestCheckNamesEveryProblem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.Run(t, "wal_level = replica")
	if err := pg.Exec(ctx, `CREATE TABLE keyed (id int PRIMARY KEY, v text); CREATE TABLE loose (v text);
		CREATE PUBLICATION pgjet_check FOR TABLE keyed, loose; CREATE ROLE pgjet_norepl LOGIN; GRANT SELECT ON keyed, loose TO pgjet_norepl`); err != nil {
		t.Fatal(err)
	}
	n := harness.StartNATSWith(t, "", `authorization { users = [
  {user: limited, password: secret, permissions: {publish: {allow: ["$JS.API.>"]}, subscribe: {allow: ["_INBOX.>"]}}}
] }`)
	dsn := fmt.Sprintf("postgres://pgjet_norepl@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
	args := []string{"check", "--dsn", dsn, "--slot", "pgjet_check", "--publication", "pgjet_check", "--nats", n.URL(), "--nats-user", "limited"}
	out, code := runCmd(t, []string{"PGJET_NATS_PASSWORD=secret"}, "pgjet-collector", args...)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	wantLines(t, "check", out,
		"FAIL wal_level is replica: set wal_level = logical in postgresql.conf",
		"FAIL role pgjet_norepl has no REPLICATION attribute",
		"ALTER ROLE pgjet_norepl REPLICATION",
		"FAIL table public.loose has no primary key and REPLICA IDENTITY DEFAULT",
		"ALTER TABLE public.loose REPLICA IDENTITY FULL",
		"FAIL cannot publish raw records: permission denied to publish to pgjet.raw.pgjet_check",
	)
	if strings.Contains(out, "ALTER TABLE public.keyed") {
		t.Errorf("check blames keyed, which has a primary key:\n%s", out)
	}
	if _, code := runCmd(t, nil, "pgjet-collector", "check", "--dsn", dsn); code != 2 {
		t.Errorf("usage error: exit code %d, want 2", code)
	}
}

// On a running pipeline both checks pass (exit 0, warnings allowed) and
// report the slot and the durable; status prints the fields operators
// look for.
func TestCheckAndStatusOfARunningPipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `CREATE TABLE users (id serial PRIMARY KEY, name text)`, "public.users")
	e.collector()
	e.router()
	e.exec(`INSERT INTO users (name) VALUES ('a'), ('b')`)
	_, js := e.nats.Connect(t)
	waitUntil(t, "the router to acknowledge the raw records", func() bool {
		c, err := js.Consumer(context.Background(), "PGJET_RAW", "pgjet-router")
		if err != nil {
			return false
		}
		ci := c.CachedInfo()
		return ci.AckFloor.Stream > 0 && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	collector := []string{"--dsn", e.pg.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e", "--tables", "public.users", "--nats", e.nats.URL(), "--source", "e2e"}

	out, code := runCmd(t, nil, "pgjet-collector", append([]string{"check"}, collector...)...)
	if code != 0 || strings.Contains(out, "\nFAIL ") {
		t.Errorf("collector check: exit code %d, want 0 without FAIL:\n%s", code, out)
	}
	wantLines(t, "collector check", out, "OK   wal_level is logical", "OK   slot pgjet_e2e (pgoutput) is active, held by pid",
		"OK   may publish to pgjet.raw.e2e", "0 FAIL")

	out, code = runCmd(t, nil, "pgjet-router", "check", "--nats", e.nats.URL(), "--output-persist", "async")
	if code != 0 || strings.Contains(out, "\nFAIL ") {
		t.Errorf("router check: exit code %d, want 0 without FAIL:\n%s", code, out)
	}
	wantLines(t, "router check", out, "0 WARN, 0 FAIL", "OK   route pgjet-router: durable pgjet-router: pending 0 ack_pending 0",
		"OK   route pgjet-router: may publish to postgres.", "OK   route pgjet-router: no gap risk", "OK   route pgjet-router: may pull from durable pgjet-router")

	out, code = runCmd(t, nil, "pgjet-collector", append([]string{"status"}, collector...)...)
	if code != 0 {
		t.Errorf("collector status: exit code %d", code)
	}
	wantLines(t, "collector status", out, "slot         pgjet_e2e: active", "confirmed_flush", "lag_bytes", "lag_seconds",
		"last raw record of source e2e", "first_seq", "last_seq", "durable      pgjet-router: pending 0 ack_pending 0", "last_error",
		"snapshot     initial  initial  done")

	out, code = runCmd(t, nil, "pgjet-router", "status", "--nats", e.nats.URL())
	if code != 0 {
		t.Errorf("router status: exit code %d", code)
	}
	wantLines(t, "router status", out, "raw_stream   PGJET_RAW: first_seq 1", "last_record  source e2e",
		"durable pgjet-router: pending 0 ack_pending 0", "output stream PGJET_EVENTS: last_seq", "last_error")
	t.Logf("router status:\n%s", out)
}
