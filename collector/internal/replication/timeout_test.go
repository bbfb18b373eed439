package replication

import (
	"testing"
	"time"
)

func TestStatusIntervalFor(t *testing.T) {
	for _, tc := range []struct {
		shown string
		want  time.Duration
	}{
		{"1min", DefaultStatusInterval}, // Postgres's default: 60 s
		{"20s", DefaultStatusInterval},
		{"10s", 5 * time.Second},
		{"2s", time.Second},
		{"500ms", 250 * time.Millisecond},
		{"100", 100 * time.Millisecond}, // no unit: milliseconds
		{"0", DefaultStatusInterval},    // no timeout
		{"1h", DefaultStatusInterval},
	} {
		d, err := parseSetting(tc.shown)
		if err != nil {
			t.Fatalf("%s: %v", tc.shown, err)
		}
		if got := StatusIntervalFor(d); got != tc.want {
			t.Errorf("wal_sender_timeout %s: status every %s, want %s", tc.shown, got, tc.want)
		}
	}
	for _, bad := range []string{"", "s", "10 parsecs", "1.5s"} {
		if _, err := parseSetting(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
