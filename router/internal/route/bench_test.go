package route

import (
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// BenchmarkRoute is the route's share of relaying one event: Selects,
// AppendSubject and Transform.
func BenchmarkRoute(b *testing.B) {
	orders := &wire.Relation{ID: 16400, Schema: "sales", Table: "orders", Columns: []wire.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "total", TypeOID: 1700}}}
	maskDrop := []ColumnRule{{Table: "public.users", Drop: []string{"ssn"}, Mask: map[string]string{"email": "***"}}}
	for _, bc := range []struct {
		name  string
		c     Config
		ev    *envelope.Event
		fresh bool // the relation decoded afresh for every event (equal, not the same)
	}{
		{name: "no rules", c: Config{}, ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow())},
		{name: "no rules, filtered", c: Config{Include: []string{"public.*", "sales.order_*"}, Exclude: []string{"public.secret*"}, Ops: []string{"insert", "update"}},
			ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow())},
		{name: "rules, other table", c: Config{Columns: maskDrop}, ev: event(wire.OpInsert, orders, 0, nil, []wire.Value{txt("1"), txt("9.99")})},
		{name: "drop+mask insert", c: Config{Columns: maskDrop}, ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow())},
		{name: "drop+mask insert, fresh relation", c: Config{Columns: maskDrop}, ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow()), fresh: true},
		{name: "drop+mask update full", c: Config{Columns: maskDrop}, ev: event(wire.OpUpdate, usersRel(), wire.OldFull, usersRow(), usersRow())},
		{name: "drop+mask+hash insert", c: Config{Columns: []ColumnRule{usersRule}, HashKey: testKey}, ev: event(wire.OpInsert, usersRel(), 0, nil, usersRow())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := mustNew(b, bc.c)
			rels := [2]*wire.Relation{bc.ev.Rel, bc.ev.Rel}
			if bc.fresh {
				rels[1] = usersRel()
			}
			var subj []byte
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev := *bc.ev
				ev.Rel = rels[i&1]
				if !r.Selects(&ev) {
					b.Fatal("not selected")
				}
				subj = r.AppendSubject(subj[:0], &ev)
				r.Transform(&ev)
			}
		})
	}
}
