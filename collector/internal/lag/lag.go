// Package lag measures how long after their commit transactions reach a
// point of the collector: the time from a commit to its decoding is the
// walsender's lag, to its raw record's acknowledgement the collector's whole
// delay. Commit times come from Postgres's clock: on another host, the
// difference between the two clocks is included.
//
// A Histogram counts for the life of the process and is never reset: the
// progress log and /metrics read the same counts. A reset by one reader
// (the log used to take and clear each interval) would hide from the other
// what it took. The log gets its interval figures by differencing two
// snapshots instead: with buckets this fine (a millisecond below a second),
// the difference gives the interval's quantiles as exactly as a reset did,
// at the cost of copying 13 kB every 10 s.
package lag

import (
	"math"
	"sync"
	"time"
)

// Buckets: one millisecond wide below a second, 100 ms wide up to a
// minute, then one for everything above.
const (
	fine     = 1000 // [0, 1 s) by 1 ms
	coarse   = 590  // [1 s, 60 s) by 100 ms
	buckets  = fine + coarse + 1
	fineStep = time.Millisecond
	wideStep = 100 * time.Millisecond
)

func bucket(d time.Duration) int {
	if d < time.Second {
		return int(d / fineStep)
	}
	return min(fine+int((d-time.Second)/wideStep), buckets-1)
}

// upper is the upper edge of bucket i (the last one has none).
func upper(i int) time.Duration {
	if i < fine {
		return time.Duration(i+1) * fineStep
	}
	return time.Second + time.Duration(i-fine+1)*wideStep
}

// Histogram counts lags. It is safe for concurrent use.
type Histogram struct {
	mu sync.Mutex
	s  Snapshot
}

// Snapshot is a Histogram's counts at one moment, since the process started.
type Snapshot struct {
	counts [buckets]uint64
	n      uint64
	sum    float64       // seconds
	max    time.Duration // the largest lag ever seen
}

// Observe records the lag of a transaction committed at commitMicros
// (microseconds since the Unix epoch), seen at now.
func (h *Histogram) Observe(commitMicros int64, now time.Time) {
	d := max(now.Sub(time.UnixMicro(commitMicros)), 0)
	i := bucket(d)
	h.mu.Lock()
	h.s.counts[i]++
	h.s.n++
	h.s.sum += d.Seconds()
	h.s.max = max(h.s.max, d)
	h.mu.Unlock()
}

// Snapshot returns the counts so far.
func (h *Histogram) Snapshot() *Snapshot {
	s := new(Snapshot)
	h.mu.Lock()
	*s = h.s
	h.mu.Unlock()
	return s
}

// Count and Sum are the number of lags observed and their total in seconds.
func (s *Snapshot) Count() uint64 { return s.n }
func (s *Snapshot) Sum() float64  { return s.sum }

// Cumulative returns, for each bound (seconds, ascending), how many lags
// were below it: a Prometheus histogram's buckets. A bound between two
// buckets' edges counts the bucket it falls in as above it.
func (s *Snapshot) Cumulative(bounds []float64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	var seen uint64
	i := 0
	for _, b := range bounds {
		edge := time.Duration(math.Round(b * float64(time.Second)))
		for ; i < buckets-1 && upper(i) <= edge; i++ {
			seen += s.counts[i]
		}
		out[b] = seen
	}
	return out
}

// Summary is the lag over an interval. Quantiles and the largest lag are
// exact to the millisecond below one second and to 100 ms below a minute,
// and never above the largest lag ever seen; beyond a minute they read that.
type Summary struct {
	N        uint64
	P50, P99 time.Duration
	Max      time.Duration
}

// Since summarizes the lags observed between prev (nil: the start) and s.
func (s *Snapshot) Since(prev *Snapshot) Summary {
	var d [buckets]uint64
	var n uint64
	top := -1
	for i := range d {
		d[i] = s.counts[i]
		if prev != nil {
			d[i] -= prev.counts[i]
		}
		if d[i] > 0 {
			n += d[i]
			top = i
		}
	}
	if n == 0 {
		return Summary{}
	}
	// The interval's largest lag is in its top bucket; the largest ever
	// seen bounds it, and is it when that bucket holds only lags above it.
	edge := func(i int) time.Duration {
		if i == buckets-1 {
			return s.max
		}
		return min(upper(i), s.max)
	}
	quantile := func(q float64) time.Duration {
		rank := uint64(q*float64(n-1)) + 1
		var seen uint64
		for i, c := range d {
			if seen += c; seen >= rank {
				return edge(i)
			}
		}
		return edge(top)
	}
	return Summary{N: n, P50: quantile(0.5), P99: quantile(0.99), Max: edge(top)}
}
