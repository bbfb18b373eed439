package relay

import (
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/router/internal/render"
)

// batch is a raw record's rendered messages and the NATS messages that
// carry them.
type batch struct {
	render.Batch
	msgs []nats.Msg
}

// wrap makes the NATS messages of the rendered ones.
func (b *batch) wrap() {
	clear(b.msgs)
	b.msgs = b.msgs[:0]
	for i := range b.Msgs {
		m := &b.Msgs[i]
		b.msgs = append(b.msgs, nats.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data})
	}
}

// batchPool keeps the batches of finished records for the next records: a
// record's messages are rendered into one buffer of about twice its raw
// size; allocated afresh for every record, such buffers were zeroed,
// collected, returned to the OS by the scavenger and faulted in again.
//
// Only the consume goroutine uses it. A batch comes back only once nothing
// can read it any more: every publish of its record was acknowledged at the
// first attempt, so no message of it is left in the client's hands (a
// publish the relay gave up on may still be retried by the client).
type batchPool struct {
	free  []*batch
	bytes int // buffer capacity held in free
}

// maxPooledBytes bounds what the pool holds: the window's records hold up
// to maxWindowBytes of raw records and their events about as much again.
const maxPooledBytes = maxWindowBytes

func (p *batchPool) get() *batch {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.bytes -= b.Size()
		return b
	}
	return &batch{}
}

// put hands b back for reuse; beyond the bound it is left to the collector.
func (p *batchPool) put(b *batch) {
	if p.bytes+b.Size() > maxPooledBytes {
		return
	}
	p.free = append(p.free, b)
	p.bytes += b.Size()
}
