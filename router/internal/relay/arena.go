package relay

// arenaPool keeps the render buffers of finished records for the next
// records. A record's events are rendered into one buffer of about twice its
// raw size; allocated afresh for every record, such buffers were zeroed,
// collected, returned to the OS by the scavenger and faulted in again.
//
// Only the consume goroutine uses it. A buffer comes back only once nothing
// can read it any more: every publish of its record was acknowledged at the
// first attempt, so no message of it is left in the client's hands (a
// publish the relay gave up on may still be retried by the client).
type arenaPool struct {
	free  [][]byte
	bytes int // capacity held in free
}

// maxPooledBytes bounds what the pool holds: the window's records hold up
// to maxWindowBytes of raw records and their events about as much again.
const maxPooledBytes = maxWindowBytes

// get returns an empty buffer with room for n bytes.
func (p *arenaPool) get(n int) []byte {
	for i := len(p.free) - 1; i >= 0; i-- {
		if b := p.free[i]; cap(b) >= n {
			p.free[i] = p.free[len(p.free)-1]
			p.free[len(p.free)-1] = nil
			p.free = p.free[:len(p.free)-1]
			p.bytes -= cap(b)
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// put hands b back for reuse; beyond the bound it is left to the collector.
func (p *arenaPool) put(b []byte) {
	if cap(b) == 0 || p.bytes+cap(b) > maxPooledBytes {
		return
	}
	p.free = append(p.free, b)
	p.bytes += cap(b)
}
