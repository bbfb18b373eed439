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
		{"beyond a minute", []time.Duration{90 * time.Second}, 90 * time.Second, 90 * time.Second, 90 * time.Second},
		{"clock behind: counted as no lag", []time.Duration{-time.Second}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tc.lags {
				h.Observe(commitAgo(d), now)
			}
			s := h.Snapshot().Since(nil)
			if int(s.N) != len(tc.lags) || s.P50 != tc.p50 || s.P99 != tc.p99 || s.Max != tc.max {
				t.Fatalf("got %+v, want n=%d p50=%v p99=%v max=%v", s, len(tc.lags), tc.p50, tc.p99, tc.max)
			}
		})
	}
}

// TestInterval: the log's interval figures come from two snapshots, and
// reading them resets nothing that /metrics reads.
func TestInterval(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var h Histogram
	for range 10 {
		h.Observe(now.Add(-2*time.Second).UnixMicro(), now)
	}
	first := h.Snapshot()
	if again := h.Snapshot().Since(first); again != (Summary{}) {
		t.Fatalf("an interval without lags: %+v", again)
	}
	h.Observe(now.Add(-1500*time.Microsecond).UnixMicro(), now)
	h.Observe(now.Add(-7200*time.Microsecond).UnixMicro(), now)
	second := h.Snapshot()
	s := second.Since(first)
	// Below the slow lags of the first interval: the bucket's edge.
	if want := (Summary{N: 2, P50: 2 * time.Millisecond, P99: 2 * time.Millisecond, Max: 8 * time.Millisecond}); s != want {
		t.Fatalf("second interval: %+v, want %+v", s, want)
	}
	if second.Count() != 12 {
		t.Fatalf("cumulative count %d, want 12", second.Count())
	}
	if sum := second.Sum(); sum < 20.0087 || sum > 20.0088 {
		t.Fatalf("cumulative sum %v", sum)
	}
	cum := second.Cumulative([]float64{0.001, 0.002, 0.005, 0.01, 1, 2, 2.5, 60})
	for b, want := range map[float64]uint64{0.001: 0, 0.002: 1, 0.005: 1, 0.01: 2, 1: 2, 2: 2, 2.5: 12, 60: 12} {
		if cum[b] != want {
			t.Errorf("le %v: %d, want %d", b, cum[b], want)
		}
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
