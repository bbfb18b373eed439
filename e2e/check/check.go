package check

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/pgjet/pgjet/shared/jsoncmp"
)

// Report is the outcome of Check. Counts are exact; Problems keeps the first
// maxProblems descriptions.
type Report struct {
	Committed int // changes in the audit
	Delivered int // events read, duplicates included
	// Lost: committed changes without an event.
	Lost int
	// Duplicated: events for a change already delivered (same Nats-Msg-Id, or
	// same commit LSN and index under another id).
	Duplicated int
	// Extra: events without a committed change, e.g. from a rolled-back
	// transaction.
	Extra int
	// OutOfOrder: events that come after a later change of the same table
	// (commit LSN, then index within the transaction).
	OutOfOrder int
	// ValueMismatches: events whose op, before, after, key or unchanged list
	// disagree with what the audit recorded.
	ValueMismatches int
	Problems        []string
	more            int
}

const maxProblems = 100

// OK reports whether every committed change was delivered exactly once, in
// order, with the right values, and nothing else was.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Extra == 0 && r.OutOfOrder == 0 && r.ValueMismatches == 0
}

// String is a one-line summary followed by the first few problems.
func (r Report) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "committed=%d delivered=%d lost=%d duplicated=%d extra=%d out_of_order=%d value_mismatches=%d",
		r.Committed, r.Delivered, r.Lost, r.Duplicated, r.Extra, r.OutOfOrder, r.ValueMismatches)
	const shown = 5
	for i, p := range r.Problems {
		if i == shown {
			fmt.Fprintf(&sb, "\n  ... %d more problems", len(r.Problems)-shown+r.more)
			break
		}
		sb.WriteString("\n  - ")
		sb.WriteString(p)
	}
	return sb.String()
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) >= maxProblems {
		r.more++
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Check compares the audited changes with the events of an output stream
// (in stream order, as Drain returns them). Every event must belong to an
// audited change: drain only the subjects of audited tables.
//
// Events are matched to changes by transaction id and table, in order within
// the transaction (audit id order, event index order); per table rather than
// across the transaction because audit triggers of cascaded changes (foreign
// keys) fire in a different order than the changes were written.
func Check(changes []Change, events []Event) Report {
	r := Report{Committed: len(changes), Delivered: len(events)}
	unique := r.dedupe(events)
	r.checkOrder(unique)

	type groupKey struct {
		xid   uint32
		table string
	}
	var keys []groupKey
	audited := map[groupKey][]*Change{}
	sorted := slices.Clone(changes)
	slices.SortFunc(sorted, func(a, b Change) int { return cmp.Compare(a.ID, b.ID) })
	for i := range sorted {
		c := &sorted[i]
		k := groupKey{uint32(c.Xid), c.Schema + "." + c.Table}
		if audited[k] == nil {
			keys = append(keys, k)
		}
		audited[k] = append(audited[k], c)
	}
	delivered := map[groupKey][]*Event{}
	for _, e := range unique {
		k := groupKey{e.Xid, e.Schema + "." + e.Table}
		if audited[k] == nil && delivered[k] == nil {
			keys = append(keys, k)
		}
		delivered[k] = append(delivered[k], e)
	}
	for _, k := range keys {
		evs := delivered[k]
		// Order problems are counted already; match in the transaction's order.
		slices.SortStableFunc(evs, func(a, b *Event) int { return cmp.Compare(a.Index, b.Index) })
		r.align(audited[k], evs)
	}
	return r
}

// dedupe counts and drops repeated deliveries, keeping the first. A change
// is its source's (by name: a re-sent transaction's id names another
// timeline), commit LSN and index: two slots of one database give the
// changes of a transaction touching tables of both the same positions.
func (r *Report) dedupe(events []Event) []*Event {
	type pos struct {
		source string
		lsn    uint64
		bad    string // an unparsable LSN, compared as written
		index  uint64
	}
	byID := map[string]*Event{}
	byPos := map[pos]*Event{}
	unique := make([]*Event, 0, len(events))
	for i := range events {
		e := &events[i]
		if first, ok := byID[e.MsgID]; ok && e.MsgID != "" {
			r.Duplicated++
			r.problem("duplicate: %s again at %s", describe(first), where(e))
			continue
		}
		p := pos{source: e.Source, index: e.Index}
		if lsn, err := ParseLSN(e.LSN); err == nil {
			p.lsn = lsn
		} else {
			p.bad = e.LSN
		}
		if first, ok := byPos[p]; ok {
			r.Duplicated++
			r.problem("duplicate: %s again at %s under another id %q", describe(first), where(e), e.MsgID)
			continue
		}
		if e.MsgID != "" {
			byID[e.MsgID] = e
		}
		byPos[p] = e
		unique = append(unique, e)
	}
	return unique
}

// checkOrder counts events that go backwards within their table. Each
// inversion counts once: the next event is compared with the one before it.
func (r *Report) checkOrder(events []*Event) {
	type last struct {
		lsn uint64
		e   *Event
	}
	prev := map[string]last{}
	for _, e := range events {
		lsn, err := ParseLSN(e.LSN)
		if err != nil {
			r.ValueMismatches++
			r.problem("bad lsn: %s: %v", describe(e), err)
			continue
		}
		table := e.Schema + "." + e.Table
		if p, ok := prev[table]; ok && (lsn < p.lsn || lsn == p.lsn && e.Index < p.e.Index) {
			r.OutOfOrder++
			r.problem("out of order: %s after %s", describe(e), describe(p.e))
		}
		prev[table] = last{lsn, e}
	}
}

// align pairs a transaction's changes of one table with its events, both in
// order. On a difference it looks ahead at most as far as one side is longer
// than the other: that many events can be extra (or changes lost), so this
// tells a gap from a wrong value and stays linear for equal lengths.
func (r *Report) align(changes []*Change, events []*Event) {
	i, j := 0, 0
	for i < len(changes) && j < len(events) {
		d := diff(changes[i], events[j])
		if d == "" {
			i, j = i+1, j+1
			continue
		}
		if surplus := (len(events) - j) - (len(changes) - i); surplus > 0 {
			if k := slices.IndexFunc(events[j+1:j+1+surplus], func(e *Event) bool { return diff(changes[i], e) == "" }); k >= 0 {
				for _, e := range events[j : j+1+k] {
					r.extra(e)
				}
				j += 1 + k
				continue
			}
		} else if surplus < 0 {
			if k := slices.IndexFunc(changes[i+1:i+1-surplus], func(c *Change) bool { return diff(c, events[j]) == "" }); k >= 0 {
				for _, c := range changes[i : i+1+k] {
					r.lost(c)
				}
				i += 1 + k
				continue
			}
		}
		r.ValueMismatches++
		r.problem("value mismatch: %s (audit id %d): %s", describe(events[j]), changes[i].ID, d)
		i, j = i+1, j+1
	}
	for _, c := range changes[i:] {
		r.lost(c)
	}
	for _, e := range events[j:] {
		r.extra(e)
	}
}

func (r *Report) lost(c *Change) {
	r.Lost++
	row := c.After
	if row == nil {
		row = c.Before
	}
	r.problem("lost: %s %s.%s xid %d (audit id %d) %s", c.Op, c.Schema, c.Table, uint32(c.Xid), c.ID, clip(row))
}

func (r *Report) extra(e *Event) {
	r.Extra++
	r.problem("extra: %s with no committed change", describe(e))
}

func describe(e *Event) string {
	return fmt.Sprintf("%s %s.%s xid %d lsn %s index %d at %s", e.Op, e.Schema, e.Table, e.Xid, e.LSN, e.Index, where(e))
}

func where(e *Event) string {
	if e.MsgID == "" {
		return fmt.Sprintf("seq %d", e.Seq)
	}
	return fmt.Sprintf("seq %d (id %s)", e.Seq, e.MsgID)
}

func clip(b []byte) string {
	const n = 160
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// diff describes how an event differs from the audited change; "" if it
// matches.
func diff(c *Change, e *Event) string {
	if c.Op != e.Op {
		return fmt.Sprintf("op: want %s, got %s", c.Op, e.Op)
	}
	var d differ
	switch c.Op {
	case "insert":
		d.null("before", e.Before)
		if len(e.Unchanged) > 0 {
			d.add("unchanged: an insert has no unchanged columns, got %v", e.Unchanged)
		}
		d.row("after", c.After, e.After, nil)
		d.key(e.Key, c.After)
	case "update":
		skip := d.unchanged(c, e.Unchanged)
		d.row("after", c.After, e.After, skip)
		if !isNull(e.Before) {
			d.subset("before", c.Before, e.Before)
		}
		// Whether the key is the old or the new one when it changed is the
		// envelope's business; it has to be one of them.
		var asNew differ
		asNew.key(e.Key, c.After)
		if len(asNew.probs) > 0 {
			d.key(e.Key, c.Before)
		}
	case "delete":
		d.null("after", e.After)
		if isNull(e.Before) {
			d.add("before: want the old row or key, got null")
		} else {
			d.subset("before", c.Before, e.Before)
		}
		d.key(e.Key, c.Before)
	case "truncate":
		d.null("before", e.Before)
		d.null("after", e.After)
	}
	return strings.Join(d.probs, "; ")
}

type differ struct{ probs []string }

func (d *differ) add(format string, args ...any) {
	d.probs = append(d.probs, fmt.Sprintf(format, args...))
}

func (d *differ) null(label string, got json.RawMessage) {
	if !isNull(got) {
		d.add("%s: want null, got %s", label, clip(got))
	}
}

// row checks that got has exactly want's columns, except those in skip,
// which it must leave out.
func (d *differ) row(label string, want, got []byte, skip map[string]bool) {
	w, g, ok := d.objects(label, want, got)
	if !ok {
		return
	}
	for _, col := range sortedKeys(w) {
		if skip[col] {
			if _, present := g[col]; present {
				d.add("%s.%s: listed as unchanged but present", label, col)
			}
			continue
		}
		d.column(label, col, w[col], g)
	}
	for _, col := range sortedKeys(g) {
		if _, known := w[col]; !known {
			d.add("%s.%s: not a column of the row", label, col)
		}
	}
}

// subset checks the columns got has (an old key holds only key columns).
func (d *differ) subset(label string, want, got []byte) {
	w, g, ok := d.objects(label, want, got)
	if !ok {
		return
	}
	if len(g) == 0 {
		d.add("%s: no columns", label)
	}
	for _, col := range sortedKeys(g) {
		if _, known := w[col]; !known {
			d.add("%s.%s: not a column of the row", label, col)
			continue
		}
		d.column(label, col, w[col], g)
	}
}

func (d *differ) key(got json.RawMessage, row []byte) {
	if !isNull(got) {
		d.subset("key", row, got)
	}
}

func (d *differ) column(label, col string, want json.RawMessage, got map[string]json.RawMessage) {
	g, present := got[col]
	if !present {
		d.add("%s.%s: missing", label, col)
		return
	}
	if eq, why := jsoncmp.Equal(want, g); !eq {
		// jsoncmp names the root "$"; name the column instead.
		why = strings.ReplaceAll(why, "\n", "; ")
		d.add("%s.%s%s", label, col, strings.TrimPrefix(why, "$"))
	}
}

// unchanged checks an update's unchanged-TOAST list: real columns whose value
// the update did not change. It returns them as a set.
func (d *differ) unchanged(c *Change, cols []string) map[string]bool {
	if len(cols) == 0 {
		return nil
	}
	var before, after map[string]json.RawMessage
	if json.Unmarshal(c.Before, &before) != nil || json.Unmarshal(c.After, &after) != nil {
		d.add("audit row of the update is not a pair of objects")
		return nil
	}
	set := map[string]bool{}
	for _, col := range cols {
		set[col] = true
		a, ok := after[col]
		if !ok {
			d.add("unchanged: %s is not a column of the row", col)
			continue
		}
		if eq, _ := jsoncmp.Equal(before[col], a); !eq {
			d.add("unchanged: %s was changed by the update (%s to %s)", col, clip(before[col]), clip(a))
		}
	}
	return set
}

func (d *differ) objects(label string, want, got []byte) (w, g map[string]json.RawMessage, ok bool) {
	if err := json.Unmarshal(want, &w); err != nil || w == nil {
		d.add("%s: audit has no row to compare with (%s)", label, clip(want))
		return nil, nil, false
	}
	if err := json.Unmarshal(got, &g); err != nil || g == nil {
		d.add("%s: want an object, got %s", label, clip(got))
		return nil, nil, false
	}
	return w, g, true
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
