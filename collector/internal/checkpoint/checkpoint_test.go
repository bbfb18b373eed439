package checkpoint

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// op is one step of a scenario: track a fragment (closing a transaction at
// end, or 0: more follows), acknowledge tracked fragments, or a keepalive.
type op struct {
	track     *uint64 // end LSN of the tracked fragment
	ack       []int   // indexes, in Track order, of the fragments acked together
	keepalive uint64  // server WAL end
	partial   bool    // with keepalive: a transaction partly received
}

func track(end uint64) op            { return op{track: &end} }
func ack(i ...int) op                { return op{ack: i} }
func keepalive(walEnd uint64) op     { return op{keepalive: walEnd} }
func keepaliveInTx(walEnd uint64) op { return op{keepalive: walEnd, partial: true} }

func TestCheckpoint(t *testing.T) {
	tests := []struct {
		name  string
		start uint64
		ops   []op
		want  uint64
		idle  bool
	}{
		{name: "start value", start: 0x1000, want: 0x1000, idle: true},
		{name: "tracked, not acked: stays", start: 0x1000, ops: []op{track(0x1100)}, want: 0x1000},
		{name: "ack in order", start: 0x1000, ops: []op{track(0x1100), track(0x1200), ack(0), ack(1)}, want: 0x1200, idle: true},
		{name: "ack of a prefix", start: 0x1000, ops: []op{track(0x1100), track(0x1200), track(0x1300), ack(0, 1)}, want: 0x1200},
		{name: "out of order: nothing below acked", start: 0x1000, ops: []op{track(0x1100), track(0x1200), track(0x1300), ack(2), ack(1)}, want: 0x1000},
		{name: "out of order: gap filled", start: 0x1000, ops: []op{track(0x1100), track(0x1200), track(0x1300), ack(2), ack(1), ack(0)}, want: 0x1300, idle: true},
		{name: "out of order: highest with nothing pending below", start: 0x1000, ops: []op{track(0x1100), track(0x1200), track(0x1300), track(0x1400), ack(1), ack(3), ack(0)}, want: 0x1200},
		{name: "transaction in fragments: only its end counts", start: 0x1000, ops: []op{track(0), track(0), ack(0, 1)}, want: 0x1000, idle: true},
		{name: "last fragment of a transaction", start: 0x1000, ops: []op{track(0), track(0x1500), ack(0), ack(1)}, want: 0x1500, idle: true},
		{name: "ack twice is a no-op", start: 0x1000, ops: []op{track(0x1100), ack(0), ack(0)}, want: 0x1100, idle: true},
		{name: "never lowered", start: 0x2000, ops: []op{track(0x1100), ack(0)}, want: 0x2000, idle: true},
		{name: "idle: keepalive moves to the WAL end", start: 0x1000, ops: []op{keepalive(0x3000)}, want: 0x3000, idle: true},
		{name: "idle after acks: keepalive moves", start: 0x1000, ops: []op{track(0x1100), ack(0), keepalive(0x3000)}, want: 0x3000, idle: true},
		{name: "keepalive with a fragment in flight: stays", start: 0x1000, ops: []op{track(0x1100), keepalive(0x3000)}, want: 0x1000},
		{name: "keepalive with an earlier fragment in flight: acked prefix only", start: 0x1000, ops: []op{track(0x1100), track(0x1200), ack(0), keepalive(0x3000)}, want: 0x1100},
		{name: "keepalive with an acked fragment above a pending one: stays", start: 0x1000, ops: []op{track(0x1100), track(0x1200), ack(1), keepalive(0x3000)}, want: 0x1000},
		{name: "keepalive in a partly received transaction: stays", start: 0x1000, ops: []op{keepaliveInTx(0x3000)}, want: 0x1000, idle: true},
		{name: "keepalive behind the confirmed position: stays", start: 0x4000, ops: []op{keepalive(0x3000)}, want: 0x4000, idle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.start)
			var seqs []uint64
			for _, o := range tt.ops {
				switch {
				case o.track != nil:
					seqs = append(seqs, c.Track(*o.track))
				case o.ack != nil:
					for _, i := range o.ack {
						c.Ack(seqs[i], 1)
					}
				default:
					c.AdvanceIdle(o.keepalive, o.partial)
				}
			}
			if got := c.Confirmed(); got != tt.want {
				t.Errorf("confirmed %X, want %X", got, tt.want)
			}
			if got := c.Idle(); got != tt.idle {
				t.Errorf("idle %v, want %v", got, tt.idle)
			}
		})
	}
}

