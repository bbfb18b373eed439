package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// The seed's table (pgoutput-stream's examples/setup.sql has users and
// orders); its publication is the user's, as pgoutput-stream expects.
const seedUsersSchema = `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE PUBLICATION my_pub FOR TABLE users;
`

// startPgjet runs bin/pgjet with args as a user types them, its embedded
// server's store in a directory of its own (PGJET_DATA: the command line
// stays as written), and waits until every route in routes relays.
func startPgjet(t *testing.T, args []string, env []string, routes ...string) *harness.Proc {
	t.Helper()
	p := harness.StartProcess(t, "pgjet", args, append([]string{"PGJET_DATA=" + t.TempDir()}, env...))
	for _, r := range routes {
		relaying := "msg=relaying part=router route=" + r + " "
		if len(routes) == 1 {
			relaying = "msg=relaying part=router " // one route: no route= in its lines
		}
		if !p.WaitForLog(relaying, 60*time.Second) {
			t.Fatalf("pgjet %s: route %s did not start relaying", strings.Join(args, " "), r)
		}
	}
	if !p.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatalf("pgjet %s: the collector does not stream", strings.Join(args, " "))
	}
	return p
}

// seedRound makes the seed's changes: its INSERT and UPDATE, a delete and a
// transaction of three rows.
func (e *env) seedRound(round int) {
	e.t.Helper()
	alice := fmt.Sprintf("Alice %d", round)
	e.exec(`INSERT INTO users (name, email) VALUES ($1, 'alice@example.com')`, alice)
	e.exec(`UPDATE users SET email = 'alice.new@example.com' WHERE name = $1`, alice)
	e.exec(`BEGIN; INSERT INTO users (name) VALUES ('Bob'), ('Carol'), ('Dave'); DELETE FROM users WHERE name = 'Carol'; COMMIT`)
}

// newChanges reads the audit and returns the changes after the first n.
func (e *env) newChanges(n int) ([]check.Change, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	return all[n:], len(all)
}

