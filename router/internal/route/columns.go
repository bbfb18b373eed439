package route

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// ColumnRule transforms columns of the tables its glob matches.
type ColumnRule struct {
	Table string            // glob "schema.table"
	Drop  []string          // columns removed from every tuple and the key
	Mask  map[string]string // column -> fixed replacement text
	Hash  []string          // columns replaced by hex(HMAC-SHA256(HashKey, value bytes))
}

// minHashKey is the shortest hash key accepted: a short key makes the hashes
// of low-entropy values (emails, phone numbers) easy to brute-force.
const minHashKey = 16

// textOID is Postgres's text type: what masked and hashed columns become,
// so that the router renders the replacement as a string.
const textOID = 25

type action uint8

const (
	keep action = iota
	drop
	mask
	hashed
)

func (a action) String() string {
	switch a {
	case drop:
		return "drop"
	case mask:
		return "mask"
	case hashed:
		return "hash"
	}
	return "keep"
}

// rule is a parsed ColumnRule.
type rule struct {
	table tableGlob
	cols  []ruleCol
}

type ruleCol struct {
	name string
	act  action
	mask []byte // shared by every event masked: never written to
}

var errBadRule = errors.New("bad column rule")

// parseRule checks c, reporting each bad field under field (e.g.
// "columns[1]"); it returns errBadRule when one was reported.
func parseRule(c *ColumnRule, field string, fail func(string, error)) (*rule, error) {
	bad := false
	report := func(f string, err error) {
		bad = true
		fail(f, err)
	}
	rl := &rule{}
	var err error
	if rl.table, err = parseTableGlob(c.Table); err != nil {
		report(field+".table", err)
	}
	if len(c.Drop) == 0 && len(c.Mask) == 0 && len(c.Hash) == 0 {
		report(field, errors.New("column rule names no columns: give drop, mask or hash"))
	}
	seen := make(map[string]action)
	add := func(f, name string, act action, repl string) {
		if name == "" {
			report(f, errors.New("empty column name"))
			return
		}
		if prev, ok := seen[name]; ok {
			if prev != act {
				report(f, fmt.Errorf("column %q is both %s and %s by this rule", name, prev.past(), act.past()))
			}
			return
		}
		seen[name] = act
		rl.cols = append(rl.cols, ruleCol{name: name, act: act, mask: []byte(repl)})
	}
	for i, name := range c.Drop {
		add(fmt.Sprintf("%s.drop[%d]", field, i), name, drop, "")
	}
	names := make([]string, 0, len(c.Mask))
	for name := range c.Mask {
		names = append(names, name)
	}
	slices.Sort(names) // errors in a stable order
	for _, name := range names {
		f := field + ".mask." + name
		if !utf8.ValidString(c.Mask[name]) {
			report(f, errors.New("replacement text is not valid UTF-8"))
			continue
		}
		add(f, name, mask, c.Mask[name])
	}
	for i, name := range c.Hash {
		add(fmt.Sprintf("%s.hash[%d]", field, i), name, hashed, "")
	}
	if bad {
		return nil, errBadRule
	}
	return rl, nil
}

func (a action) past() string {
	if a == drop {
		return "dropped"
	}
	return a.String() + "ed"
}

// transform is the column plan of one version of a table.
type transform struct {
	src wire.Relation // the relation it was made for, its own copy of the columns
	rel *wire.Relation
	// acts[i] is what happens to source column i.
	acts []ruleCol
	// identity: no rule names a column the table has.
	identity bool
}

// same reports whether rel is the relation t was made for. Relations are
// decoded afresh for every raw record, so pointers say nothing.
func (t *transform) same(rel *wire.Relation) bool {
	return rel.ID == t.src.ID && rel.ReplicaIdentity == t.src.ReplicaIdentity &&
		rel.Schema == t.src.Schema && rel.Table == t.src.Table && wire.EqualColumns(rel.Columns, t.src.Columns)
}

// maxVersions bounds the transforms kept per table name.
const maxVersions = 4

// transform returns the cached transform of rel, nil if there is none.
func (st *tableState) transform(rel *wire.Relation) *transform {
	for i, t := range st.xfs {
		if t.same(rel) {
			if i > 0 {
				copy(st.xfs[1:i+1], st.xfs[:i])
				st.xfs[0] = t
			}
			return t
		}
	}
	return nil
}

func (st *tableState) remember(t *transform) {
	if len(st.xfs) < maxVersions {
		st.xfs = append(st.xfs, nil)
	}
	copy(st.xfs[1:], st.xfs)
	st.xfs[0] = t
}

type warnKey struct{ schema, table, column string }