// Ack of a range acknowledges each fragment in it, as a raw message of
// several fragments does.
func TestCheckpointAckRange(t *testing.T) {
	c := New(0)
	first := c.Track(0x10)
	c.Track(0)
	c.Track(0x30)
	c.Track(0x40)
	c.Ack(first+2, 2)
	if got := c.Confirmed(); got != 0 {
		t.Fatalf("confirmed %X with the first two pending, want 0", got)
	}
	c.Ack(first, 2)
	if got := c.Confirmed(); got != 0x40 || !c.Idle() {
		t.Fatalf("confirmed %X idle %v, want 40 and idle", got, c.Idle())
	}
}

// Many fragments in flight, acknowledged in windows: the tracker compacts
// its queue and keeps the positions right.
func TestCheckpointLongRun(t *testing.T) {
	c := New(0)
	var seqs []uint64
	for i := 1; i <= 10000; i++ {
		seqs = append(seqs, c.Track(uint64(i)))
		if i%700 == 0 {
			// Acknowledge the window backwards.
			for j := len(seqs) - 1; j >= 0; j-- {
				c.Ack(seqs[j], 1)
			}
			if got := c.Confirmed(); got != uint64(i) {
				t.Fatalf("after %d: confirmed %d", i, got)
			}
			seqs = seqs[:0]
		}
	}
	for _, s := range seqs {
		c.Ack(s, 1)
	}
	if got := c.Confirmed(); got != 10000 || !c.Idle() {
		t.Fatalf("confirmed %d idle %v, want 10000 and idle", got, c.Idle())
	}
}

// A status update reports the confirmed position as written, flushed and
// applied, all set explicitly: never a received or unacknowledged position.
func TestCheckpointStatus(t *testing.T) {
	tests := []struct {
		name string
		prep func(c *Checkpoint)
		want uint64
	}{
		{name: "at start: the slot's confirmed position", prep: func(*Checkpoint) {}, want: 0x1000},
		{name: "received, not acked: not flushed", prep: func(c *Checkpoint) { c.Track(0x2000) }, want: 0x1000},
		{name: "keepalive in a transaction: not flushed", prep: func(c *Checkpoint) { c.AdvanceIdle(0x5000, true) }, want: 0x1000},
		{name: "acked", prep: func(c *Checkpoint) { c.Ack(c.Track(0x2000), 1) }, want: 0x2000},
		{name: "idle keepalive", prep: func(c *Checkpoint) { c.AdvanceIdle(0x5000, false) }, want: 0x5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(0x1000)
			tt.prep(c)
			got := c.Status()
			want := pglogrepl.LSN(tt.want)
			if got.WALWritePosition != want || got.WALFlushPosition != want || got.WALApplyPosition != want {
				t.Errorf("status write %s flush %s apply %s, want all %s", got.WALWritePosition, got.WALFlushPosition, got.WALApplyPosition, want)
			}
			if got.ReplyRequested {
				t.Error("status asks for a reply")
			}
		})
	}
}

func TestAge(t *testing.T) {
	c := New(0x1000)
	if age := c.Age(time.Now()); age != 0 {
		t.Errorf("idle: age %v, want 0", age)
	}
	start := time.Now()
	first := c.Track(0x1100)
	c.Track(0x1200)
	if age := c.Age(start.Add(time.Minute)); age < 59*time.Second || age > time.Minute {
		t.Errorf("waiting a minute: age %v", age)
	}
	c.Ack(first, 1)
	// The position moved: the second transaction waits since then.
	if age := c.Age(time.Now().Add(time.Second)); age > 1100*time.Millisecond {
		t.Errorf("after an advance: age %v, want about 1s", age)
	}
	c.Ack(first+1, 1)
	if age := c.Age(time.Now().Add(time.Hour)); age != 0 {
		t.Errorf("all acknowledged: age %v, want 0", age)
	}
}
