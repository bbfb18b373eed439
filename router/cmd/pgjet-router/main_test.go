package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/routing"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/wire"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		want  string // error substring, "" for success
		check func(t *testing.T, c config)
	}{
		{name: "defaults", args: []string{"--nats", "nats://h:4222"}, check: func(t *testing.T, c config) {
			rt := only(t, c)
			r := rt.Relay
			if r.RawStream != "PGJET_RAW" || r.Durable != "pgjet-router" || r.Stream != "PGJET_EVENTS" || rt.Stdout != stdout.Off {
				t.Errorf("defaults: %+v", rt)
			}
			if got := r.Route.Subjects(); !slices.Equal(got, []string{"postgres.*.*.*", "postgres._messages.*", "postgres._notices.*", "postgres._deadletter"}) {
				t.Errorf("subjects %v", got)
			}
			if r.Duplicates != 2*time.Minute {
				t.Errorf("duplicate window %s, want JetStream's default 2m", r.Duplicates)
			}
			if _, ok := r.Envelope.(*envelope.Native); !ok {
				t.Errorf("envelope %T, want native", r.Envelope)
			}
		}},
		{name: "duplicate window", args: []string{"--nats", "n", "--output-duplicate-window", "30s"}, check: func(t *testing.T, c config) {
			if d := only(t, c).Relay.Duplicates; d != 30*time.Second {
				t.Errorf("duplicate window %s, want 30s", d)
			}
		}},
		{name: "duplicate window too short", args: []string{"--nats", "n", "--output-duplicate-window", "100ms"}, want: "bad --output-duplicate-window 100ms: use at least 1s"},
		{name: "env", args: nil, env: map[string]string{"PGJET_NATS": "nats://e:4222", "PGJET_SUBJECT_PREFIX": "acme.cdc", "PGJET_STDOUT": "text"},
			check: func(t *testing.T, c config) {
				rt := only(t, c)
				if c.plan.Raw.URL != "nats://e:4222" || rt.Relay.Route.DeadLetter() != "acme.cdc._deadletter" || rt.Stdout != stdout.Text {
					t.Errorf("from env: %+v", rt)
				}
			}},
		{name: "flag beats env", args: []string{"--nats", "nats://f:4222", "--durable", "mine"}, env: map[string]string{"PGJET_NATS": "nats://e:4222", "PGJET_DURABLE": "theirs"},
			check: func(t *testing.T, c config) {
				if c.plan.Raw.URL != "nats://f:4222" || only(t, c).Relay.Durable != "mine" {
					t.Errorf("flag vs env: %+v", c.plan)
				}
			}},
		{name: "nats required", args: nil, want: "--nats is required"},
		{name: "bad stdout", args: []string{"--nats", "n", "--stdout", "yaml"}, want: "bad --stdout"},
		{name: "bad stdout from env", env: map[string]string{"PGJET_NATS": "n", "PGJET_STDOUT": "yaml"}, want: "bad --stdout"},
		{name: "bad log level", args: []string{"--nats", "n", "--log-level", "loud"}, want: "bad --log-level"},
		{name: "unknown flag", args: []string{"--nats", "n", "--bogus"}, want: "bogus"},
		{name: "bad prefix", args: []string{"--nats", "n", "--subject-prefix", "a.>"}, want: "--subject-prefix"},
		{name: "prefix on raw subjects", args: []string{"--nats", "n", "--subject-prefix", "pgjet.raw"}, want: "pgjet.raw"},
		{name: "bad stream", args: []string{"--nats", "n", "--stream", "a b"}, want: "--stream"},
		{name: "missing creds file", args: []string{"--nats", "n", "--creds", "/nonexistent/x.creds"}, want: "--creds"},
		{name: "cloudevents defaults", args: []string{"--nats", "n", "--envelope", "cloudevents"}, check: func(t *testing.T, c config) {
			if _, ok := only(t, c).Relay.Envelope.(*envelope.CloudEvents); !ok {
				t.Errorf("envelope %T, want cloudevents", only(t, c).Relay.Envelope)
			}
		}},
		{name: "cloudevents binary", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-mode", "binary",
			"--cloudevents-source", "https://db.example.com/shop", "--cloudevents-type-prefix", "com.acme.cdc"}, check: func(t *testing.T, c config) {
			ce, ok := only(t, c).Relay.Envelope.(*envelope.CloudEvents)
			if !ok {
				t.Fatalf("envelope %T, want cloudevents", only(t, c).Relay.Envelope)
			}
			h := ce.Header(sampleEvent())
			if h.Get("ce-source") != "https://db.example.com/shop" || !strings.HasPrefix(h.Get("ce-type"), "com.acme.cdc.") {
				t.Errorf("cloudevents headers %v", h)
			}
		}},
		{name: "cloudevents from env", env: map[string]string{"PGJET_NATS": "n", "PGJET_ENVELOPE": "cloudevents", "PGJET_CLOUDEVENTS_MODE": "binary", "PGJET_CLOUDEVENTS_SOURCE": "/shop"},
			check: func(t *testing.T, c config) {
				ce, ok := only(t, c).Relay.Envelope.(*envelope.CloudEvents)
				if !ok || ce.Header(sampleEvent()).Get("ce-source") != "/shop" {
					t.Errorf("cloudevents from env: %T", only(t, c).Relay.Envelope)
				}
			}},
		{name: "bad envelope", args: []string{"--nats", "n", "--envelope", "avro"}, want: `bad --envelope "avro": use `},
		{name: "bad cloudevents mode", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-mode", "batch"}, want: `bad --cloudevents-mode "batch": use structured or binary`},
		{name: "bad cloudevents source", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-source", "my db"}, want: `bad --cloudevents-source "my db": use a URI-reference`},
		{name: "bad cloudevents type prefix", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-type-prefix", "com.acme."}, want: `bad --cloudevents-type-prefix "com.acme."`},
		{name: "cloudevents flag without the envelope", args: []string{"--nats", "n", "--cloudevents-mode", "binary"}, want: "--cloudevents-mode needs --envelope cloudevents"},
		// One default, the pipeline file's (the seed's form): flags and file agree.
		{name: "cloudevents data change by default", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-mode", "binary"}, check: func(t *testing.T, c config) {
			if typ := only(t, c).Relay.Envelope.Header(sampleEvent()).Get("ce-type"); typ != "io.pgjet.created" {
				t.Errorf("ce-type %q, want the change form's", typ)
			}
		}},
		{name: "cloudevents data native", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-mode", "binary", "--cloudevents-data", "native"}, check: func(t *testing.T, c config) {
			if typ := only(t, c).Relay.Envelope.Header(sampleEvent()).Get("ce-type"); typ != "io.pgjet.public.users.insert" {
				t.Errorf("ce-type %q, want the native form's", typ)
			}
		}},
		{name: "bad cloudevents data", args: []string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-data", "debezium"}, want: `bad --cloudevents-data "debezium": use change or native`},
		{name: "cloudevents data without the envelope", args: []string{"--nats", "n", "--cloudevents-data", "change"}, want: "--cloudevents-data needs --envelope cloudevents"},
		{name: "group transaction", args: []string{"--nats", "n", "--group", "transaction"}, check: func(t *testing.T, c config) {
			rt := only(t, c).Relay.Route
			if !rt.Group() || !slices.Contains(rt.Subjects(), "postgres.transactions.*") {
				t.Errorf("group %v, subjects %v: want groups on postgres.transactions.*", rt.Group(), rt.Subjects())
			}
		}},
		{name: "group none", args: []string{"--nats", "n", "--group", "none"}, check: func(t *testing.T, c config) {
			if only(t, c).Relay.Route.Group() {
				t.Error("--group none groups")
			}
		}},
		{name: "bad group", args: []string{"--nats", "n", "--group", "tx"}, want: `bad --group "tx": use none or transaction`},
		{name: "group with binary cloudevents", args: []string{"--nats", "n", "--group", "transaction", "--envelope", "cloudevents", "--cloudevents-mode", "binary"},
			want: "--group transaction needs --cloudevents-mode structured"},
		{name: "cloudevents env without the envelope", env: map[string]string{"PGJET_NATS": "n", "PGJET_CLOUDEVENTS_SOURCE": "/shop"}, want: "--cloudevents-source needs --envelope cloudevents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"PGJET_NATS", "PGJET_SUBJECT_PREFIX", "PGJET_STDOUT", "PGJET_DURABLE", "PGJET_CONFIG",
				"PGJET_ENVELOPE", "PGJET_CLOUDEVENTS_MODE", "PGJET_CLOUDEVENTS_SOURCE", "PGJET_CLOUDEVENTS_TYPE_PREFIX"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := parseConfig(tt.args)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("parseConfig = %v, want error with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// only is the one route of a configuration from flags.
func only(t *testing.T, c config) *routing.Route {
	t.Helper()
	if c.plan == nil || len(c.plan.Routes) != 1 {
		t.Fatalf("plan %+v, want one route", c.plan)
	}
	return &c.plan.Routes[0]
}

func sampleEvent() *envelope.Event {
	return &envelope.Event{
		Source: &wire.Source{Name: "app"},
		Tx:     &wire.Tx{CommitLSN: 0x10},
		Change: &wire.Change{Op: wire.OpInsert},
		Rel:    &wire.Relation{Schema: "public", Table: "users"},
		ID:     "app.1.1:10:0",
	}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run waits for NATS and then for the raw stream, saying so, and relays once
// both are there.
func TestRunWaitsForNATSAndRawStream(t *testing.T) {
	srv := natstest.Run(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg, err := parseConfig([]string{"--nats", srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log) }()

	waitFor(t, "the wait for the raw stream to be logged", func() bool {
		return strings.Contains(logs.String(), "raw stream PGJET_RAW does not exist yet")
	})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PGJET_RAW", Subjects: []string{"pgjet.raw.>"}}); err != nil {
		t.Fatal(err)
	}
	data, err := wire.Marshal(&wire.Message{
		Source:    wire.Source{Name: "app", SystemID: 1, Timeline: 1},
		Relations: []wire.Relation{{Schema: "public", Table: "t", Columns: []wire.Column{{Name: "id", TypeOID: 23, Key: true}}}},
		Txs: []wire.Tx{{CommitLSN: 0x10, Final: true, Changes: []wire.Change{
			{Op: wire.OpInsert, New: []wire.Value{{Kind: wire.KindText, Data: []byte("1")}}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "pgjet.raw.app", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event in PGJET_EVENTS", func() bool {
		s, err := js.Stream(ctx, "PGJET_EVENTS")
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(ctx, "postgres.public.t.insert")
		return err == nil && m.Header.Get(jetstream.MsgIDHeader) == "app.1.1:10:0"
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

// The binary: user errors are one line and exit 2; an unreachable server is
// retried with the password redacted; SIGTERM ends it cleanly.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pgjet-router")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	usageErrors := []struct {
		args []string
		want string
	}{
		{[]string{"--stdout", "yaml", "--nats", "n"}, `pgjet-router: bad --stdout: unknown stdout format "yaml": use json, json-pretty or text`},
		{[]string{"--nats", "n", "--nope"}, "pgjet-router: flag provided but not defined: -nope"},
		{[]string{"--nats", "n", "--envelope", "cloudevents", "--cloudevents-mode", "binry"}, `pgjet-router: bad --cloudevents-mode "binry": use structured or binary`},
		{nil, "pgjet-router: --nats is required (e.g. --nats nats://127.0.0.1:4222), or give a pipeline file with --config"},
	}
	for _, tt := range usageErrors {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = cleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2", tt.args, err)
		}
		if got := strings.TrimSuffix(stderr.String(), "\n"); got != tt.want {
			t.Errorf("%v: stderr %q, want %q", tt.args, got, tt.want)
		}
	}

	cmd := exec.Command(bin, "--nats", "nats://bob:s3cret@127.0.0.1:1")
	cmd.Env = cleanEnv()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a retry message", func() bool {
		return strings.Contains(stderr.String(), "nats unreachable at nats://bob:xxxxx@127.0.0.1:1, retrying in 1s")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit code 0\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "s3cret") {
		t.Errorf("password logged:\n%s", stderr.String())
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGJET_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A pipeline file gives the routes; flags and PGJET_* variables override
// it: connection flags for the raw stream's server (and the sinks on it),
// route flags for the file's only NATS sink.
func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, sinks string) string {
		p := filepath.Join(dir, name)
		src := "apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: app}\nspec:\n  source: {type: postgres, config: {dsn: x}}\n  sinks:\n" + sinks
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.yaml", "    - {type: nats, config: {id: a, url: 'nats://file:4222', stream: A}}\n    - {type: stdout, config: {id: p}}\n")
	two := write("two.yaml", "    - {type: nats, config: {id: a, url: 'nats://file:4222', stream: A}}\n    - {type: nats, config: {id: b, url: 'nats://other:4222', stream: B, prefix: b}}\n")
	for _, k := range []string{"PGJET_CONFIG", "PGJET_NATS", "PGJET_STREAM"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}

	c, err := parseConfig([]string{"--config", one, "--nats", "nats://flag:4222", "--stream", "FLAGGED", "--durable", "mine"})
	if err != nil {
		t.Fatal(err)
	}
	a := c.plan.Routes[0]
	if c.plan.Raw.URL != "nats://flag:4222" || a.Conn.URL != "nats://flag:4222" || a.Relay.Stream != "FLAGGED" || a.Relay.Durable != "mine" {
		t.Errorf("flags did not override the file: raw %s, route %+v", c.plan.Raw.URL, a)
	}
	if p := c.plan.Routes[1]; p.Relay.Stream != "" || p.Relay.Durable != "app-p" {
		t.Errorf("stdout route: %+v", p.Relay)
	}
	if c.plan.Routes[0].Relay.Route.Group() {
		t.Error("the file's sink groups without group: transaction")
	}
	if c, err = parseConfig([]string{"--config", one, "--group", "transaction"}); err != nil {
		t.Fatal(err)
	}
	if !c.plan.Routes[0].Relay.Route.Group() || c.plan.Routes[1].Relay.Route.Group() {
		t.Error("--group transaction did not set the file's only NATS sink's group (and only it)")
	}

	t.Setenv("PGJET_CONFIG", two)
	t.Setenv("PGJET_NATS", "nats://env:4222")
	c, err = parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.plan.Raw.URL != "nats://env:4222" || c.plan.Routes[0].Conn.URL != "nats://env:4222" || c.plan.Routes[1].Conn.URL != "nats://other:4222" {
		t.Errorf("--nats from the environment: raw %s, routes %s %s (the second sink is on another server)",
			c.plan.Raw.URL, c.plan.Routes[0].Conn.URL, c.plan.Routes[1].Conn.URL)
	}
	if _, err := parseConfig([]string{"--stream", "X"}); err == nil || !strings.Contains(err.Error(), "--stream applies to one route") {
		t.Errorf("--stream with two NATS sinks: %v", err)
	}
	if _, err := parseConfig([]string{"--config", filepath.Join(dir, "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// A pipeline file's cloudevents sink gets the change form, as DeltaForge's
// users expect from the same file; --cloudevents-data overrides it.
func TestCloudEventsDataFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ce.yaml")
	src := "apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: app}\nspec:\n  source: {type: postgres, config: {dsn: x}}\n  sinks:\n" +
		"    - {type: nats, config: {id: a, url: 'nats://file:4222', stream: A, envelope: {type: cloudevents, mode: binary, type_prefix: com.acme.users}}}\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", p}, "com.acme.users.created"},
		{[]string{"--config", p, "--cloudevents-data", "native"}, "com.acme.users.public.users.insert"},
	} {
		c, err := parseConfig(tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if typ := only(t, c).Relay.Envelope.Header(sampleEvent()).Get("ce-type"); typ != tt.want {
			t.Errorf("%v: ce-type %q, want %q", tt.args, typ, tt.want)
		}
	}
}
