package relay

import (
	"errors"
	"sync/atomic"

	"github.com/pgjet/pgjet/router/internal/render"
)

// Observer takes a value: a prometheus.Observer, without this package
// depending on Prometheus.
type Observer interface{ Observe(float64) }

// EventOps names what a relay publishes, by the index EventCounts uses
// (render.Ops). Their counts add up to Stats().Events.
var EventOps = render.Ops

type opCounts [render.NumOps]atomic.Uint64

// countEvents adds the stored messages of msgs (not their dead letters)
// to the counts by kind.
func (r *Relay) countEvents(msgs []render.Msg) {
	var n [render.NumOps]uint64
	for i := range msgs {
		if msgs[i].Kind != render.DeadLetter {
			n[msgs[i].Op()]++
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
func (r *Relay) EventCounts() [render.NumOps]uint64 {
	var n [render.NumOps]uint64
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
