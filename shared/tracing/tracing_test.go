package tracing

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestOffUnlessAsked(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, v := range []string{"", "none"} {
		t.Setenv("OTEL_TRACES_EXPORTER", v)
		tr, err := Setup(context.Background(), "pgjet-test", log)
		if err != nil || tr.Tracer != nil {
			t.Errorf("OTEL_TRACES_EXPORTER=%q: tracer %v, err %v; want off", v, tr.Tracer, err)
		}
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	if _, err := Setup(context.Background(), "pgjet-test", log); err == nil {
		t.Error("OTEL_TRACES_EXPORTER=zipkin: no error")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := Setup(context.Background(), "pgjet-test", log); err == nil {
		t.Error("OTEL_EXPORTER_OTLP_PROTOCOL=http/json: no error")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	tr, err := Setup(context.Background(), "pgjet-test", log)
	if err != nil || tr.Tracer == nil {
		t.Fatalf("otlp over grpc: %v", err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// The context crosses a NATS header as W3C writes it (traceparent), and is
// read in that spelling or HTTP's canonical one.
func TestPropagation(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := Header(sc); got != want {
		t.Errorf("Header = %s, want %s", got, want)
	}
	h := nats.Header{}
	Inject(trace.ContextWithSpanContext(context.Background(), sc), h)
	if got := h.Get(Traceparent); got != want {
		t.Errorf("injected %v", h)
	}
	for _, h := range []nats.Header{{"traceparent": {want}}, {"Traceparent": {want}}} {
		got := trace.SpanContextFromContext(Extract(context.Background(), h))
		if got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
			t.Errorf("extracted %v from %v", got, h)
		}
	}
	if got := Header(trace.SpanContext{}); got != "" {
		t.Errorf("Header of no span = %q", got)
	}
}
