package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariant: the collector's embedded server requires the password it is
// given: a router that logs in with it relays the changes; one with a
// wrong password ends with one line that does not hold either password;
// and the collector refuses to listen beyond loopback without
// authentication unless told to.
func TestEmbeddedServerAuthentication(t *testing.T) {
	e := newEnv(t, `CREATE TABLE notes (id int PRIMARY KEY, v text)`, "public.notes")
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("emb-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	col := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", e.pg.DSN(""), "--slot", "embauth", "--publication", "embauth", "--tables", "public.notes",
		"--embedded", t.TempDir(), "--listen", listen, "--embedded-user", "pgjet", "--embedded-password-file", pw,
	}, nil)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", "nats://" + listen, "--nats-user", "pgjet", "--stdout", "json"},
		[]string{"PGJET_NATS_PASSWORD=emb-s3cret"})
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	e.exec(`INSERT INTO notes VALUES (1, 'through the embedded server')`)
	if !rt.WaitForLog(`"through the embedded server"`, 30*time.Second) {
		t.Fatal("the change did not reach the authenticated router")
	}

	bad := harness.StartProcess(t, "pgjet-router", []string{"--nats", "nats://" + listen, "--nats-user", "pgjet", "--durable", "bad"},
		[]string{"PGJET_NATS_PASSWORD=not-it"})
	if err := waitProc(t, bad); err == nil {
		t.Fatal("a router with a wrong password exited 0")
	}
	if out := strings.TrimSpace(bad.Log()); !strings.Contains(out, "refused the credentials") || strings.Contains(out, "not-it") ||
		strings.Contains(out, "emb-s3cret") || strings.Count(out, "\n") > 0 {
		t.Errorf("want one line saying the credentials were refused, without secrets:\n%s", out)
	}

	open := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", e.pg.DSN(""), "--slot", "embopen", "--publication", "embauth",
		"--embedded", t.TempDir(), "--listen", "0.0.0.0:0", "--check-config",
	}, nil)
	if err := waitProc(t, open); err == nil || !strings.Contains(open.Log(), "reaches beyond loopback and the embedded server has no authentication") {
		t.Errorf("listening on 0.0.0.0 without authentication: exit %v\n%s", err, open.Log())
	}
	for _, p := range []*harness.Proc{col, rt} {
		if strings.Contains(p.Log(), "emb-s3cret") {
			t.Errorf("%s logged the password", p.Name)
		}
	}
}

// waitProc waits for p to exit (at most 30 s) and returns its exit error.
func waitProc(t *testing.T, p *harness.Proc) error {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit", p.Name)
	}
	return p.Wait()
}
