// Package checkpoint owns the WAL position confirmed to Postgres: where it
// starts, when it moves and what a standby status update reports.
//
// Fragments are tracked in WAL order as they are handed to the publisher
// and acknowledged as JetStream stores them, in any order: the confirmed
// position is the end of the last transaction of the longest prefix of
// tracked fragments that is fully acknowledged (the highest position with
// nothing pending below it). A transaction partly received, or any fragment
// not yet acknowledged, holds it where it is; only when nothing is in flight
// may it move to the server's WAL end, which a keepalive reports.
package checkpoint

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
)

// Checkpoint tracks fragments in flight and the confirmed position. Its
// methods are safe for concurrent use.
type Checkpoint struct {
	confirmed atomic.Uint64
	// inFlight mirrors len(pending), for a lock-free Idle.
	inFlight atomic.Int64
	// waitingSince is when the oldest of what is in flight started to wait
	// for a confirmation (unix nanoseconds): when tracking began from idle,
	// or the confirmed position last moved with more in flight.
	waitingSince atomic.Int64

	mu sync.Mutex
	// pending holds the tracked fragments not yet popped, oldest first;
	// pending[i] has sequence number base+i.
	pending []entry
	base    uint64
	next    uint64 // sequence number of the next Track
	// head indexes pending's first live entry: popping moves it instead of
	// copying, and the slice is compacted now and then.
	head int
}

type entry struct {
	end   uint64 // end LSN of the transaction the fragment closes, else 0
	acked bool
}

// New returns a Checkpoint starting at start, the slot's confirmed_flush_lsn:
// the position already confirmed to Postgres.
func New(start uint64) *Checkpoint {
	c := &Checkpoint{}
	c.confirmed.Store(start)
	return c
}

// Confirmed is the WAL position up to which every transaction is stored.
func (c *Checkpoint) Confirmed() uint64 { return c.confirmed.Load() }

// Idle reports whether every tracked fragment has been acknowledged.
func (c *Checkpoint) Idle() bool { return c.inFlight.Load() == 0 }

// Track registers a fragment handed on for publishing, in WAL order, and
// returns its sequence number for Ack. end is the end LSN of the transaction
// the fragment closes, 0 when more of the transaction follows.
func (c *Checkpoint) Track(end uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq := c.next
	c.next++
	c.pending = append(c.pending, entry{end: end})
	if c.inFlight.Load() == 0 {
		// Before the count, so that Age never pairs it with an old time.
		c.waitingSince.Store(time.Now().UnixNano())
	}
	c.inFlight.Add(1)
	return seq
}

// Ack marks the n fragments from sequence number first on as acknowledged
// and advances the confirmed position over the acknowledged prefix.
// Acknowledging a fragment twice, or one never tracked, is a no-op.
func (c *Checkpoint) Ack(first uint64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for seq := first; seq < first+uint64(n); seq++ {
		if seq < c.base+uint64(c.head) || seq >= c.next {
			continue
		}
		c.pending[seq-c.base].acked = true
	}
	var end uint64
	popped := 0
	for c.head < len(c.pending) && c.pending[c.head].acked {
		if e := c.pending[c.head].end; e != 0 {
			end = e
		}
		c.head++
		popped++
	}
	if popped == 0 {
		return
	}
	c.inFlight.Add(-int64(popped))
	if c.head == len(c.pending) {
		c.base += uint64(c.head)
		c.pending, c.head = c.pending[:0], 0
	} else if c.head >= 1024 && c.head >= len(c.pending)/2 {
		live := copy(c.pending, c.pending[c.head:])
		c.base += uint64(c.head)
		c.pending, c.head = c.pending[:live], 0
	}
	if end != 0 {
		c.advance(end)
		if c.head < len(c.pending) {
			c.waitingSince.Store(time.Now().UnixNano())
		}
	}
}

// Age is how long the confirmed position has stood still while changes
// wait for their acknowledgement: 0 when nothing is in flight. Under load it
// stays about the time of one publish; it grows while JetStream does not
// acknowledge.
func (c *Checkpoint) Age(now time.Time) time.Duration {
	if c.Idle() {
		return 0
	}
	return max(0, now.Sub(time.Unix(0, c.waitingSince.Load())))
}

// AdvanceIdle moves the confirmed position to walEnd, the server's WAL end
// from a keepalive, when nothing is in flight: no transaction partly
// received (partial) and no tracked fragment unacknowledged. The server has
// then sent everything up to walEnd, so an idle slot can move there and
// the server can recycle WAL. It reports whether it did.
func (c *Checkpoint) AdvanceIdle(walEnd uint64, partial bool) bool {
	if partial {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head < len(c.pending) {
		return false
	}
	c.advance(walEnd)
	return true
}

// advance raises the confirmed position to lsn, never lowering it.
func (c *Checkpoint) advance(lsn uint64) {
	for {
		cur := c.confirmed.Load()
		if lsn <= cur || c.confirmed.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

// Status is the standby status update to send: write, flush and apply all
// set explicitly to the confirmed position. pglogrepl copies an unset flush
// position from the write position, and a received but unacknowledged
// position must never count as flushed.
func (c *Checkpoint) Status() pglogrepl.StandbyStatusUpdate {
	lsn := pglogrepl.LSN(c.Confirmed())
	return pglogrepl.StandbyStatusUpdate{WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn}
}
