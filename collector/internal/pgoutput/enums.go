package pgoutput

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// The raw record carries an enum's labels (wire.TypeInfo.Labels), read
// with the relation. ALTER TYPE ... ADD VALUE makes Postgres send no new
// relation message, so a value can arrive that is not among the labels a
// relation carries: the collector then reads the type again and describes
// the relation anew, so that every record's labels hold its values.

// enumColumn is a column of an enum, or of an array of one.
type enumColumn struct {
	index  int
	oid    uint32
	array  bool
	labels map[string]struct{}
}

// enumColumns returns r's enum columns, nil if it has none.
func enumColumns(r *wire.Relation) []enumColumn {
	var cols []enumColumn
	for i := range r.Columns {
		c := &r.Columns[i]
		if c.Type.Labels == nil || c.Type.Kind != 'e' && c.Type.ElemKind != 'e' {
			continue
		}
		set := make(map[string]struct{}, len(c.Type.Labels))
		for _, l := range c.Type.Labels {
			set[l] = struct{}{}
		}
		cols = append(cols, enumColumn{index: i, oid: c.TypeOID, array: c.Type.Kind != 'e', labels: set})
	}
	return cols
}

// known reports whether the value of c in tuple is among c's labels, or is
// not a label at all (NULL, unchanged TOAST, binary arrays).
func (c *enumColumn) known(tuple []wire.Value, scratch *[]pgtype.Text) bool {
	if c.index >= len(tuple) {
		return true
	}
	v := tuple[c.index]
	switch {
	case v.Kind != wire.KindText && (c.array || v.Kind != wire.KindBinary):
		return true
	case !c.array:
		_, ok := c.labels[string(v.Data)]
		return ok
	}
	*scratch = (*scratch)[:0]
	if err := arrayMap.Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, v.Data, scratch); err != nil {
		return true // not for the collector to judge: the router reports it
	}
	for _, e := range *scratch {
		if _, ok := c.labels[e.String]; e.Valid && !ok {
			return false
		}
	}
	return true
}

// arrayMap parses arrays of enums: their text form is that of text arrays.
var arrayMap = pgtype.NewMap()

// checkLabels returns r, or r described again with its enums' labels read
// now when a value in old or new is not among those it carries.
func (d *Decoder) checkLabels(ctx context.Context, r *wire.Relation, cols []enumColumn, old, new []wire.Value) (*wire.Relation, error) {
	var stale []uint32
	for i := range cols {
		c := &cols[i]
		if (!c.known(old, &d.elems) || !c.known(new, &d.elems)) && !slices.Contains(stale, c.oid) {
			stale = append(stale, c.oid)
		}
	}
	if stale == nil {
		return r, nil
	}
	fresh := *r
	fresh.Columns = slices.Clone(r.Columns)
	for _, oid := range stale {
		t, err := d.typeInfo(ctx, oid, true)
		if err != nil {
			return nil, err
		}
		for i := range fresh.Columns {
			if fresh.Columns[i].TypeOID == oid {
				fresh.Columns[i].Type = t.Info
			}
		}
	}
	d.setRelation(&fresh)
	// A value the type does not list even now (a label renamed since the
	// change: decoding sees the catalog of its time) is not looked up again
	// for every change.
	checked := d.enums[&fresh][:0]
	for _, c := range d.enums[&fresh] {
		if c.known(old, &d.elems) && c.known(new, &d.elems) {
			checked = append(checked, c)
		}
	}
	if len(checked) == 0 {
		delete(d.enums, &fresh)
	} else {
		d.enums[&fresh] = checked
	}
	return &fresh, nil
}
