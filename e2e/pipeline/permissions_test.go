package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// accountsFile is the example NATS account with pgjet's least-privilege users.
const accountsFile = "deploy/nats/accounts/pgjet.conf"

// Invariants, against a nats-server running deploy/nats/accounts/pgjet.conf
// exactly as committed (included by the server's config):
//   - collector and router, each as its own user (password from the
//     environment), carry a mixed workload into the output stream exactly
//     once and in commit order, across a clean router restart (resume reads
//     the output back) and a collector restart (resume reads the raw stream's
//     last record), and the server refuses nothing they ask: its log has no
//     permissions violation while they run;
//   - the application user reads the output stream;
//   - the router's user cannot write the raw stream (a publish to pgjet.raw.x
//     is refused and stores nothing), nor purge or delete it; the collector's
//     user cannot write the output stream nor delete it; the reader's user
//     cannot write the output.
func TestLeastPrivilegeNATSAccount(t *testing.T) {
	start := time.Now()
	pw := map[string]string{"collector": "nats-col-Quae6ohx", "router": "nats-rt-Iej0ahv8", "reader": "nats-rd-Ohb9ahsu"}
	for user, p := range pw {
		t.Setenv("NATS_PGJET_"+strings.ToUpper(user)+"_PASSWORD", p)
	}
	e := newEnvWith(t, pgtest.Run(t), harness.StartNATSWith(t, "", includeConf(harness.RepoFile(t, accountsFile))), mixedSchema,
		"public.users", "public.orders", "public.events", "public.bulk")
	as := func(user string) []nats.Option { return []nats.Option{nats.UserInfo(user, pw[user])} }

	collector := func() *harness.Proc {
		p := harness.StartProcess(t, "pgjet-collector", []string{"--dsn", e.pg.DSN(""), "--slot", "pgjet_e2e", "--publication", "pgjet_e2e",
			"--tables", e.tables, "--nats", e.nats.URL(), "--source", "e2e", "--nats-user", "collector"},
			[]string{"PGJET_NATS_PASSWORD=" + pw["collector"]})
		if !p.WaitForLog("msg=streaming", 30*time.Second) {
			t.Fatalf("collector did not start streaming")
		}
		return p
	}
	router := func() *harness.Proc {
		p := harness.StartProcess(t, "pgjet-router", []string{"--nats", e.nats.URL(), "--output-persist", "async", "--nats-user", "router"},
			[]string{"PGJET_NATS_PASSWORD=" + pw["router"]})
		if !p.WaitForLog("msg=relaying", 30*time.Second) {
			t.Fatalf("router did not start relaying")
		}
		return p
	}
	col, rt := collector(), router()
	e.mixed(1)
	waitForEvents(t, e, as("reader"), "postgres.>")
	if err := rt.Stop(); err != nil {
		t.Fatalf("router stop: %v", err)
	}
	e.mixed(2)
	rt = router()
	// A kill -9 with raw records delivered but not acknowledged: the next
	// router resets its consumer to the ack floor.
	e.exec(`INSERT INTO bulk SELECT g, repeat('x', 40) || g FROM generate_series(1, 10000) g`)
	waitForEvents(t, e, as("reader"), "postgres.public.bulk.insert")
	rt.Kill()
	_, rtJS := e.nats.Connect(t, as("router")...)
	ctx := context.Background()
	if c, err := rtJS.Consumer(ctx, "PGJET_RAW", "pgjet-router"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("killed the router with %d raw records unacknowledged", c.CachedInfo().NumAckPending)
	}
	rt = router()
	if err := col.Stop(); err != nil {
		t.Fatalf("collector stop: %v", err)
	}
	e.mixed(3)
	col = collector()
	e.verifyAs(30*time.Second, as("reader")...)
	if v := violations(e.nats); v != "" {
		t.Fatalf("the server refused pgjet something: %s needs more permissions:\n%s", accountsFile, v)
	}
	for _, p := range []*harness.Proc{col, rt} {
		noSecret(t, p, []string{pw["collector"], pw["router"]})
	}

	refusals := []struct {
		user, what string
		do         func(context.Context, *nats.Conn, jetstream.JetStream) error
		// check runs as the collector: the refused action left no trace.
		check func(context.Context, jetstream.JetStream) error
	}{
		{"router", "publish to the raw stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Publish(ctx, "pgjet.raw.x", []byte("forged"))
			return err
		}, func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, "PGJET_RAW")
			if err != nil {
				return err
			}
			if _, err := s.GetLastMsgForSubject(ctx, "pgjet.raw.x"); !errors.Is(err, jetstream.ErrMsgNotFound) {
				return errors.New("the raw stream holds a record on pgjet.raw.x (" + errString(err) + ")")
			}
			return nil
		}},
		{"router", "purge the raw stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			// The handle comes from the stream info the router may read.
			s, err := js.Stream(ctx, "PGJET_RAW")
			if err != nil {
				return err
			}
			return s.Purge(ctx)
		}, rawIntact},
		{"router", "delete the raw stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, "PGJET_RAW")
		}, rawIntact},
		{"collector", "publish to the output stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Publish(ctx, "postgres.public.users.insert", []byte("forged"))
			return err
		}, nil},
		{"collector", "delete the output stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, "PGJET_EVENTS")
		}, nil},
		{"reader", "publish to the output stream", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Publish(ctx, "postgres.public.users.insert", []byte("forged"))
			return err
		}, nil},
	}
	_, colJS := e.nats.Connect(t, as("collector")...)
	for _, r := range refusals {
		// The server says why to the client, asynchronously: the refused
		// request or publish then ends at once instead of waiting for a reply.
		const want = "Permissions Violation for Publish to"
		ctx, cancel := context.WithTimeoutCause(context.Background(), 5*time.Second, errors.New("no permissions violation within 5 s"))
		var mu sync.Mutex
		var async string
		nc, js := e.nats.Connect(t, append(as(r.user), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			if async == "" && strings.Contains(err.Error(), want) {
				async = err.Error()
				cancel()
			}
		}))...)
		err := r.do(ctx, nc, js)
		<-ctx.Done()
		mu.Lock()
		got := async
		mu.Unlock()
		if err == nil || got == "" {
			t.Fatalf("user %s could %s (error %v, %v)", r.user, r.what, err, context.Cause(ctx))
		}
		t.Logf("%s cannot %s: %s", r.user, r.what, got)
		if r.check != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.check(ctx, colJS); err != nil {
				t.Fatalf("after %s tried to %s: %v", r.user, r.what, err)
			}
			cancel()
		}
		nc.Close()
	}
	if v := violations(e.nats); !strings.Contains(v, `"PGJET/user:router" - Publish Violation - Subject "pgjet.raw.x"`) {
		t.Fatalf("server log lacks the router's refused publish:\n%s", v)
	}
	// Still working: a change committed now arrives.
	e.mixed(4)
	e.verifyAs(30*time.Second, as("reader")...)
	t.Logf("%s: %s", t.Name(), time.Since(start).Round(time.Millisecond))
}

