package relay

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRelayMetrics is BenchmarkRelay's memory case with --metrics on:
// a Prometheus histogram times every raw record's publishes.
func BenchmarkRelayMetrics(b *testing.B) {
	const records, perRecord = 40, 500
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15)})
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		js := benchEnv(b, jetstream.MemoryStorage, records, perRecord)
		r, err := New(js, Config{RawStream: rawStream, Durable: durable, Stream: outStream, Prefix: "postgres", Log: discardLogger(), PublishLatency: h})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- r.Run(ctx) }()
		for r.Stats().RawRecords < records {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records*perRecord*b.N)/total.Seconds(), "events/s")
}
