package render

import "github.com/pgjet/pgjet/shared/wire"

// Stored is what the relay read of one source's last events in the output
// stream when it started (over): where they end, and which positions it
// found from the first it read on.
//
// The records that come again after a restart or a resync are those a
// relay had not acknowledged: their events were published in order, and
// normally stored as a prefix, so those at or before the source's last
// stored event are skipped. But the output can refuse an event while it
// stores the ones after it (a limit of the stream, a cluster leader change
// in the middle of a window): an event the read found missing between the
// first and the last it read is published then, late, rather than lost.
// The read covers every message of the records that can come again (the
// relay's window), so only a change event the output never stored is
// missing there.
type Stored struct {
	// Last is the last event of the source the output holds (by position,
	// wire.EventID.Compare).
	Last  wire.EventID
	first wire.EventID
	read  map[wire.EventID]struct{}
}

// Add notes the event id p, read from the output stream.
func (s *Stored) Add(p wire.EventID) {
	if s.read == nil {
		s.Last, s.first, s.read = p, p, map[wire.EventID]struct{}{}
	} else if p.Compare(s.Last) > 0 {
		s.Last = p
	} else if p.Compare(s.first) < 0 {
		s.first = p
	}
	s.read[storedKey(p)] = struct{}{}
}

// storedKey is the position p stands for: a dead letter takes its event's
// place, and the source is the map's.
func storedKey(p wire.EventID) wire.EventID {
	p.Source, p.DeadLetter, p.Group = "", false, false
	return p
}

// missing reports whether pos, at or before Last, is a change event the
// output does not hold although it holds one before it: refused, not
// stored. Only change events: relation and transaction events depend on
// what the route rendered before, which a restart forgets.
func (s *Stored) missing(pos wire.EventID) bool {
	if s.read == nil || pos.Seg != wire.SegChanges || pos.Relation || pos.Compare(s.first) <= 0 {
		return false
	}
	_, ok := s.read[storedKey(pos)]
	return !ok
}
