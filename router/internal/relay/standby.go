package relay

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Active/standby routers: several replicas of one route share its durable
// consumer through a pinned priority group. The server delivers to one
// client, the pinned one, and pins another once the pinned one has sent
// no pull request for the pin's TTL (it died, or lost the server). The
// relay keeps pulling while it works (its reader goroutine never waits on
// the rest of the relay for longer than a window of records, which the
// consumer's max ack pending bounds), so a live active keeps its pin.
//
// A standby holds back everything that would disturb the active: it does
// not reset the consumer to its ack floor at start, and does not take an
// idle consumer with pending records for a lost delivery. When the server
// pins it (its first record arrives), it takes over: it starts again from
// the consumer's ack floor, resetting the consumer so that the records the
// old active held come at once rather than after the ack wait, and reads
// the output stream's last events to skip what the old active stored.
// Should two ever publish at once (a pin lost while its holder still
// runs), both publish the same events in the same order with the same
// ids: the output dedupes, and the first arrival of each id, which is what
// the stream keeps, is still in order.

// StandbyGroup is the priority group of a route's replicas.
const StandbyGroup = "pgjet"

// DefaultStandbyTTL is how long the server keeps a silent active pinned:
// about the takeover time after the active dies.
const DefaultStandbyTTL = 10 * time.Second

// standbyPull are the pull options of a replica: its group, and pull
// requests that expire well within the pin's TTL, so that an active that
// waits on a full window still renews its pin.
func (r *Relay) standbyPull() []jetstream.PullMessagesOpt {
	if r.cfg.StandbyTTL <= 0 {
		return nil
	}
	// The heartbeat (idleCheck/3) must stay under half the expiry.
	expiry := max(r.cfg.StandbyTTL/4, 3*time.Second)
	return []jetstream.PullMessagesOpt{jetstream.PullPriorityGroup(StandbyGroup), jetstream.PullExpiry(expiry)}
}

// standby reports whether the relay is a replica that the server has not
// pinned (yet, or any more).
func (r *Relay) standby() bool { return r.cfg.StandbyTTL > 0 && !r.pinned }

// watchPin is a standby's look at the consumer while no record comes. When
// the server pins another client than before, the active one went silent
// for the pin's TTL; the records it held stay unacknowledged, and with as
// many of them as the consumer allows pending, the server delivers nothing
// to the new pinned replica until their ack wait ends (a minute). So the
// standby that sees the change resets the consumer to its ack floor: they
// come at once, to whichever replica is pinned now. (Should the old active
// still run, it publishes the same events in the same order: see above.)
func (r *Relay) watchPin(ctx context.Context, cons jetstream.Consumer) {
	ictx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	ci, err := cons.Info(ictx)
	if err != nil {
		return
	}
	pinned := ""
	for _, g := range ci.PriorityGroups {
		if g.Group == StandbyGroup {
			pinned = g.PinnedClientID
		}
	}
	prev := r.pinnedID
	r.pinnedID = pinned
	if prev == "" || pinned == prev || ci.NumAckPending == 0 {
		return
	}
	if _, err := r.raw.ResetConsumer(ictx, r.cfg.Durable); err != nil {
		r.log.Warn("another replica was pinned; cannot reset the consumer to its ack floor: the old active's records come after the ack wait", "err", err)
		return
	}
	r.log.Info("another replica was pinned: reset the consumer so that the old active's records come to it at once",
		"durable", r.cfg.Durable, "ack_pending", ci.NumAckPending)
}
