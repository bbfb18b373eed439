package rawstream

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPublisher runs single-row transactions through a Publisher
// (Add, batching, publish, ack, confirm) into a memory stream of an
// in-process server: the collector's per-fragment and per-message
// bookkeeping, without the disk. It reports changes per second.
func BenchmarkPublisher(b *testing.B) { benchPublisher(b, nil, 0) }

// BenchmarkPublisherSmallMessages is BenchmarkPublisher with 10 changes per
// raw message: the cost of each publish (the server's check of the
// subject's last sequence included) against that of each change.
func BenchmarkPublisherSmallMessages(b *testing.B) { benchPublisher(b, nil, 10) }

// BenchmarkPublisherMetrics is BenchmarkPublisher with --metrics on: a
// Prometheus histogram times every raw publish.
func BenchmarkPublisherMetrics(b *testing.B) {
	benchPublisher(b, prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15)}), 0)
}

func benchPublisher(b *testing.B, latency Observer, maxChanges int) {
	const n = 20000
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Fresh each round: the publisher releases what it stored.
		frags := oltpFragments(b, n)
		srv := natstest.Run(b)
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{wire.RawFilter}, Storage: jetstream.MemoryStorage}); err != nil {
			b.Fatal(err)
		}
		p := NewPublisher(js, PublisherConfig{
			Stream: "RAW", Subject: wire.RawSubject(benchSrc.Name), Source: benchSrc, MaxMessageBytes: 1 << 20, MaxQueueBytes: 8 << 20, MaxMessageChanges: maxChanges,
			AckTimeout: 10 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), PublishLatency: latency,
		})
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- p.Run(ctx) }()
		for _, f := range frags {
			if err := p.Add(ctx, f, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		nc.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
}
