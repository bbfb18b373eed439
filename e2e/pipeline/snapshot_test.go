package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/wire"
)

// twoSinks is a pipeline with two routes on table t: sink a (native, stream
// A) and sink b (Debezium, stream B).
const twoSinks = `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: snap}
spec:
  source:
    type: postgres
    config:
      id: e2e
      dsn: ${POSTGRES_DSN}
      slot: pgjet_e2e
      publication: pgjet_e2e
      tables: [public.t]
      snapshot: {mode: never, chunk_rows: 100}
  raw_stream: {url: "${NATS_URL}"}
  sinks:
    - type: nats
      config: {id: a, url: "${NATS_URL}", stream: A, prefix: a}
    - type: nats
      config: {id: b, url: "${NATS_URL}", stream: B, prefix: b, envelope: {type: debezium}}
`

// count is the number of messages stream holds.
func count(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitCount(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := count(ctx, t, js, stream)
		if n == want {
			return
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("stream %s holds %d messages, want %d", stream, n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Invariants: a backfill aimed at one sink (pgjet-collector backfill
// --sink a) re-sends the table to that sink's output only: the other
// sink's stream is unchanged; and one asked with SQL
// (pg_logical_emit_message with prefix pgjet.backfill) aimed at the other
// sink reaches that one only, as Debezium reads (op r, source.snapshot
// incremental). Each output, rebuilt (last event per key), is the table.
func TestBackfillAimedAtOneSink(t *testing.T) {
	e := newEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;`, "public.t")
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(file, []byte(twoSinks), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL()}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	e.exec(`INSERT INTO t SELECT g, 'new' || g FROM generate_series(501, 510) g`)
	waitCount(ctx, t, js, "A", 10)
	waitCount(ctx, t, js, "B", 10)

	bf := harness.StartProcess(t, "pgjet-collector", []string{"backfill", "--config", file, "--table", "public.t", "--sink", "a"}, env)
	select {
	case <-bf.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("pgjet-collector backfill did not end:\n%s", bf.Log())
	}
	if err := bf.Wait(); err != nil || !strings.Contains(bf.Log(), " done ") {
		t.Fatalf("pgjet-collector backfill: %v\n%s", err, bf.Log())
	}
	t.Logf("pgjet-collector backfill printed:\n%s", bf.Log())
	waitCount(ctx, t, js, "A", 10+510)
	time.Sleep(2 * time.Second) // anything for B would be there by now
	if n := count(ctx, t, js, "B"); n != 10 {
		t.Fatalf("stream B holds %d messages after a backfill aimed at a, want its 10 changes", n)
	}
	checkRebuilt(ctx, t, e, js, "A", "a.>")

	e.exec(`SELECT pg_logical_emit_message(true, 'pgjet.backfill', '{"tables": ["public.t"], "sinks": ["b"]}')`)
	waitCount(ctx, t, js, "B", 10+510)
	time.Sleep(2 * time.Second)
	if n := count(ctx, t, js, "A"); n != 10+510 {
		t.Fatalf("stream A holds %d messages after a backfill aimed at b, want 520", n)
	}
	reads := 0
	for _, m := range readStream(ctx, t, js, "B", 520) {
		var ev struct {
			Op     string `json:"op"`
			Source struct {
				Snapshot string  `json:"snapshot"`
				TxID     *uint32 `json:"txId"`
				LSN      *uint64 `json:"lsn"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		want := "false"
		if ev.Op == "r" {
			reads++
			want = "incremental"
			// Debezium's incremental snapshot records leave txId and lsn
			// out (IncrementalSnapshotIT.obsoleteSourceInfoIsExcludedFromRecord).
			if ev.Source.TxID != nil || ev.Source.LSN != nil {
				t.Fatalf("Debezium incremental read with txId set %v, lsn set %v: want both null", ev.Source.TxID != nil, ev.Source.LSN != nil)
			}
		} else if ev.Source.TxID == nil || ev.Source.LSN == nil {
			t.Fatalf("Debezium change %s without txId or lsn", ev.Op)
		}
		if ev.Source.Snapshot != want {
			t.Fatalf("Debezium op %s with source.snapshot %q, want %q", ev.Op, ev.Source.Snapshot, want)
		}
	}
	if reads != 510 {
		t.Fatalf("stream B: %d reads, want 510", reads)
	}
	st := harness.StartProcess(t, "pgjet-collector", []string{"backfill", "status", "--config", file}, env)
	if err := st.Wait(); err != nil || len(doneJobRE.FindAllString(st.Log(), -1)) != 2 || !strings.Contains(st.Log(), "by sql") {
		t.Fatalf("backfill status: %v\n%s", err, st.Log())
	}
	t.Logf("pgjet-collector backfill status printed:\n%s", st.Log())
}

// doneJobRE matches the head line of a job that ended well in backfill
// status's output.
var doneJobRE = regexp.MustCompile(`(?m)^\S+  backfill  done  by `)

// checkRebuilt drains stream (subjects filter), checks its changes against
// the audit and that its reads and changes rebuild table t.
func checkRebuilt(ctx context.Context, t *testing.T, e *env, js jetstream.JetStream, stream, filter string) []check.Event {
	t.Helper()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	events, err := check.Drain(ctx, js, stream, filter, len(changes), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := check.Check(changes, events); !r.OK() {
		t.Fatalf("stream %s: %s", stream, r)
	}
	s, err := check.Rebuild(events)
	if err != nil {
		t.Fatal(err)
	}
	want, err := check.TableState(ctx, e.conn, "public.t", "id")
	if err != nil {
		t.Fatal(err)
	}
	if d := check.CompareState(want, s["public.t"], 10); len(d) > 0 {
		t.Fatalf("stream %s rebuilt is not the table:\n%s", stream, strings.Join(d, "\n"))
	}
	return events
}

// Invariant: a DeltaForge user's file with start_position: earliest on a
// database that already holds rows gets them first: the seed pipeline runs
// as written and every existing row arrives as a CloudEvent of type
// com.acme.users.read (data op r) before the changes that follow.
func TestSeedFileDeliversExistingRows(t *testing.T) {
	e := newEnv(t, seedSchema+`INSERT INTO users (name, email) SELECT 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 25) g;
		INSERT INTO profiles SELECT id, 'bio ' || id FROM users;`, "public.users", "public.profiles", "public.user_sessions")
	file := harness.RepoFile(t, "deploy/pipeline/users-cloudevents.yaml")
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL()}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) || !strings.Contains(col.Log(), "initial snapshot done") {
		t.Fatalf("collector did not take the initial snapshot:\n%s", col.Log())
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	e.exec(`INSERT INTO users (name) VALUES ('after the snapshot')`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	msgs := readStream(ctx, t, js, "USERS", 51)
	if len(msgs) != 51 {
		t.Fatalf("%d events, want 50 reads and 1 insert", len(msgs))
	}
	for i, m := range msgs {
		ce := readCloudEvent(t, m, false)
		want := "com.acme.users.read"
		if i == 50 {
			want = "com.acme.users.created"
		}
		if ce.Type() != want {
			t.Fatalf("event %d: type %s, want %s", i, ce.Type(), want)
		}
	}
}

// v2Commit is main's newest commit, when version 3 came, whose binaries
// write and read raw format version 2 (an older one's router would also
// meet output streams this version's router extends: _notices).
const v2Commit = "c5c5da9e3f5243aba7754322f75483eac606f968"

// Invariant, a rolling upgrade in either order: a router of this version
// reads the raw records a collector of the previous version wrote; a
// router of the previous version meets the first record of this version's
// collector with one clear line and stops without publishing anything of
// it, and once upgraded goes on from there: every change exactly once in
// each output.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel() // most of it is a build, which overlaps the other tests
	old := harness.BuildAt(t, v2Commit)
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	colArgs := []string{"--dsn", e.pg.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e", "--tables", e.tables,
		"--nats", e.nats.URL(), "--source", "e2e"}
	newRouter := func(durable, stream, prefix string) *harness.Proc {
		p := harness.StartProcess(t, "pgjet-router", []string{"--nats", e.nats.URL(), "--output-persist", "async",
			"--durable", durable, "--stream", stream, "--subject-prefix", prefix}, nil)
		if !p.WaitForLog("msg=relaying", 30*time.Second) {
			t.Fatalf("router %s did not start relaying", durable)
		}
		return p
	}

	// Version 2 everywhere but one router upgraded first.
	oldCol := harness.StartProcess(t, filepath.Join(old, "pgjet-collector"), colArgs, nil)
	if !oldCol.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("old collector did not start streaming")
	}
	oldRt := harness.StartProcess(t, filepath.Join(old, "pgjet-router"), []string{"--nats", e.nats.URL(), "--output-persist", "async",
		"--durable", "late", "--stream", "LATE", "--subject-prefix", "late"}, nil)
	if !oldRt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("old router did not start relaying")
	}
	newRouter("early", "EARLY", "early")
	e.mixed(1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	v2, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	waitCount(ctx, t, js, "LATE", uint64(len(v2)))
	must(t, oldCol.Stop())

	// The collector upgraded: records of this version (wire.Version).
	col := harness.StartProcess(t, "pgjet-collector", colArgs, nil)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	e.mixed(2)
	select {
	case <-oldRt.Done():
	case <-time.After(time.Minute):
		t.Fatalf("the old router did not stop at the first version-%d record", wire.Version)
	}
	line := strings.TrimSpace(tailLines(oldRt.Log(), 1))
	if oldRt.Wait() == nil || !strings.Contains(line, fmt.Sprintf("format version %d", wire.Version)) || !strings.Contains(line, "upgrade pgjet") {
		t.Fatalf("old router: exit %v, last line %q, want one line naming format version %d and asking to upgrade", oldRt.Wait(), line, wire.Version)
	}
	t.Logf("old router's last line: %s", line)
	if n := count(ctx, t, js, "LATE"); n != uint64(len(v2)) {
		t.Fatalf("the old router published %d events, want the %d of the version-2 records only", n, len(v2))
	}
	// Upgraded, it goes on where it stopped.
	newRouter("late", "LATE", "late")
	all, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []struct{ stream, filter string }{{"EARLY", "early.>"}, {"LATE", "late.>"}} {
		events, err := check.Drain(ctx, js, out.stream, out.filter, len(all), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := check.Check(all, events)
		t.Logf("%s: %s", out.stream, r)
		if !r.OK() {
			t.Fatalf("stream %s: %s", out.stream, r)
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Invariant (one writer per source, with initial snapshots): two
// collectors of two slots given one source id, started at once on an empty
// raw stream, each with rows to snapshot: one of them stores its snapshot
// and streams, the other stops with the one-writer line, whether it met the
// other's snapshot job (one per source id), the other's records as it
// published, or found them once its own snapshot was stored. Nothing of the
// refused one is in the raw stream.
func TestTwoWritersSnapshotAtOnce(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 3000) g;
		CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 3000) g;`)
	start := func(name, table string) *harness.Proc {
		return harness.StartProcess(t, "pgjet-collector", []string{"--dsn", e.pg.DSN(""), "--slot", name, "--publication", name,
			"--tables", table, "--nats", e.nats.URL(), "--source", "shared", "--snapshot-chunk-rows", "200"}, nil)
	}
	pa, pb := start("writer_a", "public.a"), start("writer_b", "public.b")
	deadline := time.Now().Add(time.Minute)
	for !pa.Exited() && !pb.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("two collectors wrote source shared, neither stopped:\nA:\n%s\nB:\n%s", tailLines(pa.Log(), 10), tailLines(pb.Log(), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	loser, winner, winnerSlot := pa, pb, "writer_b"
	if pb.Exited() {
		loser, winner, winnerSlot = pb, pa, "writer_a"
	}
	line := strings.TrimSpace(tailLines(loser.Log(), 1))
	if loser.Wait() == nil || !strings.Contains(line, "written by another collector") || !strings.Contains(line, `slot "`+winnerSlot+`"`) {
		t.Fatalf("the refused collector: exit %v, last line %q, want the one-writer line naming slot %s\n%s", loser.Wait(), line, winnerSlot, loser.Log())
	}
	t.Logf("refused: %s", line)
	if !winner.WaitForLog("msg=streaming", 30*time.Second) || winner.Exited() {
		t.Fatalf("the other collector does not stream:\n%s", winner.Log())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := e.nats.Connect(t)
	raw := readRaw(ctx, t, js, "pgjet.raw.shared")
	slots := map[string]int{}
	reads := 0
	for _, m := range raw {
		slots[m.Source.Slot]++
		for _, tx := range m.Txs {
			reads += len(tx.Changes)
		}
	}
	if len(slots) != 1 || slots[winnerSlot] == 0 || reads != 3000 {
		t.Fatalf("raw stream: records by slot %v, %d reads; want only %s's, its 3000 rows", slots, reads, winnerSlot)
	}
}

// readRaw decodes every raw record of subject.
func readRaw(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string) []wire.Message {
	t.Helper()
	s, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	n := info.State.Subjects[subject]
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Message
	for uint64(len(out)) < n {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("raw stream: %v", err)
		}
		var m wire.Message
		if err := wire.Unmarshal(msg.Data(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
