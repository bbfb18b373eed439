package rawstream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/tracing"
	"github.com/pgjet/pgjet/shared/wire"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// txSpans traces transactions through the publisher: a span per
// transaction from its first fragment handed on (decoded) to its last one
// stored, and a span per raw message from its publish to its ack, whose
// context the message carries (traceparent) for the routers. A raw message
// holds many transactions: its span is a child of the first one's and
// links the others.
type txSpans struct {
	tracer trace.Tracer
	mu     sync.Mutex
	open   map[uint64]trace.Span // by commit LSN
}

func newTxSpans(t trace.Tracer) *txSpans {
	if t == nil {
		return nil
	}
	return &txSpans{tracer: t, open: map[uint64]trace.Span{}}
}

// added: f was decoded and handed on for publishing.
func (t *txSpans) added(f *pgoutput.Fragment) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.open[f.Tx.CommitLSN]
	if !ok {
		_, s = t.tracer.Start(context.Background(), "pgjet.collector transaction", trace.WithSpanKind(trace.SpanKindProducer))
		if s.IsRecording() { // not when the sampler left it out: then nothing more to pay
			s.SetAttributes(
				attribute.Int64("pgjet.xid", int64(f.Tx.Xid)),
				attribute.String("pgjet.commit_lsn", wire.LSN(f.Tx.CommitLSN).String()),
				attribute.String("pgjet.commit_time", time.UnixMicro(f.Tx.CommitTime).UTC().Format(time.RFC3339Nano)),
			)
		}
		t.open[f.Tx.CommitLSN] = s
	}
	if f.Tx.Final && s.IsRecording() {
		s.AddEvent("decoded", trace.WithAttributes(attribute.Int64("pgjet.fragments", int64(f.Tx.Fragment)+1)))
	}
}

// maxLinks bounds the links of a raw message's span to its other
// transactions (OpenTelemetry's default limit of links per span).
const maxLinks = 127

// rawSpan is a raw message's span and the transactions it completes:
// copied, since the fragments are released once stored.
type rawSpan struct {
	span   trace.Span
	finals []uint64 // commit LSNs
}

// publishing starts the span of the raw message holding frags and writes
// its context into h.
func (t *txSpans) publishing(frags []*pgoutput.Fragment, h nats.Header) rawSpan {
	var finals []uint64
	for _, f := range frags {
		if f.Tx.Final {
			finals = append(finals, f.Tx.CommitLSN)
		}
	}
	t.mu.Lock()
	ctx := context.Background()
	var links []trace.Link
	for i, f := range frags {
		s := t.open[f.Tx.CommitLSN]
		if s == nil || (i > 0 && f.Tx.CommitLSN == frags[i-1].Tx.CommitLSN) {
			continue
		}
		if i == 0 {
			ctx = trace.ContextWithSpan(ctx, s)
		} else if len(links) < maxLinks && s.SpanContext().IsSampled() {
			links = append(links, trace.Link{SpanContext: s.SpanContext()})
		}
	}
	t.mu.Unlock()
	ctx, span := t.tracer.Start(ctx, "pgjet.collector raw publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("pgjet.fragments", len(frags))))
	tracing.Inject(ctx, h)
	return rawSpan{span: span, finals: finals}
}

// stored: the raw message of rs was acknowledged (err nil) or given up
// (err).
func (t *txSpans) stored(rs rawSpan, err error) {
	if err != nil {
		rs.span.RecordError(err)
		rs.span.SetStatus(codes.Error, "not stored")
	}
	rs.span.End()
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, lsn := range rs.finals {
		if s := t.open[lsn]; s != nil {
			s.End() // stored: the span's end is the ack
			delete(t.open, lsn)
		}
	}
}