// stdoutDocs are the JSON documents pgjet printed on its stdout (one per
// line; its log lines, on stderr, are key=value text).
func stdoutDocs(t *testing.T, log string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			var d map[string]any
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("stdout line is not JSON: %v: %s", err, line)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

// checkBracketed checks that docs (one transaction after the other) are
// change events each inside its transaction's begin and commit events,
// with a relation event before a table's first change, and returns the
// change events.
func checkBracketed(t *testing.T, what string, docs []map[string]any) []check.Event {
	t.Helper()
	var events []check.Event
	var open map[string]any
	related := map[string]bool{}
	for _, d := range docs {
		switch d["op"] {
		case "begin":
			if open != nil {
				t.Fatalf("%s: begin inside the transaction at %v", what, open["lsn"])
			}
			open = d
		case "commit":
			if open == nil || d["lsn"] != open["lsn"] {
				t.Fatalf("%s: commit at %v closes no transaction", what, d["lsn"])
			}
			open = nil
		case "relation":
			related[fmt.Sprint(d["schema"], ".", d["table"])] = true
		default:
			if open == nil || d["lsn"] != open["lsn"] {
				t.Fatalf("%s: %v at %v outside its transaction's begin and commit", what, d["op"], d["lsn"])
			}
			if !related[fmt.Sprint(d["schema"], ".", d["table"])] {
				t.Errorf("%s: %v of %v.%v before its relation event", what, d["op"], d["schema"], d["table"])
			}
			b, _ := json.Marshal(d)
			ev, err := check.ParseEvent(b)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
	}
	if open != nil {
		t.Errorf("%s: the transaction at %v has no commit", what, open["lsn"])
	}
	return events
}

// Invariant: pgoutput-stream's commands, exactly as its NATS integration
// document writes them (../shared/seeds/000_*), run as pgjet against a live
// Postgres and do what it describes: every change printed on stdout as JSON
// (inside its transaction's begin and commit events, after its table's
// relation event); with --nats-server also published to stream
// postgres_replication (1,000,000 messages, 1 GiB, limits retention) on
// postgres.<schema>.<table>.<op>, postgres.transactions.<begin|commit>.event
// and postgres.<schema>.<table>.relation, or the stream and prefix given;
// each change exactly once, in commit order, with Postgres's values.
func TestPgoutputStreamSeedCommands(t *testing.T) {
	e := newEnv(t, seedUsersSchema, "public.users")
	// The seed's "host=localhost user=postgres dbname=mydb", this test's server.
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", e.pg.Port)
	seen := 0
	for i, tc := range []struct {
		name   string
		args   []string // after the seed's --connection, --slot and --publication
		stream string   // "": stdout only
		prefix string
	}{
		{name: "basic usage (stdout only)"},
		{name: "with NATS", args: []string{"--nats-server", e.nats.URL()}, stream: "postgres_replication", prefix: "postgres"},
		{name: "custom stream configuration", args: []string{"--nats-server", e.nats.URL(), "--nats-stream", "my_custom_stream", "--nats-subject-prefix", "myapp"},
			stream: "my_custom_stream", prefix: "myapp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--connection", conn, "--slot", "my_slot", "--publication", "my_pub"}, tc.args...)
			routes := []string{"stdout"}
			if tc.stream != "" {
				routes = append(routes, "nats")
			}
			p := startPgjet(t, args, nil, routes...)
			e.seedRound(i)
			var changes []check.Change
			changes, seen = e.newChanges(seen)
			// Wait for the last change's commit event on stdout.
			deadline := time.Now().Add(30 * time.Second)
			for countOps(stdoutDocs(t, p.Log()), "commit") < 3 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if err := p.Stop(); err != nil {
				t.Errorf("pgjet did not stop cleanly on SIGTERM: %v", err)
			}
			events := checkBracketed(t, "stdout", stdoutDocs(t, p.Log()))
			if r := check.Check(changes, events); !r.OK() {
				t.Fatalf("stdout: %s", r.String())
			}
			if tc.stream == "" {
				return
			}
			checkSeedStream(t, e, tc.stream, tc.prefix, changes)
		})
	}

	t.Run("text format", func(t *testing.T) {
		args := []string{"--connection", conn, "--slot", "my_slot", "--publication", "my_pub", "--format", "text"}
		p := startPgjet(t, args, nil, "stdout")
		e.exec(`INSERT INTO users (name, email) VALUES ('Test', 'test@example.com')`)
		if !p.WaitForLog("INSERT public.users", 30*time.Second) {
			t.Errorf("no text line for the seed's INSERT:\n%s", p.Log())
		}
	})
}

func countOps(docs []map[string]any, op string) int {
	n := 0
	for _, d := range docs {
		if d["op"] == op {
			n++
		}
	}
	return n
}

// checkSeedStream checks stream as pgoutput-stream creates and fills it.
func checkSeedStream(t *testing.T, e *env, stream, prefix string, changes []check.Change) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxMsgs != 1_000_000 || c.MaxBytes != 1<<30 || c.Retention != jetstream.LimitsPolicy {
		t.Errorf("stream %s: max_msgs %d, max_bytes %d, retention %v; pgoutput-stream's are 1000000, 1 GiB, limits", stream, c.MaxMsgs, c.MaxBytes, c.Retention)
	}
	msgs := readStream(ctx, t, js, stream, int(info.State.Msgs))
	var docs []map[string]any
	var events []check.Event
	for _, m := range msgs {
		var d map[string]any
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			t.Fatalf("%s: %v", m.Subject(), err)
		}
		var want string
		switch d["op"] {
		case "begin", "commit":
			want = prefix + ".transactions." + d["op"].(string) + ".event"
		case "relation":
			want = fmt.Sprintf("%s.%s.%s.relation", prefix, d["schema"], d["table"])
		default:
			want = fmt.Sprintf("%s.%s.%s.%s", prefix, d["schema"], d["table"], d["op"])
		}
		if m.Subject() != want {
			t.Errorf("%v event on %s, want %s", d["op"], m.Subject(), want)
		}
		docs = append(docs, d)
	}
	for i, ev := range checkBracketed(t, stream, docs) {
		_ = i
		events = append(events, ev)
	}
	// Ids: every message of the stream carries its Nats-Msg-Id.
	for _, m := range msgs {
		if m.Headers().Get(jetstream.MsgIDHeader) == "" {
			t.Errorf("%s without Nats-Msg-Id", m.Subject())
		}
	}
	if r := check.Check(changes, events); !r.OK() {
		t.Fatalf("stream %s: %s", stream, r.String())
	}
}

