package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/shared/wire"
)

// Chunk is rows of one table in key order, as Postgres's text output
// renders them: the form pgoutput sends them in, so that a read and a
// change of the same row carry the same bytes.
type Chunk struct {
	Table *Table
	Rows  [][]wire.Value
	// More: the table has rows after the last one (the query found one
	// beyond the chunk).
	More bool
	// Bytes of the rows' values: one buffer holds them all.
	Bytes int
}

// Last returns the key of the chunk's last row (nil for none): where the
// next chunk starts.
func (c *Chunk) Last() []wire.Value {
	if len(c.Rows) == 0 {
		return nil
	}
	return c.Table.KeyOf(c.Rows[len(c.Rows)-1])
}

// KeyOf returns the key values of row, a row of t.
func (t *Table) KeyOf(row []wire.Value) []wire.Value {
	if len(t.Key) == 0 {
		return nil
	}
	key := make([]wire.Value, len(t.Key))
	for i, p := range t.Key {
		key[i] = row[p]
	}
	return key
}

// selectSQL selects every published column of t's published rows (its
// row filter), conds added. Partitioned tables are read through their
// root, others alone (ONLY: an inheritance parent's children are
// published, and read, by themselves).
func (t *Table) selectSQL(conds ...string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range t.Rel.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{t.Rel.Columns[i].Name}.Sanitize())
	}
	b.WriteString(" FROM ")
	if !t.Partitioned {
		b.WriteString("ONLY ")
	}
	b.WriteString(t.ident())
	if t.RowFilter != "" {
		conds = append([]string{"(" + t.RowFilter + ")"}, conds...)
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	return b.String()
}

// chunkSQL is the query of a chunk of t: limit rows after key after (nil:
// from the first row) in key order, and one more. The key's values are
// literals cast to their types: COPY takes no parameters.
func (t *Table) chunkSQL(after []wire.Value, limit int) string {
	keys := make([]string, len(t.Key))
	for i, p := range t.Key {
		keys[i] = pgx.Identifier{t.Rel.Columns[p].Name}.Sanitize()
	}
	var conds []string
	if after != nil {
		vals := make([]string, len(after))
		for i, v := range after {
			vals[i] = "CAST(" + dollarQuote(v.Data) + " AS " + t.KeyTypes[i] + ")"
		}
		conds = append(conds, "("+strings.Join(keys, ", ")+") > ("+strings.Join(vals, ", ")+")")
	}
	return t.selectSQL(conds...) + " ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(limit+1)
}

// dollarQuote quotes s as a dollar-quoted literal, which has no escapes
// whatever the server's settings, with a tag s does not hold.
func dollarQuote(s []byte) string {
	tag := "$k$"
	for n := 0; bytes.Contains(s, []byte(tag)); n++ {
		tag = "$k" + strconv.Itoa(n) + "$"
	}
	return tag + string(s) + tag
}

