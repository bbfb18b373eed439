package relay

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/router/internal/stdout"
)

// startConfig starts a relay with cfg, filling in the test's names.
func (e *env) startConfig(cfg Config) *running {
	e.t.Helper()
	cfg.RawStream, cfg.Durable, cfg.PublishTimeout, cfg.Log = rawStream, durable, 2*time.Second, testLogger(e.t)
	if cfg.Route == nil && cfg.Prefix == "" {
		cfg.Prefix = "postgres"
	}
	r, err := New(e.js, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		<-run.done
	})
	return run
}

// A route with start position latest relays only the raw records written
// after its consumer was created; one with earliest, all retained ones.
// An existing consumer keeps its position whatever the setting.
func TestStartPosition(t *testing.T) {
	e := newEnv(t)
	recs := rawRecords()
	e.publishRaw(recs[0], recs[1])
	run := e.startConfig(Config{Stream: outStream, StartNew: true})
	waitFor(t, "the consumer", func() bool { return e.consumer() != nil })
	e.publishRaw(recs[2])
	e.waitAckFloor(3)
	checkOutputs(t, e.outputs(), wantEvents[8:])
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	// Restarted with earliest, the consumer keeps its place: nothing of
	// the first two records appears.
	e.publishRaw(recs[0])
	e.startConfig(Config{Stream: outStream})
	e.waitAckFloor(4)
	got := e.outputs()
	if len(got) != 1+eventsPerRecord[0] {
		t.Fatalf("%d events after the restart, want %d", len(got), 1+eventsPerRecord[0])
	}
}

// An output stream that exists but does not capture every subject of the
// route stops the relay at start with a line naming what is missing.
func TestExistingStreamMustCaptureTheRoute(t *testing.T) {
	e := newEnv(t)
	if _, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: outStream, Subjects: []string{"postgres.public.>"}}); err != nil {
		t.Fatal(err)
	}
	err := e.startConfig(Config{Stream: outStream}).wait(t)
	if err == nil || !strings.Contains(err.Error(), "does not capture postgres.*.*.*, postgres._messages.*, postgres._notices.*, postgres._deadletter (its subjects: postgres.public.>)") {
		t.Fatalf("Run = %v, want an error naming the subjects the stream misses", err)
	}
}

// A stream the route creates gets the route's settings.
func TestCreatedStreamHasTheRouteSettings(t *testing.T) {
	e := newEnv(t)
	rt, err := route.New(route.Config{Subject: "shop.orders"})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	e.startConfig(Config{Stream: outStream, Route: rt, Duplicates: 45 * time.Second,
		Output: StreamConfig{Memory: true, MaxAge: time.Hour, MaxMsgs: 1000}})
	e.waitAckFloor(3)
	s, err := e.js.Stream(context.Background(), outStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if strings.Join(c.Subjects, " ") != "shop.orders shop.orders._deadletter" || c.Storage != jetstream.MemoryStorage ||
		c.MaxAge != time.Hour || c.MaxMsgs != 1000 || c.MaxBytes != -1 || c.Duplicates != 45*time.Second {
		t.Errorf("created stream: %+v", c)
	}
	for _, m := range e.outputs() {
		if m.Subject != "shop.orders" {
			t.Errorf("event on %s, want the fixed subject", m.Subject)
		}
	}
}

// A route's filters and column rules apply before rendering: only selected
// events are published, and a masked value never reaches the output.
func TestRouteFiltersAndMasks(t *testing.T) {
	e := newEnv(t)
	rt, err := route.New(route.Config{Prefix: "postgres", Include: []string{"public.users"}, Ops: []string{"insert", "update"},
		Columns: []route.ColumnRule{{Table: "public.users", Mask: map[string]string{"name": "***"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(rawRecords()...)
	e.startConfig(Config{Stream: outStream, Route: rt})
	e.waitAckFloor(3)
	checkOutputs(t, e.outputs(), wantEvents[:2])
	for _, m := range e.outputs() {
		if bytes.Contains(m.Data, []byte("ann")) || bytes.Contains(m.Data, []byte("bob")) || !bytes.Contains(m.Data, []byte(`"name":"***"`)) {
			t.Errorf("masked value in %s", m.Data)
		}
	}
}

// A route without a stream prints its events and publishes nothing; its
// raw records are acknowledged once printed.
func TestStdoutRoute(t *testing.T) {
	e := newEnv(t)
	var out syncBuffer
	e.publishRaw(rawRecords()...)
	e.startConfig(Config{Stdout: stdout.New(&out, stdout.JSON, time.UTC)})
	e.waitAckFloor(3)
	waitFor(t, "every event printed", func() bool { return strings.Count(out.String(), "\n") == len(wantEvents) })
	if _, err := e.js.Stream(context.Background(), outStream); err == nil {
		t.Error("a stdout route created an output stream")
	}
	if !strings.Contains(out.String(), `"op":"insert","source":"test","schema":"public","table":"users"`) {
		t.Errorf("printed:\n%s", out.String())
	}
}

// syncBuffer is written by the relay's goroutine and read by the test's.
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
