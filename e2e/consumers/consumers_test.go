// Package consumers holds the consumer examples of docs/consumers.md (Go in
// go/, Node.js in node/, Python in python/) and runs them against a live
// pipeline: a throwaway Postgres, nats-server, pgjet-collector and
// pgjet-router with testdata/pipeline.yaml.
package consumers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

const schema = `CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text)`

// The first changes, and the one made while the durable consumers are
// stopped.
var (
	changes = []string{
		`INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com')`,
		`INSERT INTO users (name, email) VALUES ('Grace', 'grace@example.com')`,
		`UPDATE users SET email = 'ada@lovelace.org' WHERE id = 1`,
		`DELETE FROM users WHERE id = 2`,
	}
	later = `INSERT INTO users (name, email) VALUES ('Edsger', 'ewd@example.com')`
)

// pipeline is a live pipeline of testdata/pipeline.yaml.
type pipeline struct {
	pg   *pgtest.Cluster
	nats *harness.NATS
	conn *pgx.Conn
	js   jetstream.JetStream
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	ctx := context.Background()
	// A small max_payload lets a large row make a dead letter (the
	// collector splits it across raw messages; its event cannot be split).
	p := &pipeline{pg: pgtest.Run(t), nats: harness.StartNATSWith(t, "", "max_payload: 65536")}
	conn, err := pgx.Connect(ctx, p.pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	p.conn = conn
	p.exec(t, schema)
	_, p.js = p.nats.Connect(t)
	file, err := filepath.Abs("testdata/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTGRES_DSN=" + p.pg.DSN(""), "NATS_URL=" + p.nats.URL()}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	for _, id := range []string{"events", "users", "users-binary", "dbz"} {
		if !rt.WaitForLog("msg=relaying route="+id+" ", 30*time.Second) {
			t.Fatalf("route %s did not start relaying", id)
		}
	}
	return p
}

func (p *pipeline) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := p.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// waitStored waits until every output stream holds n messages.
func (p *pipeline) waitStored(t *testing.T, n uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"PGJET_EVENTS", "USERS", "USERS_BINARY", "DBZ"} {
		for {
			s, err := p.js.Stream(ctx, name)
			if err == nil {
				var info *jetstream.StreamInfo
				if info, err = s.Info(ctx); err == nil && info.State.Msgs >= n {
					break
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("stream %s does not hold %d messages: %v", name, n, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Invariant: every consumer example of docs/consumers.md that can run here
// (Go, Node.js, the nats CLI) reads the live pipeline's events as the doc
// says: each event once, in commit order, a durable consumer resuming after
// its last ack, a replay from a sequence or a time ending once caught up,
// CloudEvents read by the SDKs in both modes, Debezium values read by
// their fields.
func TestConsumerExamples(t *testing.T) {
	nodeDir := nodeExamples(t)
	goBin := buildGoExamples(t)
	p := startPipeline(t)
	for _, sql := range changes {
		p.exec(t, sql)
	}
	p.waitStored(t, uint64(len(changes)))
	natsEnv := "NATS_URL=" + p.nats.URL()
	node := func(script string) []string { return []string{nodeBinary(t), filepath.Join(nodeDir, script)} }
	langs := []struct {
		name string
		cmd  func(example string) []string
	}{
		{"go", func(ex string) []string { return []string{filepath.Join(goBin, ex)} }},
		{"node", func(ex string) []string { return node(ex + ".mjs") }},
	}

	durableFirst := []string{
		`insert public.users key={"id":1} lsn=* index=0`,
		`insert public.users key={"id":2} lsn=* index=0`,
		`update public.users key={"id":1} lsn=* index=0`,
		`delete public.users key={"id":2} lsn=* index=0`,
	}
	durableLater := []string{`insert public.users key={"id":3} lsn=* index=0`}
	t.Run("durable", func(t *testing.T) {
		for _, l := range langs {
			env := []string{natsEnv, "DURABLE=" + l.name + "-durable", "SUBJECT=postgres.public.>"}
			expectServe(t, l.name+" durable", l.cmd("durable"), env, durableFirst)
		}
		// Stopped; a change; started again: only the new event.
		p.exec(t, later)
		p.waitStored(t, uint64(len(changes)+1))
		for _, l := range langs {
			env := []string{natsEnv, "DURABLE=" + l.name + "-durable", "SUBJECT=postgres.public.>"}
			expectServe(t, l.name+" durable after a restart", l.cmd("durable"), env, durableLater)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("replay", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		third, err := p.js.Stream(ctx, "PGJET_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		m, err := third.GetMsg(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		all := []string{
			"1 * postgres.public.users.insert",
			"2 * postgres.public.users.insert",
			"3 * postgres.public.users.update",
			"4 * postgres.public.users.delete",
			"5 * postgres.public.users.insert",
		}
		for _, l := range langs {
			expectRun(t, l.name+" replay from seq 2", append(l.cmd("replay"), "--from-seq", "2"), []string{natsEnv}, all[1:])
			expectRun(t, l.name+" replay from time", append(l.cmd("replay"), "--from-time", m.Time.UTC().Format(time.RFC3339Nano)), []string{natsEnv}, all[2:])
			expectRun(t, l.name+" replay past the end", append(l.cmd("replay"), "--from-seq", "6"), []string{natsEnv}, nil)
		}
	})

	ce := []string{
		`com.acme.users.created public.users lsn=* {"before":null,"after":{"id":1,"name":"Ada","email":"ada@example.com"},"op":"c"}`,
		`com.acme.users.created public.users lsn=* {"before":null,"after":{"id":2,"name":"Grace","email":"grace@example.com"},"op":"c"}`,
		`com.acme.users.updated public.users lsn=* {"before":null,"after":{"id":1,"name":"Ada","email":"ada@lovelace.org"},"op":"u"}`,
		`com.acme.users.deleted public.users lsn=* {"before":{"id":2},"after":null,"op":"d"}`,
		`com.acme.users.created public.users lsn=* {"before":null,"after":{"id":3,"name":"Edsger","email":"ewd@example.com"},"op":"c"}`,
	}
	t.Run("cloudevents", func(t *testing.T) {
		for _, l := range langs {
			for _, mode := range []struct{ stream, subject string }{{"USERS", "users.events"}, {"USERS_BINARY", "users.binary"}} {
				env := []string{natsEnv, "STREAM=" + mode.stream, "SUBJECT=" + mode.subject, "DURABLE=" + l.name + "-ce"}
				expectServe(t, l.name+" cloudevents "+mode.stream, l.cmd("cloudevents"), env, ce)
			}
		}
	})

	dbz := []string{
		`upsert public.users key={"id":1} after={"id":1,"name":"Ada","email":"ada@example.com"} lsn=*`,
		`upsert public.users key={"id":2} after={"id":2,"name":"Grace","email":"grace@example.com"} lsn=*`,
		`upsert public.users key={"id":1} after={"id":1,"name":"Ada","email":"ada@lovelace.org"} lsn=*`,
		`delete public.users key={"id":2} lsn=*`,
		`upsert public.users key={"id":3} after={"id":3,"name":"Edsger","email":"ewd@example.com"} lsn=*`,
	}
	t.Run("debezium", func(t *testing.T) {
		for _, l := range langs {
			env := []string{natsEnv, "DURABLE=" + l.name + "-dbz"}
			expectServe(t, l.name+" debezium", l.cmd("debezium"), env, dbz)
		}
	})

	// An event larger than the server's max_payload: a dead letter.
	p.exec(t, `INSERT INTO users (name, email) VALUES ('Big', repeat('x', 100000))`)
	p.waitStored(t, uint64(len(changes)+2))
	t.Run("nats-cli", func(t *testing.T) { runCLIBlocks(t, p) })
}

var lsnField = regexp.MustCompile(`lsn=\S+`)

// outputLines is what a process printed, its commit LSNs masked (they
// differ from run to run).
func outputLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, lsnField.ReplaceAllString(l, "lsn=*"))
		}
	}
	return lines
}

// expectServe runs a consumer that serves until interrupted: once it has
// printed as many lines as want, it gets SIGINT and must exit 0 having
// printed exactly want.
func expectServe(t *testing.T, what string, argv, env, want []string) {
	t.Helper()
	p := harness.StartProcess(t, argv[0], argv[1:], env)
	deadline := time.Now().Add(30 * time.Second)
	for len(outputLines(p.Log())) < len(want) && !p.Exited() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// Anything more (a duplicate) would come at once.
	time.Sleep(500 * time.Millisecond)
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("%s: %v\n%s", what, err, p.Log())
		return
	}
	compare(t, what, outputLines(p.Log()), want)
}

// expectRun runs a command that ends by itself and compares its output with
// want, where "*" stands for the second field (a time).
func expectRun(t *testing.T, what string, argv, env, want []string) {
	t.Helper()
	p := harness.StartProcess(t, argv[0], argv[1:], env)
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not end within 30s:\n%s", what, p.Log())
	}
	if err := p.Wait(); err != nil {
		t.Errorf("%s: %v\n%s", what, err, p.Log())
		return
	}
	got := outputLines(p.Log())
	for i, l := range got {
		if f := strings.Fields(l); len(f) == 3 {
			if _, err := time.Parse(time.RFC3339Nano, f[1]); err == nil {
				got[i] = f[0] + " * " + f[2]
			}
		}
	}
	compare(t, what, got, want)
}

func compare(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s printed\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// buildGoExamples builds go/* into a temp dir.
func buildGoExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	}
	cmd := exec.Command(goTool, "build", "-o", dir+"/", "./go/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./go/...: %v\n%s", err, out)
	}
	return dir
}

// nodeExamples is the directory of the Node.js examples, with their
// packages installed by `make consumer-tools`.
func nodeExamples(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	nodeBinary(t)
	for _, pkg := range []string{"nats", "cloudevents"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the Node.js examples' packages are not installed (%v): run `make consumer-tools` (npm ci in e2e/consumers/node)", err)
		}
	}
	return dir
}

func nodeBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing: run `make consumer-tools` (as root it installs Debian's nodejs) or install Node.js 18+")
	}
	return p
}
