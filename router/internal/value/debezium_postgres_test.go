package value

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/jsoncmp"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// dbzCase is one value of one type: expect is SQL over the column v that
// computes the expected Debezium JSON (or its raw parts, which post turns
// into JSON) independently of the encoder: from Postgres's own date
// arithmetic, extract(), encode() and numeric functions.
type dbzCase struct {
	name, typ, literal, expect string
	post                       func(t *testing.T, s string) string // nil: expect is the JSON
	opts                       DebeziumOptions
	wantErr                    bool
}

var (
	optString   = DebeziumOptions{Decimal: DecimalString, Interval: IntervalString}
	optDouble   = DebeziumOptions{Decimal: DecimalDouble}
	optHex      = DebeziumOptions{Binary: BinaryHex}
	optB64      = DebeziumOptions{Binary: BinaryBase64}
	optURL      = DebeziumOptions{Binary: BinaryBase64URLSafe}
	optConnect  = DebeziumOptions{Time: TimeConnect}
	optMicros   = DebeziumOptions{Time: TimeAdaptiveMicroseconds}
	floatExpect = `CASE WHEN v::text IN ('NaN', 'Infinity', '-Infinity') THEN to_json(v::text)::text ELSE v::text END`
	textExpect  = `to_json(v::text)::text`
	// Epoch microseconds and milliseconds (floored, as Java's Instant
	// does) of a timestamp, and days of a date.
	microsExpect = `(extract(epoch from v) * 1000000)::bigint::text`
	millisExpect = `floor(extract(epoch from v) * 1000)::bigint::text`
	daysExpect   = `(v - date '1970-01-01')::text`
	// ZonedTimestamp: UTC, Java's year form, six fractional digits.
	zonedExpect = `CASE WHEN NOT isfinite(v) THEN to_json(v::text)::text ELSE to_json(
		CASE WHEN extract(year from v AT TIME ZONE 'UTC') > 9999 THEN '+' || extract(year from v AT TIME ZONE 'UTC')::text
		     WHEN extract(year from v AT TIME ZONE 'UTC') < 0 THEN '-' || lpad((-(extract(year from v AT TIME ZONE 'UTC') + 1))::text, 4, '0')
		     ELSE lpad(extract(year from v AT TIME ZONE 'UTC')::text, 4, '0') END
		|| to_char(v AT TIME ZONE 'UTC', '-MM-DD"T"HH24:MI:SS.US"Z"'))::text END`
	// MicroDuration: Debezium's arithmetic, redone in float8 (IEEE doubles
	// rounded at every step, like Java's).
	durationExpect = `(SELECT trunc(((((days * 24 + h) * 60 + mi) * 60 + sec) * 1000000::float8))::bigint::text FROM (
		SELECT (y * 12 + mo)::float8 * (365.25 / 12)::float8 + d::float8 AS days, h::float8 AS h, mi::float8 AS mi,
		       trunc(s)::float8 + ((s - trunc(s)) * 1000000)::float8 / 1000000::float8 AS sec
		FROM (SELECT extract(year from v) y, extract(month from v) mo, extract(day from v) d,
		             extract(hour from v) h, extract(minute from v) mi, extract(second from v) s) f) g)`
	intervalStringExpect = `to_json('P' || extract(year from v) || 'Y' || extract(month from v) || 'M' || extract(day from v) || 'DT'
		|| extract(hour from v) || 'H' || extract(minute from v) || 'M' || trim_scale(extract(second from v)) || 'S')::text`
	// A numeric's unscaled value at the scale Debezium uses, for post.
	variableExpect = `json_build_object('scale', scale(trim_scale(v)), 'unscaled', (trim_scale(v) * 10::numeric ^ scale(trim_scale(v)))::numeric(1000, 0)::text)::text`
)

