// Package tracingtest turns tracing on in a benchmark or test, exporting to
// a receiver that discards.
package tracingtest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pgjet/pgjet/shared/tracing"
)

// ForBenchmark turns tracing on for tb as the environment would, exporting
// over OTLP/HTTP to a receiver that discards every span: what tracing costs
// a process, exporter included, not what a backend costs. It is off again
// when tb ends.
func ForBenchmark(tb testing.TB, service string) *tracing.Tracing {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	tb.Cleanup(srv.Close)
	tb.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	tb.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tb.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tr, err := tracing.Setup(context.Background(), service, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}