// plan makes the transform of rel, to which rules apply.
func (r *Route) plan(rel *wire.Relation, rules []*rule) *transform {
	t := &transform{
		src:      wire.Relation{ID: rel.ID, Schema: rel.Schema, Table: rel.Table, ReplicaIdentity: rel.ReplicaIdentity, Columns: slices.Clone(rel.Columns)},
		acts:     make([]ruleCol, len(rel.Columns)),
		identity: true,
	}
	has := make(map[string]int, len(rel.Columns))
	for i := range rel.Columns {
		has[rel.Columns[i].Name] = i
	}
	decided := make([]bool, len(rel.Columns))
	for _, rl := range rules {
		for _, rc := range rl.cols {
			i, ok := has[rc.name]
			if !ok {
				r.warnMissing(rel, rc.name)
				continue
			}
			// The first rule naming a column decides.
			if !decided[i] {
				decided[i] = true
				t.acts[i] = rc
				t.identity = false
			}
		}
	}
	if t.identity {
		t.rel = rel
		return t
	}
	out := &wire.Relation{ID: rel.ID, Schema: rel.Schema, Table: rel.Table, ReplicaIdentity: rel.ReplicaIdentity, Catalog: rel.Catalog}
	for i, col := range rel.Columns {
		switch t.acts[i].act {
		case drop:
			continue
		case mask, hashed:
			// Text now: a default of the column's own type no longer fits.
			col = wire.Column{Name: col.Name, TypeOID: textOID, TypeMod: -1, Key: col.Key, NotNull: col.NotNull, PrimaryKey: col.PrimaryKey}
		}
		out.Columns = append(out.Columns, col)
	}
	t.rel = out
	return t
}

func (r *Route) warnMissing(rel *wire.Relation, column string) {
	if r.warn == nil {
		return
	}
	k := warnKey{rel.Schema, rel.Table, column}
	if _, done := r.warned[k]; done {
		return
	}
	if r.warned == nil {
		r.warned = make(map[warnKey]struct{})
	}
	r.warned[k] = struct{}{}
	r.warn("column rule names a column the table does not have", "route", r.name, "table", rel.Schema+"."+rel.Table, "column", column)
}

// Transform applies the route's column rules to ev: when one matches ev.Rel's
// table, ev.Rel and ev.Change become copies with the columns dropped, masked
// or hashed; otherwise ev is left as it is. The copies share nothing
// writable with the originals and stay valid after Transform returns.
// Truncates and messages are left as they are; snapshot reads are
// transformed as inserts are.
func (r *Route) Transform(ev *envelope.Event) {
	if len(r.rules) == 0 || ev.Rel == nil {
		return
	}
	if ev.Kind == envelope.KindRelation {
		ev.Rel = r.relation(ev.Rel)
		return
	}
	c := ev.Change
	if c.Op != wire.OpInsert && c.Op != wire.OpUpdate && c.Op != wire.OpDelete && c.Op != wire.OpRead {
		return
	}
	st := r.table(ev.Rel)
	if len(st.rules) == 0 {
		return
	}
	t := st.transform(ev.Rel)
	if t == nil {
		t = r.plan(ev.Rel, st.rules)
		st.remember(t)
	}
	if t.identity {
		return
	}

	nNew, hNew := t.count(c.New)
	nOld, hOld := t.count(c.Old)
	vals := make([]wire.Value, nNew+nOld)
	var hexes []byte
	if h := hNew + hOld; h > 0 {
		// Exactly the size needed: it never grows, so the values pointing
		// into it stay put.
		hexes = make([]byte, 0, h*hex.EncodedLen(32))
	}
	nc := new(wire.Change)
	*nc = *c
	if c.New != nil {
		nc.New, hexes = r.apply(t, c.New, vals[:nNew:nNew], hexes)
	}
	if c.Old != nil {
		nc.Old, _ = r.apply(t, c.Old, vals[nNew:], hexes)
	}
	ev.Change, ev.Rel = nc, t.rel
}

// count returns how many values of tuple t keeps and how many it hashes.
func (t *transform) count(tuple []wire.Value) (kept, hashes int) {
	for i := range tuple {
		if i >= len(t.acts) {
			break
		}
		switch t.acts[i].act {
		case drop:
			continue
		case hashed:
			if hasData(tuple[i]) {
				hashes++
			}
		}
		kept++
	}
	return kept, hashes
}

// hasData: NULL and unchanged TOAST stay what they are.
func hasData(v wire.Value) bool {
	return v.Kind != wire.KindNull && v.Kind != wire.KindUnchanged
}

// apply writes tuple transformed into dst, which has room for exactly the
// values kept, and the hashes into hexes.
func (r *Route) apply(t *transform, tuple, dst []wire.Value, hexes []byte) ([]wire.Value, []byte) {
	j := 0
	for i, v := range tuple {
		// Values past the relation's columns make the event unrenderable
		// anyway; left out, they cannot leak.
		if i >= len(t.acts) {
			break
		}
		a := &t.acts[i]
		switch a.act {
		case drop:
			continue
		case keep:
			dst[j] = v
		case mask:
			if hasData(v) {
				dst[j] = wire.Value{Kind: wire.KindText, Data: a.mask}
			} else {
				dst[j] = wire.Value{Kind: v.Kind}
			}
		case hashed:
			if hasData(v) {
				r.mac.Reset()
				r.mac.Write(v.Data)
				r.sum = r.mac.Sum(r.sum[:0])
				start := len(hexes)
				hexes = hex.AppendEncode(hexes, r.sum)
				dst[j] = wire.Value{Kind: wire.KindText, Data: hexes[start:len(hexes):len(hexes)]}
			} else {
				dst[j] = wire.Value{Kind: v.Kind}
			}
		}
		j++
	}
	return dst[:j:j], hexes
}

// relation is rel as the route's events show it: with the column rules
// applied (dropped columns gone, masked and hashed ones text).
func (r *Route) relation(rel *wire.Relation) *wire.Relation {
	st := r.table(rel)
	if len(st.rules) == 0 {
		return rel
	}
	t := st.transform(rel)
	if t == nil {
		t = r.plan(rel, st.rules)
		st.remember(t)
	}
	if t.identity {
		return rel
	}
	return t.rel
}