func rawIntact(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		return err
	}
	if s.CachedInfo().State.Msgs == 0 {
		return errors.New("the raw stream is empty")
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// includeConf is a config line including file, an absolute path. The server
// resolves an include relative to the including file's directory, even an
// absolute one, so go up to / first.
func includeConf(file string) string {
	return "include " + `"` + strings.Repeat("../", 64) + strings.TrimPrefix(filepath.ToSlash(file), "/") + `"`
}

// violations returns the server log's permission violation lines.
func violations(n *harness.NATS) string {
	var out []string
	for _, l := range strings.Split(n.Proc().Log(), "\n") {
		if strings.Contains(l, "Violation") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// newEnvWith is newEnv on the given servers.
func newEnvWith(t *testing.T, pg *pgtest.Cluster, n *harness.NATS, schema string, tables ...string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, pg: pg, tables: strings.Join(tables, ","), nats: n}
	conn, err := pgx.Connect(ctx, e.pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	e.conn = conn
	e.exec(schema)
	if err := check.InstallAudit(ctx, conn, tables...); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitForEvents waits until the output stream has events on subject.
func waitForEvents(t *testing.T, e *env, opts []nats.Option, subject string) {
	t.Helper()
	_, js := e.nats.Connect(t, opts...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var info *jetstream.StreamInfo
		s, err := js.Stream(ctx, "PGJET_EVENTS")
		if err == nil {
			info, err = s.Info(ctx, jetstream.WithSubjectFilter(subject))
		}
		cancel()
		if err == nil && len(info.State.Subjects) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no events on %s within 30 s", subject)
}

// verifyAs is verify reading the output as a client with opts.
func (e *env) verifyAs(timeout time.Duration, opts ...nats.Option) check.Report {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		e.t.Fatal(err)
	}
	_, js := e.nats.Connect(e.t, opts...)
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", len(changes), 2*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	r := check.Check(changes, events)
	e.t.Logf("%s: %s", e.t.Name(), r.String())
	if !r.OK() {
		e.t.Fatalf("invariant violated: %s", r.String())
	}
	return r
}
