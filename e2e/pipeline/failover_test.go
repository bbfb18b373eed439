package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// --failover makes the collector's slot a failover slot on PostgreSQL 17
// and later; before 17 it is refused with one line, by check and by the
// collector, before any slot is created.
func TestFailoverOption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.Run(t)
	conn := pg.Connect(t)
	var major int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int / 10000").Scan(&major); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	n := harness.StartNATS(t, "")
	args := []string{"--dsn", pg.DSN(""), "--slot", "fo", "--publication", "fo", "--tables", "public.t", "--nats", n.URL(), "--failover"}
	if major >= 17 {
		t.Logf("PostgreSQL %d: failover slots", major)
		p := harness.StartProcess(t, "pgjet-collector", args, nil)
		if !p.WaitForLog("msg=streaming", time.Minute) {
			t.Fatalf("collector did not stream:\n%s", p.Log())
		}
		var failover bool
		if err := conn.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = 'fo'").Scan(&failover); err != nil || !failover {
			t.Errorf("slot fo: failover %v (%v), want true", failover, err)
		}
		out, _ := runCmd(t, nil, "pgjet-collector", append([]string{"check"}, args...)...)
		wantLines(t, "check", out, "OK   slot fo is a failover slot (failover true, temporary false)", "WARN synchronized_standby_slots is empty")
		return
	}
	t.Logf("PostgreSQL %d: no failover slots", major)
	out, code := runCmd(t, nil, "pgjet-collector", append([]string{"check"}, args...)...)
	if code != 1 {
		t.Errorf("check exit code %d, want 1", code)
	}
	wantLines(t, "check", out, "FAIL --failover (source.config.failover) needs PostgreSQL 17 or later")
	out, code = runCmd(t, nil, "pgjet-collector", args...)
	if code != 1 {
		t.Errorf("collector exit code %d, want 1", code)
	}
	wantLines(t, "collector", out, "--failover (source.config.failover) needs PostgreSQL 17 or later, this server is")
	var slots int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("%d slots created by a collector that refused to start", slots)
	}
}