// Invariant: the one-process command run from a pipeline file (pgjet
// --config deploy/pipeline/embedded.yaml: collector, embedded JetStream
// server and routes in one process) loses and doubles nothing across kill
// -9 of that process, one while changes are being written: every committed
// change is in its output stream exactly once, in commit order, with
// Postgres's values (e2e/check, as for the two-process deployment); and its
// --metrics serves both parts' metrics, ready when both are.
func TestOneProcessSurvivesKill9(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders")
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	file := harness.RepoFile(t, "deploy/pipeline/embedded.yaml")
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "PGJET_LISTEN=" + listen}
	data := t.TempDir()
	start := func(args ...string) *harness.Proc {
		p := harness.StartProcess(t, "pgjet", append([]string{"--config", file}, args...), append(env, "PGJET_DATA="+data))
		if !p.WaitForLog("msg=relaying part=router route=events ", 60*time.Second) || !p.WaitForLog("msg=streaming", 30*time.Second) {
			t.Fatal("pgjet did not start relaying")
		}
		return p
	}

	p := start("--metrics", "127.0.0.1:0")
	e.mixed(1)
	// One endpoint serves both parts' metrics, ready when both are.
	base := metricsURL(t, p, `msg="serving metrics" url=`)
	waitStatus(t, base+"/readyz", 200, 30*time.Second)
	waitMetric(t, base, "pgjet_router_events_total", `op="insert"`, 30*time.Second, func(v float64) bool { return v > 0 })
	waitMetric(t, base, "pgjet_collector_changes_total", "", 30*time.Second, func(v float64) bool { return v > 0 })
	waitMetric(t, base, "pgjet_ready", "", 5*time.Second, func(v float64) bool { return v == 1 })
	p.Kill()
	p = start()
	// Killed while a round of changes is being written.
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.mixed(2)
	}()
	if !p.WaitForLog("INSERT public.orders", 30*time.Second) {
		t.Fatal("pgjet printed nothing of the second round")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	p.Kill()
	p = start()
	e.mixed(3)

	changes, _ := e.newChanges(0)
	nc, err := nats.Connect("nats://" + listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var events []check.Event
	deadline := time.Now().Add(2 * time.Minute)
	for {
		events = events[:0]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, m := range readStream(ctx, t, js, "postgres_replication", len(changes)) {
			var d struct{ Op string }
			if err := json.Unmarshal(m.Data(), &d); err != nil {
				t.Fatal(err)
			}
			if d.Op == "begin" || d.Op == "commit" || d.Op == "relation" {
				continue
			}
			ev, err := check.ParseEvent(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			ev.MsgID, ev.Subject = m.Headers().Get(jetstream.MsgIDHeader), m.Subject()
			events = append(events, ev)
		}
		cancel()
		if len(events) >= len(changes) || time.Now().After(deadline) {
			break
		}
	}
	r := check.Check(changes, events)
	t.Logf("one process, kill -9 twice: %s", r.String())
	if !r.OK() {
		t.Fatalf("invariant violated: %s", r.String())
	}
	_ = p
}
