package envelope

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// Kind is what an event says.
type Kind uint8

const (
	// KindChange is a row change, a truncate or a logical decoding message.
	KindChange Kind = iota
	// KindBegin opens a transaction's events on a route.
	KindBegin
	// KindCommit closes them, with their count.
	KindCommit
	// KindRelation describes a table's columns, before the route's first
	// event of it and whenever they change.
	KindRelation
)

// TableCount is how many events of one table a transaction had.
type TableCount struct {
	Schema, Table string
	Count         int
}

// checkMeta reports what makes a begin, commit or relation event
// impossible to render.
func checkMeta(e *Event) error {
	if e.Source == nil || e.Tx == nil {
		return errors.New("render transaction or relation event: no source or transaction")
	}
	if e.Kind == KindRelation && e.Rel == nil {
		return errors.New("render relation event: no relation")
	}
	if e.Kind > KindRelation {
		return fmt.Errorf("render event: unknown kind %d", e.Kind)
	}
	return nil
}

// appendMeta renders a transaction's begin and commit events,
//
//	{"op":"begin","source":"app","lsn":"0/16B3748","xid":734,"commit_time":"..."}
//	{"op":"commit",...,"events":3,"tables":[{"schema":"public","table":"users","events":3}]}
//
// and relation events,
//
//	{"op":"relation","source":"app","schema":"public","table":"users","lsn":...,"xid":...,
//	 "commit_time":...,"replica_identity":"default","columns":[{"name":"id","type":"int4",
//	 "type_oid":23,"type_mod":-1,"key":true},...]}
//
// lsn, xid and commit_time are those of the transaction (for a relation
// event, of the change it precedes).
func (n *Native) appendMeta(b []byte, e *Event) ([]byte, error) {
	if err := checkMeta(e); err != nil {
		return b, err
	}
	b = append(b, `{"op":"`...)
	switch e.Kind {
	case KindBegin:
		b = append(b, "begin"...)
	case KindCommit:
		b = append(b, "commit"...)
	case KindRelation:
		b = append(b, "relation"...)
	}
	b = n.appendOrigin(b, e, e.Kind == KindRelation)
	switch e.Kind {
	case KindCommit:
		b = append(b, `,"events":`...)
		b = strconv.AppendInt(b, int64(e.Count), 10)
		b = append(b, `,"tables":[`...)
		for i, t := range e.Tables {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"schema":`...)
			b = value.AppendString(b, t.Schema)
			b = append(b, `,"table":`...)
			b = value.AppendString(b, t.Table)
			b = append(b, `,"events":`...)
			b = strconv.AppendInt(b, int64(t.Count), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	case KindRelation:
		b = appendRelation(b, e.Rel)
	}
	return append(b, '}'), nil
}

// appendRelation appends a relation's replica identity and columns.
func appendRelation(b []byte, rel *wire.Relation) []byte {
	b = append(b, `,"replica_identity":`...)
	b = value.AppendString(b, ReplicaIdentity(rel.ReplicaIdentity))
	b = append(b, `,"columns":[`...)
	for i := range rel.Columns {
		c := &rel.Columns[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = value.AppendString(b, c.Name)
		b = append(b, `,"type":`...)
		b = value.AppendString(b, value.TypeName(c))
		b = append(b, `,"type_oid":`...)
		b = strconv.AppendUint(b, uint64(c.TypeOID), 10)
		b = append(b, `,"type_mod":`...)
		b = strconv.AppendInt(b, int64(c.TypeMod), 10)
		b = append(b, `,"key":`...)
		b = strconv.AppendBool(b, c.Key)
		b = append(b, '}')
	}
	return append(b, ']')
}

// ReplicaIdentity names a relation's replica identity as Postgres's ALTER
// TABLE does.
func ReplicaIdentity(ri byte) string {
	switch ri {
	case 'd':
		return "default"
	case 'n':
		return "nothing"
	case 'f':
		return "full"
	case 'i':
		return "index"
	}
	return fmt.Sprintf("unknown (%q)", ri)
}

// metaKinds lists, by envelope, the transaction and relation events it
// renders.
var metaKinds = map[string][]Kind{
	"native":      {KindBegin, KindCommit, KindRelation},
	"cloudevents": {KindBegin, KindCommit, KindRelation},
	"debezium":    {KindBegin, KindCommit},
}

// Renders reports whether the envelope called name renders events of kind
// k (changes: all of them).
func Renders(name string, k Kind) bool {
	return k == KindChange || slices.Contains(metaKinds[name], k)
}

// appendOrigin appends, after the op, the fields every native document
// shares: source, schema and table (withTable), lsn, xid and commit_time.
func (n *Native) appendOrigin(b []byte, e *Event, withTable bool) []byte {
	b = append(b, `","source":`...)
	b = value.AppendString(b, e.Source.Name)
	if withTable {
		b = append(b, `,"schema":`...)
		b = value.AppendString(b, e.Rel.Schema)
		b = append(b, `,"table":`...)
		b = value.AppendString(b, e.Rel.Table)
	}
	b = append(b, `,"lsn":"`...)
	b = wire.LSN(e.Tx.CommitLSN).Append(b)
	b = append(b, `","xid":`...)
	b = strconv.AppendUint(b, uint64(e.Tx.Xid), 10)
	b = append(b, `,"commit_time":"`...)
	b = append(b, n.commitTime(e.Tx.CommitTime)...)
	return append(b, '"')
}
