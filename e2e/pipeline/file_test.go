package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

const seedSchema = `
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz);
CREATE TABLE profiles (user_id int PRIMARY KEY REFERENCES users ON DELETE CASCADE, bio text);
CREATE TABLE user_sessions (id serial PRIMARY KEY, user_id int, started timestamptz DEFAULT now());
`

// Invariant: the DeltaForge seed's pipeline file runs as written — read as
// deltaforge/v1 by the collector and as pgjet/v1 by the router, with the DSN
// and URL from the environment — and the seed's INSERT and UPDATE (and the
// other changes of its three tables) arrive on users.events in stream USERS
// as the seed shows them: CloudEvents of type com.acme.users.created,
// .updated or .deleted, subject public.<table>, a source naming the source
// and the table, data {before, after, op}; exactly once, in commit order,
// with values equal to Postgres's own rendering.
func TestSeedPipelineFileRunsAsWritten(t *testing.T) {
	e := newEnv(t, seedSchema, "public.users", "public.profiles", "public.user_sessions")
	file := harness.RepoFile(t, "deploy/pipeline/users-cloudevents.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	df := filepath.Join(t.TempDir(), "deltaforge.yaml")
	if err := os.WriteFile(df, bytes.Replace(data, []byte("apiVersion: pgjet/v1"), []byte("apiVersion: deltaforge/v1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL()}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", df}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	if !strings.Contains(col.Log(), "deltaforge/v1") {
		t.Error("the collector did not say that it reads a deltaforge/v1 file as a pgjet pipeline")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}

	// The seed's own statements, then the other two tables.
	e.exec(`INSERT INTO users (name, email, created_at) VALUES ('Alice', 'alice@example.com', NOW())`)
	e.exec(`UPDATE users SET email = 'alice.new@example.com' WHERE name = 'Alice'`)
	e.exec(`INSERT INTO profiles SELECT id, 'likes ' || name FROM users`)
	e.exec(`INSERT INTO user_sessions (user_id) SELECT id FROM users`)
	e.exec(`BEGIN; INSERT INTO users (name) VALUES ('Bob'); UPDATE profiles SET bio = bio || '!'; DELETE FROM user_sessions; COMMIT`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)
	msgs := readStream(ctx, t, js, "USERS", len(changes))
	var events []check.Event
	types := map[string]int{}
	for i, m := range msgs {
		if m.Subject() != "users.events" {
			t.Errorf("event on %s, want users.events", m.Subject())
		}
		ev := readCloudEvent(t, m, false)
		ce := seedEvent(t, ev, "users-postgres")
		types[ev.Type()]++
		if i == 0 {
			// The seed's example, but for id, time and the column values.
			var d struct {
				Before json.RawMessage
				After  map[string]json.RawMessage
				Op     string
			}
			if err := json.Unmarshal(ev.Data(), &d); err != nil {
				t.Fatal(err)
			}
			if ev.Type() != "com.acme.users.created" || ev.Subject() != "public.users" || ev.Source() != "/pgjet/users-postgres/public.users" ||
				string(d.Before) != "null" || d.Op != "c" || string(d.After["name"]) != `"Alice"` || string(d.After["email"]) != `"alice@example.com"` {
				t.Errorf("the seed's INSERT is not the seed's event:\n%s", ev)
			}
		}
		if md, err := m.Metadata(); err == nil {
			ce.Seq = md.Sequence.Stream
		}
		ce.Subject = m.Subject()
		events = append(events, ce)
	}
	want := map[string]int{"com.acme.users.created": 4, "com.acme.users.updated": 2, "com.acme.users.deleted": 1}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("types %v, want %v", types, want)
	}
	r := check.Check(changes, events)
	t.Logf("%s", r.String())
	if !r.OK() || r.Committed != 7 {
		t.Fatalf("invariant violated: %s", r.String())
	}
}

// seedOps are the seed form's types and Debezium's op letters, by type suffix.
var seedOps = map[string]struct{ op, letter string }{
	"created": {"insert", "c"}, "updated": {"update", "u"}, "deleted": {"delete", "d"}, "truncated": {"truncate", "t"},
}

// seedEvent checks the seed's shape of a row change from source src and
// builds the check.Event it stands for: op from the type (and the letter
// in data, which must agree), schema and table from the subject, commit LSN,
// xid and index from the pgjet extensions, before and after from data.
func seedEvent(t *testing.T, ev *event.Event, src string) check.Event {
	t.Helper()
	suffix, ok := strings.CutPrefix(ev.Type(), "com.acme.users.")
	op, known := seedOps[suffix]
	if !ok || !known {
		t.Fatalf("type %q is not com.acme.users.created|updated|deleted|truncated", ev.Type())
	}
	schema, table, ok := strings.Cut(ev.Subject(), ".")
	if !ok || strings.Contains(table, ".") {
		t.Fatalf("subject %q is not schema.table", ev.Subject())
	}
	if want := "/pgjet/" + src + "/" + ev.Subject(); ev.Source() != want {
		t.Errorf("source %q, want %q", ev.Source(), want)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(ev.Data(), &data); err != nil {
		t.Fatalf("data: %v\n%s", err, ev.Data())
	}
	for _, k := range []string{"before", "after", "op"} {
		if _, ok := data[k]; !ok {
			t.Errorf("data lacks %s: %s", k, ev.Data())
		}
	}
	for k := range data {
		if k != "before" && k != "after" && k != "op" && k != "unchanged" {
			t.Errorf("data has %s, not the seed's {before, after, op}: %s", k, ev.Data())
		}
	}
	if string(data["op"]) != `"`+op.letter+`"` {
		t.Errorf("op %s in a %s event", data["op"], ev.Type())
	}
	ext := func(name string) string {
		v, err := ev.Context.GetExtension(name)
		s, ok := v.(string)
		if err != nil || !ok {
			t.Fatalf("extension %s: %v (%T)", name, err, v)
		}
		return s
	}
	xid, err1 := strconv.ParseUint(ext("pgjetxid"), 10, 32)
	index, err2 := strconv.ParseUint(ext("pgjetindex"), 10, 64)
	lsn := ext("pgjetlsn")
	if _, err := check.ParseLSN(lsn); err != nil || err1 != nil || err2 != nil {
		t.Fatalf("extensions pgjetlsn %q, pgjetxid %q, pgjetindex %q", lsn, ext("pgjetxid"), ext("pgjetindex"))
	}
	ce := check.Event{
		Op: op.op, Source: src, Schema: schema, Table: table, LSN: lsn, Xid: uint32(xid), Index: index,
		CommitTime: ev.Time().UTC().Format(time.RFC3339Nano), Before: data["before"], After: data["after"], MsgID: ev.ID(),
	}
	if u, ok := data["unchanged"]; ok {
		if err := json.Unmarshal(u, &ce.Unchanged); err != nil {
			t.Fatalf("unchanged: %v", err)
		}
	}
	return ce
}

// Invariant: three routes of one pipeline file run at once from one router
// — different table filters, a masked and a dropped column, a hashed one, a
// template subject and a fixed one, two output streams and stdout — and each
// output holds exactly its tables' changes, once each and in commit order,
// with the column rules applied, while no masked, dropped or hashed value
// appears anywhere the router writes (streams, dead letters, stdout, log).
func TestThreeRoutesFromOneFile(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events")
	file := harness.RepoFile(t, "deploy/pipeline/multi-route.yaml")
	const hashKey = "0123456789abcdef0123456789abcdef"
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL(), "PGJET_HASH_KEY=" + hashKey}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	for _, id := range []string{"crm", "shop", "audit"} {
		if !rt.WaitForLog("msg=relaying route="+id+" ", 30*time.Second) {
			t.Fatalf("route %s did not start relaying", id)
		}
	}
	e.mixed(1)
	e.mixed(2)
	e.exec(`UPDATE orders SET note = 'same note' WHERE id % 4 = 0`)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	byTable := map[string][]check.Change{}
	var secrets []string // values that must not appear in any output
	for _, c := range changes {
		byTable[c.Table] = append(byTable[c.Table], c)
		if c.Table == "users" {
			for _, row := range [][]byte{c.Before, c.After} {
				var v struct {
					Email *string `json:"email"`
					Bio   *string `json:"bio"`
				}
				if row != nil && json.Unmarshal(row, &v) == nil {
					if v.Email != nil {
						secrets = append(secrets, *v.Email)
					}
					if v.Bio != nil && len(*v.Bio) > 8 {
						secrets = append(secrets, (*v.Bio)[:32])
					}
				}
			}
		}
	}
	if len(secrets) == 0 {
		t.Fatal("the workload wrote no emails: nothing to check the mask against")
	}

	// crm: users only, email masked, bio dropped.
	crm := rewriteColumns(t, byTable["users"], func(col string, v json.RawMessage) (json.RawMessage, bool) {
		switch col {
		case "bio":
			return nil, false
		case "email":
			if string(v) == "null" {
				return v, true
			}
			return json.RawMessage(`"***"`), true
		}
		return v, true
	})
	_, js := e.nats.Connect(t)
	crmEvents, err := check.Drain(ctx, js, "CRM", "", len(crm), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range crmEvents {
		if want := "crm.users." + ev.Op; ev.Subject != want {
			t.Errorf("crm event on %s, want %s", ev.Subject, want)
		}
	}
	expect(t, "crm", crm, crmEvents)

	// shop: orders only (users and events excluded), all on shop.orders,
	// note hashed with the key.
	shop := rewriteColumns(t, byTable["orders"], func(col string, v json.RawMessage) (json.RawMessage, bool) {
		if col != "note" || string(v) == "null" {
			return v, true
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, []byte(hashKey))
		m.Write([]byte(s))
		return json.RawMessage(`"` + hex.EncodeToString(m.Sum(nil)) + `"`), true
	})
	shopEvents, err := check.Drain(ctx, js, "SHOP", "", len(shop), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range shopEvents {
		if ev.Subject != "shop.orders" {
			t.Errorf("shop event on %s, want the fixed subject shop.orders", ev.Subject)
		}
	}
	expect(t, "shop", shop, shopEvents)

	// audit: the events table on stdout, as native JSON lines.
	var printed []check.Event
	deadline := time.Now().Add(time.Minute)
	for {
		printed = printed[:0]
		sc := bufio.NewScanner(strings.NewReader(rt.Log()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := sc.Bytes(); bytes.HasPrefix(line, []byte(`{"op":`)) {
				ev, err := check.ParseEvent(line)
				if err != nil {
					t.Fatal(err)
				}
				printed = append(printed, ev)
			}
		}
		if len(printed) >= len(byTable["events"]) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	expect(t, "audit (stdout)", byTable["events"], printed)

	// Nothing of a masked or dropped value anywhere.
	var everything bytes.Buffer
	for _, stream := range []string{"CRM", "SHOP"} {
		for _, m := range readStream(ctx, t, js, stream, 0) {
			everything.Write(m.Data())
			for k, vs := range m.Headers() {
				fmt.Fprintf(&everything, "%s: %s\n", k, strings.Join(vs, ","))
			}
		}
	}
	everything.WriteString(rt.Log())
	for _, s := range secrets {
		if bytes.Contains(everything.Bytes(), []byte(s)) {
			t.Fatalf("a masked or dropped value (%q) reached an output", s)
		}
	}
	if strings.Contains(rt.Log(), "level=ERROR") {
		t.Error("router logged an error")
	}
}

// expect checks one route's output against the changes it must hold.
func expect(t *testing.T, route string, changes []check.Change, events []check.Event) {
	t.Helper()
	r := check.Check(changes, events)
	t.Logf("%s: %s", route, r.String())
	if !r.OK() || r.Committed == 0 {
		t.Errorf("route %s: invariant violated: %s", route, r.String())
	}
}

// rewriteColumns applies a route's column rules to the audit's rows: f
// returns a column's new value, or false to drop it.
func rewriteColumns(t *testing.T, changes []check.Change, f func(col string, v json.RawMessage) (json.RawMessage, bool)) []check.Change {
	t.Helper()
	out := make([]check.Change, len(changes))
	for i, c := range changes {
		out[i] = c
		for _, row := range []*[]byte{&out[i].Before, &out[i].After} {
			if *row == nil {
				continue
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(*row, &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				if nv, keep := f(k, v); keep {
					m[k] = nv
				} else {
					delete(m, k)
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			*row = b
		}
	}
	return out
}

// Invariant: the raw stream and a sink each use the connection the
// pipeline file gives them — here two servers, the raw stream's requiring a
// user and a password read from a file, the sink's a token from the
// environment — and a change flows through both; a wrong password in the
// file ends the router with one line that does not contain it.
func TestPipelineFileConnections(t *testing.T) {
	e := newEnv(t, `CREATE TABLE items (id int PRIMARY KEY, v text)`, "public.items")
	rawNATS := harness.StartNATSWith(t, "", `authorization { users: [ {user: pgjet, password: "raw-s3cret"} ] }`)
	outNATS := harness.StartNATSWith(t, "", `authorization { token: "out-t0ken" }`)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "raw.password")
	if err := os.WriteFile(pwFile, []byte("raw-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pipelineFile := func(pw string) string {
		p := filepath.Join(t.TempDir(), "pipeline.yaml")
		src := fmt.Sprintf(`apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: conns}
spec:
  source:
    type: postgres
    config: {id: items, dsn: "${POSTGRES_DSN}", slot: conns, publication: conns, tables: [public.items]}
  raw_stream:
    url: %s
    username: pgjet
    password_file: %s
  sinks:
    - type: nats
      config:
        id: out
        url: %s
        token: ${OUT_TOKEN}
        stream: ITEMS
`, rawNATS.URL(), pw, outNATS.URL())
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := pipelineFile(pwFile)
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "OUT_TOKEN=out-t0ken"}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", good}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", good}, env)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	e.exec(`INSERT INTO items VALUES (1, 'one'), (2, 'two')`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := outNATS.Connect(t, nats.Token("out-t0ken"))
	events, err := check.Drain(ctx, js, "ITEMS", "", len(changes), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "out", changes, events)

	wrongPW := filepath.Join(dir, "wrong.password")
	if err := os.WriteFile(wrongPW, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := harness.StartProcess(t, "pgjet-router", []string{"--config", pipelineFile(wrongPW)}, env)
	select {
	case <-bad.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a router with a wrong password did not exit")
	}
	if bad.Wait() == nil {
		t.Fatal("a router with a wrong password exited 0")
	}
	out := bad.Log()
	if !strings.Contains(out, "refused the credentials") || strings.Contains(out, "not-the-password") || strings.Contains(out, "out-t0ken") ||
		strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Fatalf("want one line saying the credentials were refused, without secrets:\n%s", out)
	}
	for _, p := range []*harness.Proc{col, rt} {
		if log := p.Log(); strings.Contains(log, "raw-s3cret") || strings.Contains(log, "out-t0ken") {
			t.Errorf("%s logged a secret", p.Name)
		}
	}
}
