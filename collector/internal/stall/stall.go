// Package stall tells a replication session that has stopped moving from
// one that has nothing to do.
//
// A walsender can wait for ever without an error: a promoted server whose
// synchronized_standby_slots names a slot it lacks holds every logical
// walsender back, and says so only in a warning on the replication
// connection. The session then neither receives nor confirms anything
// while the server's WAL grows. A session holding back because JetStream
// does not take its records (something in flight) is another matter, with
// its own reason, and is not a stall here.
package stall

import (
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// Sample is one look at a session and its server.
type Sample struct {
	At time.Time
	// Received and Confirmed: the session's positions.
	Received, Confirmed uint64
	// Sent is the walsender's sent_lsn (pg_stat_replication), 0 when
	// unknown: a walsender decoding a long transaction sends nothing, but
	// moves it.
	Sent uint64
	// WAL is the server's pg_current_wal_lsn().
	WAL uint64
	// InFlight: records wait for JetStream, which holds the session back.
	InFlight bool
}

// Detector watches samples of one session.
type Detector struct {
	// After is how long a session may stand still with WAL to read.
	After time.Duration

	prev  Sample
	since time.Time // when the session last moved or had nothing to do
}

// Observe takes a sample and returns why the session is stalled, or "".
func (d *Detector) Observe(s Sample) string {
	prev := d.prev
	d.prev = s
	moved := prev.At.IsZero() || s.Received != prev.Received || s.Confirmed != prev.Confirmed || s.Sent != prev.Sent
	behind := s.WAL > max(s.Received, s.Confirmed, s.Sent)
	if moved || !behind || s.InFlight {
		d.since = s.At
		return ""
	}
	still := s.At.Sub(d.since)
	if still < d.After {
		return ""
	}
	return fmt.Sprintf("replication stalled: nothing received or confirmed for %s while the server's WAL grew to %s (received up to %s, walsender sent up to %s); see the log for server warnings (e.g. synchronized_standby_slots naming a slot this server lacks)",
		still.Round(time.Second), pglogrepl.LSN(s.WAL), pglogrepl.LSN(s.Received), pglogrepl.LSN(s.Sent))
}
