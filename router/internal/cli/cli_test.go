package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/wire"
)

func load(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PGJET_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := Register(fs)
	given, err := flagenv.ParseSet(fs, args)
	if err != nil {
		t.Fatal(err)
	}
	return f.Load(given, func(string) (string, bool) { return "", false }, nil)
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: app}\nspec:\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --nats replaces a file's embedded server and moves the sinks on it; the
// authentication flags replace all of those connections' authentication.
func TestConnectionFlagsReplaceTheRawServer(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := write(t, `  raw_stream: {embedded: {dir: /d, listen: "127.0.0.1:4300", username: emb, password: x}}
  sinks:
    - {type: nats, config: {id: a, url: "nats://127.0.0.1:4300", stream: A, token: t0ken}}
    - {type: nats, config: {id: b, url: "nats://elsewhere:4222", stream: B, token: other}}
`)
	c, err := load(t, "--config", p, "--nats", "nats://flag:4222", "--nats-user", "u", "--nats-password-file", pw)
	if err != nil {
		t.Fatal(err)
	}
	raw, a, b := c.Plan.Raw, c.Plan.Routes[0].Conn, c.Plan.Routes[1].Conn
	if raw.URL != "nats://flag:4222" || raw.User != "u" || raw.Password != "s3cret" || raw.Token != "" {
		t.Errorf("raw connection %+v", raw)
	}
	if a.URL != "nats://flag:4222" || a.User != "u" || a.Password != "s3cret" || a.Token != "" {
		t.Errorf("the sink on the raw server: %+v", a)
	}
	if b.URL != "nats://elsewhere:4222" || b.Token != "other" || b.User != "" {
		t.Errorf("the sink on another server changed: %+v", b)
	}
	if c.File.RawStream.Embedded != nil {
		t.Error("the embedded server is still configured")
	}
}

// Flags alone and a file agree: the same defaults and the same bounds,
// because flags alone are a one-sink file.
func TestFlagsAloneAreAOneSinkFile(t *testing.T) {
	c, err := load(t, "--nats", "nats://h:4222", "--ack-timeout", "90s", "--envelope", "cloudevents")
	if err != nil {
		t.Fatal(err)
	}
	fromFlags, rf := c.File.Sinks[0], c.Plan.Routes[0].Relay
	p := write(t, "  sinks:\n    - {type: nats, config: {id: pgjet-router, durable: pgjet-router, url: \"nats://h:4222\", stream: PGJET_EVENTS, send_timeout_secs: 90, envelope: {type: cloudevents}}}\n")
	c, err = load(t, "--config", p)
	if err != nil {
		t.Fatal(err)
	}
	fromFile := c.File.Sinks[0]
	if fromFlags.BatchTimeout != 90*time.Second || fromFile.BatchTimeout != fromFlags.BatchTimeout {
		t.Errorf("batch timeout: flags %s, file %s, want 1m30s both", fromFlags.BatchTimeout, fromFile.BatchTimeout)
	}
	rfile := c.Plan.Routes[0].Relay
	if rf.AckWait != rfile.AckWait || rf.PublishTimeout != rfile.PublishTimeout || rf.Duplicates != rfile.Duplicates ||
		rf.Durable != rfile.Durable || rf.Stream != rfile.Stream {
		t.Errorf("relay: flags %+v, file %+v", rf, rfile)
	}
	ev := &envelope.Event{Source: &wire.Source{Name: "app"}, Tx: &wire.Tx{CommitLSN: 0x10}, Change: &wire.Change{Op: wire.OpInsert},
		Rel: &wire.Relation{Schema: "public", Table: "users"}, ID: "app.1.1:10:0"}
	bf, errf := rf.Envelope.Append(nil, ev)
	bfile, errfile := rfile.Envelope.Append(nil, ev)
	if errf != nil || errfile != nil || string(bf) != string(bfile) || !strings.Contains(string(bf), `"type":"io.pgjet.created"`) {
		t.Errorf("cloudevents: flags %s (%v), file %s (%v), want the change form both", bf, errf, bfile, errfile)
	}
	for _, args := range [][]string{
		{"--nats", "n", "--output-duplicate-window", "500ms"},
		{"--config", write(t, "  sinks:\n    - {type: nats, config: {id: a, url: n, stream: {name: A, duplicate_window: 500ms}}}\n")},
	} {
		if _, err := load(t, args...); err == nil || !strings.Contains(err.Error(), "500ms: use at least 1s") {
			t.Errorf("%v: %v, want the one bound of the duplicate window", args, err)
		}
	}
}

// Route flags need the file's one NATS sink.
func TestRouteFlagsNeedOneNATSSink(t *testing.T) {
	p := write(t, "  sinks:\n    - {type: nats, config: {id: a, url: n, stream: A}}\n    - {type: nats, config: {id: b, url: n, stream: B, prefix: b}}\n")
	_, err := load(t, "--config", p, "--group", "transaction")
	if err == nil || !strings.Contains(err.Error(), "--group applies to one route, and "+p+" has 2 NATS sinks") {
		t.Errorf("%v", err)
	}
}