// ReadChunk reads up to limit rows of t after key after (nil: from the
// first row), in key order, on conn, which is in the transaction whose
// snapshot the rows come from. It asks for one row more than limit, to
// learn whether the table goes on. The rows come as COPY's text format:
// many rows a protocol message, the same text values as a query's.
func ReadChunk(ctx context.Context, conn *pgconn.PgConn, t *Table, after []wire.Value, limit int) (*Chunk, error) {
	var buf bytes.Buffer
	if _, err := conn.CopyTo(ctx, &buf, "COPY ("+t.chunkSQL(after, limit)+") TO STDOUT"); err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	c, err := parseCopy(buf.Bytes(), t, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	return c, nil
}

// parseCopy reads the rows of COPY's text format from data, unescaping
// values in place: the rows' values point into data. Past limit rows it
// only notes that there are more.
func parseCopy(data []byte, t *Table, limit int) (*Chunk, error) {
	c := &Chunk{Table: t, Bytes: len(data)}
	ncols := len(t.Rel.Columns)
	nrows := bytes.Count(data, []byte{'\n'})
	if nrows > limit {
		c.More, nrows = true, limit
	}
	slab := make([]wire.Value, nrows*ncols)
	c.Rows = make([][]wire.Value, nrows)
	for r := range nrows {
		end := bytes.IndexByte(data, '\n')
		line := data[:end]
		data = data[end+1:]
		row := slab[r*ncols : (r+1)*ncols : (r+1)*ncols]
		for i := range row {
			var field []byte
			if i < ncols-1 {
				tab := bytes.IndexByte(line, '\t')
				if tab < 0 {
					return nil, fmt.Errorf("COPY row %d has %d columns, want %d", r+1, i+1, ncols)
				}
				field, line = line[:tab], line[tab+1:]
			} else {
				if bytes.IndexByte(line, '\t') >= 0 {
					return nil, fmt.Errorf("COPY row %d has more than %d columns", r+1, ncols)
				}
				field = line
			}
			if len(field) == 2 && field[0] == '\\' && field[1] == 'N' {
				row[i].Kind = wire.KindNull
				continue
			}
			v, err := unescape(field)
			if err != nil {
				return nil, fmt.Errorf("COPY row %d column %d: %w", r+1, i+1, err)
			}
			// Capped: appending to one value cannot spill into the next.
			row[i] = wire.Value{Kind: wire.KindText, Data: v[:len(v):len(v)]}
		}
		c.Rows[r] = row
	}
	return c, nil
}

// unescape undoes COPY TO's text escapes in place: \\ and the control
// characters \b \f \n \r \t \v (COPY TO writes no other sequence).
func unescape(f []byte) ([]byte, error) {
	i := bytes.IndexByte(f, '\\')
	if i < 0 {
		return f, nil
	}
	out := f[:i]
	for ; i < len(f); i++ {
		ch := f[i]
		if ch != '\\' {
			out = append(out, ch)
			continue
		}
		i++
		if i == len(f) {
			return nil, errors.New("a value ends in a lone backslash")
		}
		switch f[i] {
		case '\\':
			ch = '\\'
		case 'b':
			ch = '\b'
		case 'f':
			ch = '\f'
		case 'n':
			ch = '\n'
		case 'r':
			ch = '\r'
		case 't':
			ch = '\t'
		case 'v':
			ch = '\v'
		default:
			return nil, fmt.Errorf("unexpected escape \\%c", f[i])
		}
		out = append(out, ch)
	}
	return out, nil
}

// cursorName is the cursor a table without a key is read through.
const cursorName = "pgjet_snapshot"

// OpenScan declares a cursor over all of t's rows (no order) on conn, in
// its transaction: how an initial snapshot reads a table without a key.
func OpenScan(ctx context.Context, conn *pgconn.PgConn, t *Table) error {
	_, err := conn.Exec(ctx, "DECLARE "+cursorName+" SCROLL CURSOR FOR "+t.selectSQL()).ReadAll()
	if err != nil {
		return fmt.Errorf("read %s: %w", t, err)
	}
	return nil
}

// ScanChunk reads the next up to limit rows of the cursor OpenScan
// declared (one more, to learn whether it goes on; that one is read again
// next time), and closes the cursor at its end.
func ScanChunk(ctx context.Context, conn *pgconn.PgConn, t *Table, limit int) (*Chunk, error) {
	c, err := readRows(conn.ExecParams(ctx, "FETCH FORWARD "+strconv.Itoa(limit+1)+" FROM "+cursorName, nil, nil, nil, nil), t, limit)
	if err != nil {
		return nil, err
	}
	if c.More {
		_, err = conn.Exec(ctx, "MOVE BACKWARD 1 FROM "+cursorName).ReadAll()
	} else {
		_, err = conn.Exec(ctx, "CLOSE "+cursorName).ReadAll()
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	return c, nil
}

// readRows reads the result rr of a query of t's rows: up to limit rows,
// and whether there were more.
func readRows(rr *pgconn.ResultReader, t *Table, limit int) (*Chunk, error) {
	c := &Chunk{Table: t}
	ncols := len(t.Rel.Columns)
	// Values of many rows share allocations: one slab of values, and one
	// buffer of bytes grown as rows come (the rows point into it only once
	// it stops moving: offsets first, slices at the end). Not nil even
	// when every value is empty: an empty text value is not a missing one.
	buf := make([]byte, 0, 4096)
	type span struct{ from, to int }
	var spans []span
	var kinds []byte
	n := 0
	for rr.NextRow() {
		if n == limit {
			c.More = true
			continue // drain: the extra row only says the table goes on
		}
		n++
		vals := rr.Values()
		if len(vals) != ncols {
			rr.Close()
			return nil, fmt.Errorf("read %s: %d columns, want %d", t, len(vals), ncols)
		}
		for _, v := range vals {
			if v == nil {
				kinds = append(kinds, wire.KindNull)
				spans = append(spans, span{})
				continue
			}
			kinds = append(kinds, wire.KindText)
			spans = append(spans, span{len(buf), len(buf) + len(v)})
			buf = append(buf, v...)
		}
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	slab := make([]wire.Value, len(spans))
	for i, s := range spans {
		slab[i].Kind = kinds[i]
		if kinds[i] == wire.KindText {
			slab[i].Data = buf[s.from:s.to:s.to]
		}
	}
	c.Rows = make([][]wire.Value, n)
	for i := range c.Rows {
		c.Rows[i] = slab[i*ncols : (i+1)*ncols : (i+1)*ncols]
	}
	c.Bytes = len(buf)
	return c, nil
}
