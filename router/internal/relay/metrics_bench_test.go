package relay

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRelayMetrics is BenchmarkRelay's memory case with --metrics on:
// a Prometheus histogram times every raw record's publishes.
func BenchmarkRelayMetrics(b *testing.B) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15)})
	benchRelay(b, jetstream.MemoryStorage, h, nil)
}
