package pipeline

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver, as an OpenTelemetry
// collector listens: POST /v1/traces with an ExportTraceServiceRequest in
// protobuf. It keeps every span with its service's name.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service string
	*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := attr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, receivedSpan{service: service, Span: s})
			}
		}
	}
	o.mu.Unlock()
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// span returns the received span with id spanID (hex), waiting for it.
func (o *otlpReceiver) span(t *testing.T, spanID string, timeout time.Duration) receivedSpan {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		for _, s := range o.spans {
			if hex.EncodeToString(s.SpanId) == spanID {
				o.mu.Unlock()
				return s
			}
		}
		n := len(o.spans)
		o.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no span %s among the %d received", spanID, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// Invariant: with OTEL_TRACES_EXPORTER=otlp (and the standard
// OTEL_EXPORTER_OTLP_* variables) both processes export spans to a real
// OTLP receiver, linked from commit to output in one trace: the output
// event carries the router's span (traceparent header and the CloudEvents
// traceparent attribute); that span is the child of the collector's raw
// publish span, which its raw record's traceparent named; that one the
// child of the span of the transaction with the event's commit LSN.
func TestTracesLinkCommitToOutput(t *testing.T) {
	e := newEnv(t, `CREATE TABLE traced (id int PRIMARY KEY, v text)`, "public.traced")
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	otel := []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=100"}
	col := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", e.pg.DSN(""), "--slot", "pgjet_traced", "--publication", "pgjet_traced", "--tables", "public.traced",
		"--nats", e.nats.URL(), "--source", "e2e",
	}, otel)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", e.nats.URL(), "--output-persist", "async",
		"--envelope", "cloudevents"}, otel)
	if !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("router did not start relaying")
	}
	e.exec(`INSERT INTO traced VALUES (1, 'followed')`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)
	msgs := readStream(ctx, t, js, "PGJET_EVENTS", len(changes))
	if len(msgs) != 1 {
		t.Fatalf("%d events, want 1", len(msgs))
	}
	m := msgs[0]
	tp := m.Headers().Get("traceparent")
	var ce struct {
		Traceparent string `json:"traceparent"`
		LSN         string `json:"pgjetlsn"`
	}
	if err := json.Unmarshal(m.Data(), &ce); err != nil {
		t.Fatal(err)
	}
	if tp == "" || ce.Traceparent != tp {
		t.Fatalf("the event's traceparent header %q and CloudEvents traceparent %q differ or are missing", tp, ce.Traceparent)
	}
	f := strings.Split(tp, "-")
	if len(f) != 4 || f[0] != "00" || len(f[1]) != 32 || len(f[2]) != 16 {
		t.Fatalf("traceparent %q is not W3C's 00-<trace id>-<span id>-<flags>", tp)
	}
	traceID := f[1]

	router := recv.span(t, f[2], 30*time.Second)
	publish := recv.span(t, hex.EncodeToString(router.ParentSpanId), 30*time.Second)
	tx := recv.span(t, hex.EncodeToString(publish.ParentSpanId), 30*time.Second)
	for _, s := range []struct {
		span          receivedSpan
		name, service string
	}{{router, "pgjet.router record", "pgjet-router"}, {publish, "pgjet.collector raw publish", "pgjet-collector"},
		{tx, "pgjet.collector transaction", "pgjet-collector"}} {
		if s.span.Name != s.name || s.span.service != s.service || hex.EncodeToString(s.span.TraceId) != traceID {
			t.Errorf("span %s of %s in trace %x, want %s of %s in trace %s", s.span.Name, s.span.service, s.span.TraceId, s.name, s.service, traceID)
		}
	}
	if got := attr(tx.Attributes, "pgjet.commit_lsn"); got != ce.LSN {
		t.Errorf("the transaction span's commit LSN is %s, the event's %s", got, ce.LSN)
	}
	for _, s := range []receivedSpan{router, tx} {
		var events []string
		for _, ev := range s.Events {
			events = append(events, ev.Name)
		}
		t.Logf("%s: %s, %v", s.Name, time.Duration(s.EndTimeUnixNano-s.StartTimeUnixNano), events)
	}
	if raw := rawTraceparent(ctx, t, js); raw == "" {
		t.Error("the raw record carries no traceparent")
	} else if !strings.Contains(raw, hex.EncodeToString(publish.SpanId)) {
		t.Errorf("the raw record's traceparent %s is not the raw publish span %x", raw, publish.SpanId)
	}
}

// rawTraceparent is the traceparent header of the raw stream's first record.
func rawTraceparent(ctx context.Context, t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	s, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header.Get("traceparent")
}