// javaInfinityDays are the epoch days of the dates Debezium gives
// ±infinity (-5877611-06-21 and -22), counted by Go's calendar.
func javaInfinityDays(day int) int64 {
	return time.Date(-5877611, 6, day, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

var dbzCases = []dbzCase{
	{name: "int2", typ: "int2", literal: "-32768", expect: "v::text"},
	{name: "int4", typ: "int4", literal: "2147483647", expect: "v::text"},
	{name: "int8", typ: "int8", literal: "-9223372036854775808", expect: "v::text"},
	{name: "oid", typ: "oid", literal: "4294967295", expect: "v::text"},
	{name: "float4", typ: "float4", literal: "0.1", expect: floatExpect},
	{name: "float4 max", typ: "float4", literal: "3.4028235e38", expect: floatExpect},
	{name: "float4 denormal", typ: "float4", literal: "1e-45", expect: floatExpect},
	{name: "float4 NaN", typ: "float4", literal: "'NaN'", expect: floatExpect},
	{name: "float8", typ: "float8", literal: "123456789.125", expect: floatExpect},
	{name: "float8 tiny", typ: "float8", literal: "1e-300", expect: floatExpect},
	{name: "float8 big", typ: "float8", literal: "1e22", expect: floatExpect},
	{name: "float8 -Infinity", typ: "float8", literal: "'-Infinity'", expect: floatExpect},
	{name: "float8 -0", typ: "float8", literal: "'-0'", expect: floatExpect},
	{name: "bool", typ: "bool", literal: "true", expect: "to_json(v)::text"},
	{name: "bool false", typ: "bool", literal: "false", expect: "to_json(v)::text"},
	{name: "numeric(12,2)", typ: "numeric(12,2)", literal: "-1234567890.5", expect: "(v * 100)::bigint::text", post: decimalPost},
	{name: "numeric(38,10) big", typ: "numeric(38,10)", literal: "1234567890123456789012345678.0123456789", expect: "(v * 10::numeric ^ 10)::numeric(1000,0)::text", post: decimalPost},
	{name: "numeric(5,0)", typ: "numeric(5,0)", literal: "128", expect: "v::text", post: decimalPost},
	{name: "numeric", typ: "numeric", literal: "1.50", expect: variableExpect, post: variablePost},
	{name: "numeric zero", typ: "numeric", literal: "0.000", expect: variableExpect, post: variablePost},
	{name: "numeric negative", typ: "numeric", literal: "-0.00125", expect: variableExpect, post: variablePost},
	{name: "numeric 40 digits", typ: "numeric", literal: "-1234567890123456789012345678901234567890", expect: variableExpect, post: variablePost},
	{name: "numeric 1e20", typ: "numeric", literal: "1e20", expect: variableExpect, post: variablePost},
	{name: "numeric NaN precise", typ: "numeric", literal: "'NaN'", wantErr: true},
	{name: "numeric string", typ: "numeric", literal: "-12.3400", expect: textExpect, opts: optString},
	{name: "numeric(10,3) string", typ: "numeric(10,3)", literal: "1.5", expect: textExpect, opts: optString},
	{name: "numeric NaN string", typ: "numeric", literal: "'NaN'", expect: `'"NAN"'`, opts: optString},
	{name: "numeric Infinity string", typ: "numeric", literal: "'Infinity'", expect: `'"POSITIVE_INFINITY"'`, opts: optString},
	{name: "numeric -Infinity string", typ: "numeric", literal: "'-Infinity'", expect: `'"NEGATIVE_INFINITY"'`, opts: optString},
	{name: "numeric double", typ: "numeric", literal: "12345.6789", expect: "v::float8::text", opts: optDouble},
	{name: "numeric NaN double", typ: "numeric", literal: "'NaN'", expect: `'"NaN"'`, opts: optDouble},
	{name: "money", typ: "money", literal: "-1000.5", expect: "(v::numeric * 100)::bigint::text", post: decimalPost},
	{name: "money string", typ: "money", literal: "1234.56", expect: "to_json(v::numeric::text)::text", opts: optString},
	{name: "money double", typ: "money", literal: "12.34", expect: "v::numeric::text", opts: optDouble},
	{name: "text", typ: "text", literal: `E'é\n"x"\\'`, expect: textExpect},
	{name: "varchar", typ: "varchar(9)", literal: "'abc'", expect: textExpect},
	{name: "bpchar keeps its padding", typ: "char(5)", literal: "'ab'", expect: "to_json(concat(v))::text"},
	{name: "json", typ: "json", literal: `'{"b": [1, 2.50], "a": null}'`, expect: textExpect},
	{name: "jsonb", typ: "jsonb", literal: `'{"b": [1, 2.50], "a": "é"}'`, expect: textExpect},
	{name: "uuid", typ: "uuid", literal: "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", expect: textExpect},
	{name: "xml", typ: "xml", literal: `'<a href="x">t&amp;</a>'`, expect: textExpect},
	{name: "inet", typ: "inet", literal: "'192.168.0.1/24'", expect: textExpect},
	{name: "cidr", typ: "cidr", literal: "'10.0.0.0/8'", expect: textExpect},
	{name: "macaddr", typ: "macaddr", literal: "'08:00:2b:01:02:03'", expect: textExpect},
	{name: "int4range", typ: "int4range", literal: "'[1,10)'", expect: textExpect},
	{name: "tsvector", typ: "tsvector", literal: "'a fat cat'", expect: textExpect},
	{name: "point", typ: "point", literal: "'(1.5,-2)'", expect: "json_build_array(v[0], v[1])::text", post: pointPost},
	{name: "point tiny", typ: "point", literal: "'(1e-300,-0.1)'", expect: "json_build_array(v[0], v[1])::text", post: pointPost},
	{name: "enum", typ: "mood", literal: "'happy'", expect: textExpect},
	{name: "domain", typ: "posint", literal: "5", expect: "v::text"},
	{name: "date", typ: "date", literal: "'2024-02-29'", expect: daysExpect},
	{name: "date before epoch", typ: "date", literal: "'1900-03-01'", expect: daysExpect},
	{name: "date BC", typ: "date", literal: "'0044-03-15 BC'", expect: daysExpect},
	{name: "date year 12345", typ: "date", literal: "'12345-06-07'", expect: daysExpect},
	{name: "date connect", typ: "date", literal: "'2024-02-29'", expect: daysExpect, opts: optConnect},
	{name: "date infinity", typ: "date", literal: "'infinity'", expect: "(" + strconv.FormatInt(javaInfinityDays(21), 10) + ")::text"},
	{name: "date -infinity", typ: "date", literal: "'-infinity'", expect: "(" + strconv.FormatInt(javaInfinityDays(22), 10) + ")::text"},
	{name: "time", typ: "time", literal: "'13:45:06.789012'", expect: microsExpect},
	{name: "time midnight", typ: "time", literal: "'24:00:00'", expect: microsExpect},
	{name: "time(3)", typ: "time(3)", literal: "'13:45:06.789'", expect: millisExpect},
	{name: "time(3) micros mode", typ: "time(3)", literal: "'13:45:06.789'", expect: microsExpect, opts: optMicros},
	{name: "time connect", typ: "time", literal: "'13:45:06.789012'", expect: millisExpect, opts: optConnect},
	{name: "timetz", typ: "timetz", literal: "'13:45:06.789+05:30'", expect: `to_json(regexp_replace((v AT TIME ZONE 'UTC')::text, '\+00$', 'Z'))::text`},
	{name: "timetz wraps", typ: "timetz", literal: "'01:00:00+05'", expect: `to_json(regexp_replace((v AT TIME ZONE 'UTC')::text, '\+00$', 'Z'))::text`},
	{name: "timetz west", typ: "timetz", literal: "'22:00:00.5-07'", expect: `to_json(regexp_replace((v AT TIME ZONE 'UTC')::text, '\+00$', 'Z'))::text`},
	{name: "timestamp", typ: "timestamp", literal: "'2024-01-02 03:04:05.123456'", expect: microsExpect},
	{name: "timestamp before epoch", typ: "timestamp", literal: "'1936-10-25 22:10:12.608'", expect: microsExpect},
	{name: "timestamp BC", typ: "timestamp", literal: "'0044-03-15 10:00:00 BC'", expect: microsExpect},
	{name: "timestamp year 12345", typ: "timestamp", literal: "'12345-01-01 00:00:00.5'", expect: microsExpect},
	{name: "timestamp(3)", typ: "timestamp(3)", literal: "'1960-01-02 03:04:05.123'", expect: millisExpect},
	{name: "timestamp connect", typ: "timestamp", literal: "'1960-01-02 03:04:05.1239'", expect: millisExpect, opts: optConnect},
	{name: "timestamp infinity", typ: "timestamp", literal: "'infinity'", expect: "'9223372036825200000'"},
	{name: "timestamp -infinity", typ: "timestamp", literal: "'-infinity'", expect: "'-9223372036832400000'"},
	{name: "timestamp(3) infinity", typ: "timestamp(3)", literal: "'infinity'", expect: "'9223372036825200'"},
	{name: "timestamptz", typ: "timestamptz", literal: "'2024-06-30 23:59:59.5-07'", expect: zonedExpect},
	{name: "timestamptz whole", typ: "timestamptz", literal: "'2000-01-01 00:00:00+00'", expect: zonedExpect},
	{name: "timestamptz BC", typ: "timestamptz", literal: "'0044-03-15 10:00:00.25+00 BC'", expect: zonedExpect},
	{name: "timestamptz year 21016", typ: "timestamptz", literal: "'21016-11-04 13:51:30.123456+07'", expect: zonedExpect},
	{name: "timestamptz infinity", typ: "timestamptz", literal: "'infinity'", expect: zonedExpect},
	{name: "timestamptz(3)", typ: "timestamptz(3)", literal: "'2024-01-02 03:04:05.1+00'", expect: `to_json(to_char(v AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text`},
	{name: "interval", typ: "interval", literal: "'1 year 2 mons 3 days 04:05:06.789'", expect: durationExpect},
	{name: "interval negative", typ: "interval", literal: "'-1 year -2 mons +3 days -04:05:06'", expect: durationExpect},
	{name: "interval day minus second", typ: "interval", literal: "'1 day -00:00:01'", expect: durationExpect},
	{name: "interval hours", typ: "interval", literal: "'100 hours 0.000001 sec'", expect: durationExpect},
	{name: "interval zero", typ: "interval", literal: "'0'", expect: durationExpect},
	{name: "interval string", typ: "interval", literal: "'1 year 2 mons 3 days 04:05:06.789'", expect: intervalStringExpect, opts: optString},
	{name: "interval string negative", typ: "interval", literal: "'-1 year -2 mons +3 days -04:05:06'", expect: intervalStringExpect, opts: optString},
	{name: "bytea", typ: "bytea", literal: `'\x00ff10fefb'::bytea`, expect: `to_json(translate(encode(v, 'base64'), E'\n', ''))::text`},
	{name: "bytea long", typ: "bytea", literal: `decode(repeat('fb', 100), 'hex')`, expect: `to_json(translate(encode(v, 'base64'), E'\n', ''))::text`},
	{name: "bytea base64", typ: "bytea", literal: `'\x00ff10fefb'::bytea`, expect: `to_json(translate(encode(v, 'base64'), E'\n', ''))::text`, opts: optB64},
	{name: "bytea url-safe", typ: "bytea", literal: `'\x00ff10fefb'::bytea`, expect: `to_json(translate(encode(v, 'base64'), E'+/\n', '-_'))::text`, opts: optURL},
	{name: "bytea hex", typ: "bytea", literal: `'\x00ff10fefb'::bytea`, expect: `to_json(encode(v, 'hex'))::text`, opts: optHex},
	{name: "bit(4)", typ: "bit(4)", literal: "B'1010'", expect: "v::int::text", post: bitsPost},
	{name: "bit(12)", typ: "bit(12)", literal: "B'100000000001'", expect: "v::int::text", post: bitsPost},
	{name: "bit(1)", typ: "bit(1)", literal: "B'1'", expect: "'true'"},
	{name: "int4[]", typ: "int4[]", literal: "'{1,NULL,3}'", expect: "to_json(v)::text"},
	{name: "int4[][]", typ: "int4[][]", literal: "'{{1,2},{3,4}}'", expect: "to_json(v)::text"},
	{name: "text[]", typ: "text[]", literal: `ARRAY['a,b', 'quote"d', NULL, 'NULL', '']`, expect: "to_json(v)::text"},
	{name: "bool[]", typ: "bool[]", literal: "'{t,f,NULL}'", expect: "to_json(v)::text"},
	{name: "uuid[]", typ: "uuid[]", literal: "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'", expect: "to_json(v)::text"},
	{name: "date[]", typ: "date[]", literal: "'{2024-01-02,NULL,1969-12-31}'", expect: "(SELECT json_agg(e - date '1970-01-01') FROM unnest(v) e)::text"},
	{name: "timestamp[]", typ: "timestamp[]", literal: `'{"2024-01-02 03:04:05.5"}'`, expect: "(SELECT json_agg((extract(epoch from e) * 1000000)::bigint) FROM unnest(v) e)::text"},
	{name: "enum[]", typ: "mood[]", literal: "'{happy,sad}'", expect: "to_json(v)::text"},
}

// decimalPost turns an unscaled integer into Connect's Decimal: base64 of
// its two's complement, computed here as 2^(8n) + x for the least n.
func decimalPost(t *testing.T, s string) string {
	return `"` + base64.StdEncoding.EncodeToString(twos(t, s)) + `"`
}

func twos(t *testing.T, s string) []byte {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("not an integer: %q", s)
	}
	for n := 1; ; n++ {
		lim := new(big.Int).Lsh(big.NewInt(1), uint(8*n-1))
		if x.Cmp(lim) < 0 && x.Cmp(new(big.Int).Neg(lim)) >= 0 {
			v := new(big.Int).Set(x)
			if v.Sign() < 0 {
				v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
			}
			return v.FillBytes(make([]byte, n))
		}
	}
}

func variablePost(t *testing.T, s string) string {
	var v struct {
		Scale    int    `json:"scale"`
		Unscaled string `json:"unscaled"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	// Debezium strips trailing zeros but never keeps a negative scale.
	return fmt.Sprintf(`{"scale":%d,"value":"%s"}`, v.Scale, base64.StdEncoding.EncodeToString(twos(t, v.Unscaled)))
}

// pointPost: Debezium's Point struct of the coordinates [x, y], its WKB
// built here: byte order 1 (little-endian), type 1, x, y.
func pointPost(t *testing.T, s string) string {
	var xy [2]float64
	if err := json.Unmarshal([]byte(s), &xy); err != nil {
		t.Fatal(err)
	}
	wkb := []byte{1, 1, 0, 0, 0}
	wkb = binary.LittleEndian.AppendUint64(wkb, math.Float64bits(xy[0]))
	wkb = binary.LittleEndian.AppendUint64(wkb, math.Float64bits(xy[1]))
	x, _ := json.Marshal(xy[0])
	y, _ := json.Marshal(xy[1])
	return fmt.Sprintf(`{"x":%s,"y":%s,"wkb":"%s","srid":null}`, x, y, base64.StdEncoding.EncodeToString(wkb))
}

// bitsPost: Debezium's Bits are the bit string's bytes little-endian, as
// few as the highest set bit needs.
func bitsPost(t *testing.T, s string) string {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var bs []byte
	for ; n > 0; n >>= 8 {
		bs = append(bs, byte(n))
	}
	return `"` + base64.StdEncoding.EncodeToString(bs) + `"`
}

// TestDebeziumMatchesPostgres stores each value in a real Postgres, reads
// its text form as pgoutput sends it (the collector's session settings)
// with the column's type and modifier, and compares the Debezium encoding
// with the one Postgres computes.
func TestDebeziumMatchesPostgres(t *testing.T) {
	db := setupValues(t) // also creates mood and posint
	ctx := context.Background()
	for i, c := range dbzCases {
		t.Run(c.name, func(t *testing.T) {
			table := fmt.Sprintf("dbz_%d", i)
			if _, err := db.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %[1]s (v %[2]s); INSERT INTO %[1]s VALUES (%[3]s)", table, c.typ, c.literal)); err != nil {
				t.Fatal(err)
			}
			col := db.column(t, table)
			rows, err := db.conn.Query(ctx, "SELECT v FROM "+table, pgx.QueryResultFormats{pgx.TextFormatCode})
			if err != nil {
				t.Fatal(err)
			}
			var text []byte
			for rows.Next() {
				text = append([]byte(nil), rows.RawValues()[0]...)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			opts := c.opts
			opts.MoneyFractionDigits = 2 // the connector's default
			enc, err := NewDebezium(opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.AppendValue(nil, &col, wire.Value{Kind: wire.KindText, Data: text})
			if c.wantErr {
				if err == nil {
					t.Fatalf("%q rendered as %s, want an error", text, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", text, err)
			}
			var want string
			if err := db.conn.QueryRow(ctx, "SELECT ("+c.expect+")::text FROM "+table).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if c.post != nil {
				want = c.post(t, want)
			}
			if !json.Valid(got) {
				t.Fatalf("%q: invalid JSON %s", text, got)
			}
			// Strings exactly; numbers by value (Java prints 1.0E-300,
			// Postgres 1e-300).
			if strings.HasPrefix(want, `"`) || strings.HasPrefix(want, `[`) && bytes.Contains(got, []byte(`"`)) {
				if string(got) != want {
					t.Errorf("%q\nwant %s\ngot  %s", text, want, got)
				}
			} else if eq, diff := jsoncmp.Equal([]byte(want), got); !eq {
				t.Errorf("%q\nwant %s\ngot  %s\n%s", text, want, got, diff)
			}
		})
	}
}

// column reads table's column v as the collector describes it: its own
// type modifier or its domain's, and user-defined types from the catalog.
func (db *testDB) column(t *testing.T, table string) wire.Column {
	t.Helper()
	ctx := context.Background()
	var col wire.Column
	err := db.conn.QueryRow(ctx, `SELECT attname, atttypid, atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'v'`,
		table).Scan(&col.Name, &col.TypeOID, &col.TypeMod)
	if err != nil {
		t.Fatal(err)
	}
	if col.TypeOID >= firstUserOID {
		typ, err := pgtypes.Resolve(ctx, db.conn, col.TypeOID)
		if err != nil {
			t.Fatal(err)
		}
		col.Type = typ.Info
		col.TypeMod = typ.ColumnTypeMod(col.TypeMod)
	}
	return col
}
