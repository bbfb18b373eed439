// Package tracing is pgjet's OpenTelemetry tracing: off unless the
// environment asks for it (OTEL_TRACES_EXPORTER=otlp), then exported over
// OTLP as every OpenTelemetry SDK is configured (OTEL_EXPORTER_OTLP_ENDPOINT,
// _PROTOCOL, _HEADERS, _TIMEOUT and their _TRACES_ forms, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*), and the W3C
// trace context that links the collector's spans to the router's across
// the raw stream, and the router's to consumers.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Traceparent is the W3C trace context header: on raw messages (the
// collector's span) and on output messages (the router's span).
const Traceparent = "traceparent"

// ScopeName is the instrumentation scope of pgjet's spans.
const ScopeName = "github.com/pgjet/pgjet"

// Tracing is a process's tracer and its exporter.
type Tracing struct {
	provider *sdktrace.TracerProvider
	// Tracer makes pgjet's spans; nil while tracing is off, which the hot
	// paths test before doing any tracing work.
	Tracer trace.Tracer
}

// Setup starts tracing for service (pgjet-collector, pgjet-router) when
// OTEL_TRACES_EXPORTER is otlp; with it unset or none, tracing is off (a
// Tracing with a nil Tracer). OTEL_SDK_DISABLED=true turns it off too.
func Setup(ctx context.Context, service string, log *slog.Logger) (*Tracing, error) {
	exporter := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))
	switch {
	case strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true"), exporter == "", exporter == "none":
		return &Tracing{}, nil
	case exporter != "otlp":
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: pgjet exports traces with otlp (or none)", exporter)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: use http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the name.
	res, err := resource.Merge(resource.NewSchemaless(semconv.ServiceName(service)), resource.Environment())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler (OTEL_TRACES_SAMPLER) and batching (OTEL_BSP_*) come from
	// the environment as the SDK reads them.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing", "exporter", "otlp", "protocol", cmpOr(protocol, "http/protobuf"))
	return &Tracing{provider: tp, Tracer: tp.Tracer(ScopeName)}, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("exporting the last spans: %w", err)
	}
	return nil
}

var propagator = propagation.TraceContext{}

// Inject writes the W3C trace context of ctx's span into h.
func Inject(ctx context.Context, h nats.Header) {
	propagator.Inject(ctx, carrier(h))
}

// Extract returns ctx with the remote span context h carries, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, carrier(h))
}

// carrier is a NATS header as a TextMapCarrier. NATS header names are
// case-sensitive: the fields are written as W3C spells them (traceparent),
// and read in that spelling or HTTP's canonical one (Traceparent).
type carrier nats.Header

func (c carrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return http.Header(c).Get(key)
}

func (c carrier) Set(key, value string) { c[key] = []string{value} }

func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Header is the traceparent header value of sc: what messages carry (and,
// as the CloudEvents distributed tracing extension, CloudEvents).
func Header(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return fmt.Sprintf("00-%s-%s-%02x", sc.TraceID(), sc.SpanID(), byte(sc.TraceFlags()))
}
