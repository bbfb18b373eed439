package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/shared/jsoncmp"
)

// SplitReads separates snapshot reads (op read) from the changes: Check
// compares changes with the audit; reads are rows as a snapshot found them,
// which no audit records, and State checks them with the changes.
func SplitReads(events []Event) (changes, reads []Event) {
	for _, e := range events {
		if e.Op == "read" {
			reads = append(reads, e)
		} else {
			changes = append(changes, e)
		}
	}
	return changes, reads
}

// State is what a consumer that keeps the last event per key holds: by
// table ("schema.table"), then by key (canonical JSON), the row.
type State map[string]map[string]json.RawMessage

// Rebuild applies events, in stream order, as such a consumer does: a
// read, an insert or an update sets the row under its key (an update that
// changes the key moves it; columns an update left unchanged (TOAST) keep
// their value), a delete removes it, a truncate empties the table.
func Rebuild(events []Event) (State, error) {
	s := State{}
	for i := range events {
		e := &events[i]
		table := e.Schema + "." + e.Table
		rows := s[table]
		if rows == nil {
			rows = map[string]json.RawMessage{}
			s[table] = rows
		}
		switch e.Op {
		case "truncate":
			clear(rows)
		case "read", "insert", "update":
			key, err := canonical(e.Key)
			if err != nil {
				return nil, fmt.Errorf("%s: key: %w", describe(e), err)
			}
			row, err := merge(rows[key], e.After, e.Unchanged)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", describe(e), err)
			}
			delete(rows, key)
			newKey, err := keyOf(e.Key, row)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", describe(e), err)
			}
			rows[newKey] = row
		case "delete":
			key, err := canonical(e.Key)
			if err != nil {
				return nil, fmt.Errorf("%s: key: %w", describe(e), err)
			}
			delete(rows, key)
		}
	}
	return s, nil
}

// merge is after with prev's values for the unchanged columns.
func merge(prev, after json.RawMessage, unchanged []string) (json.RawMessage, error) {
	if len(unchanged) == 0 {
		return after, nil
	}
	var a, p map[string]json.RawMessage
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	if prev != nil {
		if err := json.Unmarshal(prev, &p); err != nil {
			return nil, err
		}
	}
	for _, c := range unchanged {
		if v, ok := p[c]; ok {
			a[c] = v
		}
	}
	return json.Marshal(a)
}

// keyOf is the canonical key of row: the members of row named by key's.
func keyOf(key, row json.RawMessage) (string, error) {
	var k, r map[string]json.RawMessage
	if err := json.Unmarshal(key, &k); err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	if err := json.Unmarshal(row, &r); err != nil {
		return "", fmt.Errorf("row: %w", err)
	}
	for name := range k {
		v, ok := r[name]
		if !ok {
			return "", fmt.Errorf("row lacks key column %s", name)
		}
		k[name] = v
	}
	b, err := json.Marshal(k)
	if err != nil {
		return "", err
	}
	return canonical(b)
}

// canonical is JSON with object members sorted and numbers as written.
func canonical(b json.RawMessage) (string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	out, err := json.Marshal(v)
	return string(out), err
}

// TableState reads table ("schema.table") as State holds it: its rows as
// to_jsonb renders them, by the canonical JSON of the key columns.
func TableState(ctx context.Context, q Querier, table string, keyCols ...string) (map[string]json.RawMessage, error) {
	schema, name, _ := strings.Cut(table, ".")
	ident := pgx.Identifier{schema, name}.Sanitize()
	var parts []string
	for _, c := range keyCols {
		parts = append(parts, fmt.Sprintf("'%s', t.%s", strings.ReplaceAll(c, "'", "''"), pgx.Identifier{c}.Sanitize()))
	}
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT jsonb_build_object(%s)::text, to_jsonb(t)::text FROM %s t", strings.Join(parts, ", "), ident))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var key, row string
		if err := rows.Scan(&key, &row); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		k, err := canonical(json.RawMessage(key))
		if err != nil {
			return nil, err
		}
		out[k] = json.RawMessage(row)
	}
	return out, rows.Err()
}

// CompareState lists how got (rebuilt from events) differs from want (the
// table): rows missing, extra, or with other values (jsoncmp's rules); at
// most max lines, then a count of the rest. Empty: equal.
func CompareState(want, got map[string]json.RawMessage, max int) []string {
	var d []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			d = append(d, fmt.Sprintf("key %s: in the table, not in the output: %s", k, clip(want[k])))
			continue
		}
		if eq, why := jsoncmp.Equal(want[k], g); !eq {
			d = append(d, fmt.Sprintf("key %s: %s", k, strings.ReplaceAll(why, "\n", "; ")))
		}
	}
	var extra []string
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		d = append(d, fmt.Sprintf("key %s: in the output, not in the table: %s", k, clip(got[k])))
	}
	if len(d) > max {
		d = append(d[:max], fmt.Sprintf("... %d more", len(d)-max))
	}
	return d
}
