package lag

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	commitAgo := func(d time.Duration) int64 { return now.Add(-d).UnixMicro() }
	for _, tc := range []struct {
		name          string
		lags          []time.Duration
		p50, p99, max time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"one", []time.Duration{3500 * time.Microsecond}, 3500 * time.Microsecond, 3500 * time.Microsecond, 3500 * time.Microsecond},
		{"ninety-nine fast, one slow", append(repeat(99, 2*time.Millisecond+100*time.Microsecond), 80*time.Millisecond),
			3 * time.Millisecond, 3 * time.Millisecond, 80 * time.Millisecond},
		{"slow tail", append(repeat(90, time.Millisecond), repeat(10, 40*time.Millisecond)...),
			2 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond},
		{"beyond a second", []time.Duration{5 * time.Second}, 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{"clock behind: counted as no lag", []time.Duration{-time.Second}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tc.lags {
				h.Observe(commitAgo(d), now)
			}
			s := h.Take()
			if int(s.N) != len(tc.lags) || s.P50 != tc.p50 || s.P99 != tc.p99 || s.Max != tc.max {
				t.Fatalf("got %+v, want n=%d p50=%v p99=%v max=%v", s, len(tc.lags), tc.p50, tc.p99, tc.max)
			}
			if again := h.Take(); again != (Summary{}) {
				t.Fatalf("Take did not start a new interval: %+v", again)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
