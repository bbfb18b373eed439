package route

import (
	"fmt"
	"hash/fnv"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// Partitioned routes: N routers share one output, each publishing the
// events whose partition key hashes to its share i of N. The key is the
// schema, the table and the row's replica identity values (as Postgres sent
// them, before any column rule), so every event of one row goes through
// one router and keeps its order; an update that changes the key counts
// under its old key, as its event's key does. Events without a row key (a
// truncate, a table without replica identity) go by schema and table, and
// logical decoding messages by their prefix.

// partitionHash is the event's partition key, hashed (FNV-1a, 64 bits).
func partitionHash(ev *envelope.Event) uint64 {
	h := fnv.New64a()
	c := ev.Change
	if c.Op == wire.OpMessage {
		h.Write([]byte{'m', 0})
		h.Write([]byte(c.Prefix))
		return h.Sum64()
	}
	rel := ev.Rel
	h.Write([]byte(rel.Schema))
	h.Write([]byte{0})
	h.Write([]byte(rel.Table))
	var tuple []wire.Value
	switch c.Op {
	case wire.OpInsert, wire.OpRead:
		tuple = c.New
	case wire.OpUpdate:
		tuple = c.New
		if len(c.Old) > 0 {
			tuple = c.Old
		}
	case wire.OpDelete:
		tuple = c.Old
	}
	for i := range rel.Columns {
		if !rel.Columns[i].Key || i >= len(tuple) {
			continue
		}
		// Kind and length first: no two keys write the same bytes.
		v := tuple[i]
		h.Write([]byte{0, v.Kind, byte(len(v.Data) >> 24), byte(len(v.Data) >> 16), byte(len(v.Data) >> 8), byte(len(v.Data))})
		h.Write(v.Data)
	}
	return h.Sum64()
}

// Partition says which share of a partitioned route this is: "i/N", or
// "" for a route that publishes all its events.
func (r *Route) Partition() string {
	if r.parts <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", r.part, r.parts)
}

func (r *Route) inPartition(ev *envelope.Event) bool {
	return r.parts <= 1 || partitionHash(ev)%uint64(r.parts) == uint64(r.part)
}
