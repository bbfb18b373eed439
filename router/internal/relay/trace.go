package relay

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts the span of raw record msg (sequence seq): a child of
// the collector's span of the raw message, which its traceparent header
// names, so that a trace goes from the transaction to the output.
func (r *Relay) startSpan(ctx context.Context, msg jetstream.Msg, seq uint64) trace.Span {
	ctx = tracing.Extract(ctx, msg.Headers())
	_, span := r.cfg.Tracer.Start(ctx, "pgjet.router record", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.Int64("pgjet.raw_seq", int64(seq)),
			attribute.String("pgjet.raw_stream", r.cfg.RawStream),
			attribute.String("pgjet.durable", r.cfg.Durable),
			attribute.String("pgjet.stream", r.cfg.Stream),
		))
	return span
}

// endSpan ends the span of a record the relay stops at, with why.
func (rec *record) endSpan(err error) {
	if rec.span != nil {
		rec.span.RecordError(err)
		rec.span.SetStatus(codes.Error, err.Error())
		rec.span.End()
	}
}
