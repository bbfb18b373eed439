package stall

import (
	"strings"
	"testing"
	"time"
)

func TestDetector(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		s       Sample
		stalled bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle server: nothing to read", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 100, Sent: 100, WAL: 100}, false},
			{Sample{At: at(60), Received: 100, Confirmed: 100, Sent: 100, WAL: 100}, false},
		}},
		{"streaming: positions move", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 90, Sent: 100, WAL: 200}, false},
			{Sample{At: at(30), Received: 200, Confirmed: 190, Sent: 200, WAL: 300}, false},
			{Sample{At: at(60), Received: 300, Confirmed: 290, Sent: 300, WAL: 400}, false},
		}},
		{"walsender held back while the WAL grows", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 100, Sent: 100, WAL: 200}, false},
			{Sample{At: at(10), Received: 100, Confirmed: 100, Sent: 100, WAL: 300}, false},
			{Sample{At: at(19), Received: 100, Confirmed: 100, Sent: 100, WAL: 400}, false},
			{Sample{At: at(20), Received: 100, Confirmed: 100, Sent: 100, WAL: 500}, true},
			{Sample{At: at(40), Received: 100, Confirmed: 100, Sent: 100, WAL: 500}, true},
			// Released: data flows again.
			{Sample{At: at(42), Received: 400, Confirmed: 100, Sent: 400, WAL: 500}, false},
		}},
		{"decoding a long transaction: sent_lsn moves, nothing is received", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 100, Sent: 100, WAL: 900}, false},
			{Sample{At: at(30), Received: 100, Confirmed: 100, Sent: 400, WAL: 900}, false},
			{Sample{At: at(60), Received: 100, Confirmed: 100, Sent: 700, WAL: 900}, false},
		}},
		{"JetStream holds the session back: not a stall of the walsender", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 50, Sent: 100, WAL: 900, InFlight: true}, false},
			{Sample{At: at(60), Received: 100, Confirmed: 50, Sent: 100, WAL: 900, InFlight: true}, false},
		}},
		{"sent_lsn unknown (no stats row): received and confirmed decide", []step{
			{Sample{At: at(0), Received: 100, Confirmed: 100, WAL: 200}, false},
			{Sample{At: at(25), Received: 100, Confirmed: 100, WAL: 300}, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Detector{After: 20 * time.Second}
			for i, st := range tt.steps {
				why := d.Observe(st.s)
				if (why != "") != st.stalled {
					t.Fatalf("step %d: stalled = %q, want %v", i, why, st.stalled)
				}
				if why != "" && !strings.Contains(why, "synchronized_standby_slots") {
					t.Errorf("reason does not name the likely cause: %s", why)
				}
			}
		})
	}
}
