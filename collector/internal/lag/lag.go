// Package lag measures how long after their commit transactions reach a
// point of the collector, for its progress log: the time from a commit to its
// decoding is the walsender's lag, to its raw record's acknowledgement the
// collector's whole delay. Commit times come from Postgres's clock: on
// another host, the difference between the two clocks is included.
package lag

import (
	"sync"
	"time"
)

// buckets of one millisecond up to a second, then one for everything above.
const buckets = 1001

// Histogram counts lags over an interval. It is safe for concurrent use.
type Histogram struct {
	mu     sync.Mutex
	counts [buckets]uint32
	n      uint32
	max    time.Duration
}

// Observe records the lag of a transaction committed at commitMicros
// (microseconds since the Unix epoch), seen at now.
func (h *Histogram) Observe(commitMicros int64, now time.Time) {
	d := max(now.Sub(time.UnixMicro(commitMicros)), 0)
	i := min(int(d/time.Millisecond), buckets-1)
	h.mu.Lock()
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
	h.mu.Unlock()
}

// Summary is the lag over an interval. Quantiles are exact to the
// millisecond below one second; above, they read the largest lag.
type Summary struct {
	N        uint32
	P50, P99 time.Duration
	Max      time.Duration
}

// Take returns the summary of what was observed since the last Take and
// starts a new interval.
func (h *Histogram) Take() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Summary{N: h.n, Max: h.max}
	if h.n > 0 {
		s.P50, s.P99 = h.quantile(0.5), h.quantile(0.99)
	}
	h.counts = [buckets]uint32{}
	h.n, h.max = 0, 0
	return s
}

// quantile is the upper edge of the bucket holding the q-th observation,
// capped at the largest lag seen.
func (h *Histogram) quantile(q float64) time.Duration {
	rank := uint32(q*float64(h.n-1)) + 1
	var seen uint32
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == buckets-1 {
				return h.max // beyond a second: no finer bucket
			}
			return min(time.Duration(i+1)*time.Millisecond, h.max)
		}
	}
	return h.max
}
