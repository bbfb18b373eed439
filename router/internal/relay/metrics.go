package relay

import (
	"errors"
	"sync/atomic"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// Observer takes a value: a prometheus.Observer, without this package
// depending on Prometheus.
type Observer interface{ Observe(float64) }

// EventOps names what a relay publishes, by the index EventCounts uses: the
// change operations, then transaction, relation, tombstone and transaction
// group messages. Their counts add up to Stats().Events.
var EventOps = [numOps]string{"insert", "update", "delete", "truncate", "message", "read", "begin", "commit", "relation", "tombstone", "group"}

const (
	opBegin = int(wire.OpRead) + iota
	opCommit
	opRelation
	opTombstone
	opGroup
	numOps
)

type opCounts [numOps]atomic.Uint64

// opIndex is o's index in EventOps.
func opIndex(o *out) int {
	switch {
	case o.group:
		return opGroup
	case o.tombstone:
		return opTombstone
	}
	switch o.ev.Kind {
	case envelope.KindBegin:
		return opBegin
	case envelope.KindCommit:
		return opCommit
	case envelope.KindRelation:
		return opRelation
	}
	if op := int(o.ev.Change.Op); op >= int(wire.OpInsert) && op <= int(wire.OpRead) {
		return op - int(wire.OpInsert)
	}
	return opGroup // no other kind of message exists
}

// countEvents adds the stored messages of outs (not their dead letters)
// to the counts by kind.
func (r *Relay) countEvents(outs []out) {
	var n [numOps]uint64
	for i := range outs {
		if !outs[i].dead {
			n[opIndex(&outs[i])]++
		}
	}
	for k, c := range n {
		if c > 0 {
			r.stats.events[k].Add(c)
		}
	}
}

// EventCounts returns the events stored so far by EventOps index; safe to
// call while Run runs.
func (r *Relay) EventCounts() [numOps]uint64 {
	var n [numOps]uint64
	for k := range n {
		n[k] = r.stats.events[k].Load()
	}
	return n
}

func (r *Relay) events() uint64 {
	var sum uint64
	for _, n := range r.EventCounts() {
		sum += n
	}
	return sum
}

// Pending is how many raw records were left for the consumer when the
// last one was delivered.
func (r *Relay) Pending() uint64 { return r.stats.lag.Load() }

// Ready returns nil while the relay is set up and consuming, else what it
// is doing instead.
func (r *Relay) Ready() error {
	if why := r.state.Load(); why != nil && *why != "" {
		return errors.New(*why)
	}
	return nil
}

func (r *Relay) ready()              { r.state.Store(new(string)) }
func (r *Relay) notReady(why string) { r.state.Store(&why) }
