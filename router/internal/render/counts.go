package render

import (
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// Ops names what a route publishes, by the index Op returns: the change
// operations, then transaction, relation, tombstone and transaction group
// messages.
var Ops = [NumOps]string{"insert", "update", "delete", "truncate", "message", "begin", "commit", "relation", "tombstone", "group"}

const (
	opBegin = int(wire.OpMessage) + iota
	opCommit
	opRelation
	opTombstone
	opGroup
	// NumOps is the number of Ops.
	NumOps
)

// Op is m's index in Ops; dead letters count as the event they stand for.
func (m *Msg) Op() int {
	switch m.Kind {
	case Group:
		return opGroup
	case Tombstone:
		return opTombstone
	}
	if m.Event.Kind == envelope.KindChange && m.Event.Change == nil {
		return opGroup // a raw record's dead letter: no event (not counted)
	}
	switch m.Event.Kind {
	case envelope.KindBegin:
		return opBegin
	case envelope.KindCommit:
		return opCommit
	case envelope.KindRelation:
		return opRelation
	}
	if op := int(m.Event.Change.Op); op >= int(wire.OpInsert) && op <= int(wire.OpMessage) {
		return op - int(wire.OpInsert)
	}
	return opGroup // no other kind of message exists
}
