package value

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/jsoncmp"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/wire"
)

// columns of the test table: one per type the router must render.
var columns = []struct{ name, typ string }{
	{"c_int2", "int2"},
	{"c_int4", "int4"},
	{"c_int8", "int8"},
	{"c_oid", "oid"},
	{"c_numeric", "numeric"},
	{"c_numeric_scaled", "numeric(10,2)"},
	{"c_float4", "float4"},
	{"c_float8", "float8"},
	{"c_bool", "bool"},
	{"c_text", "text"},
	{"c_varchar", "varchar(20)"},
	{"c_bpchar", "char(5)"},
	{"c_name", "name"},
	{"c_char", `"char"`},
	{"c_json", "json"},
	{"c_jsonb", "jsonb"},
	{"c_uuid", "uuid"},
	{"c_date", "date"},
	{"c_time", "time"},
	{"c_timetz", "timetz"},
	{"c_timestamp", "timestamp"},
	{"c_timestamp3", "timestamp(3)"},
	{"c_timestamptz", "timestamptz"},
	{"c_interval", "interval"},
	{"c_bytea", "bytea"},
	{"c_int4_arr", "int4[]"},
	{"c_text_arr", "text[]"},
	{"c_int4_2d", "int4[][]"},
	{"c_jsonb_arr", "jsonb[]"},
	{"c_mood", "mood"},
	{"c_mood_arr", "mood[]"},
	{"c_posint", "posint"},
	{"c_money", "money"},
	{"c_inet", "inet"},
	{"c_cidr", "cidr"},
	{"c_macaddr", "macaddr"},
	{"c_bit", "bit(4)"},
	{"c_varbit", "varbit"},
	{"c_xml", "xml"},
	{"c_tsvector", "tsvector"},
	{"c_point", "point"},
	{"c_box_arr", "box[]"},
	{"c_numeric_arr", "numeric[]"},
	{"c_float8_arr", "float8[]"},
	{"c_timestamptz_arr", "timestamptz[]"},
	{"c_timestamp_arr", "timestamp[]"},
	{"c_date_arr", "date[]"},
	{"c_bool_arr", "bool[]"},
	{"c_uuid_arr", "uuid[]"},
	{"c_bytea_arr", "bytea[]"},
	{"c_interval_arr", "interval[]"},
	{"c_timetz_arr", "timetz[]"},
	{"c_money_arr", "money[]"},
	{"c_int4range", "int4range"},
	{"c_tstzrange", "tstzrange"},
}

// valueCases each set one column of one row; the other columns of the row
// stay NULL (and are checked as such).
var valueCases = []struct{ name, col, literal string }{
	{"all null", "", ""},
	{"int2 min", "c_int2", "-32768"},
	{"int2 max", "c_int2", "32767"},
	{"int4", "c_int4", "42"},
	{"int4 min", "c_int4", "-2147483648"},
	{"int4 zero", "c_int4", "0"},
	{"int8 max", "c_int8", "9223372036854775807"},
	{"int8 min", "c_int8", "-9223372036854775808"},
	{"oid max", "c_oid", "4294967295"},
	{"numeric 1.50", "c_numeric", "1.50"},
	{"numeric zero", "c_numeric", "0"},
	{"numeric small negative", "c_numeric", "-0.001"},
	{"numeric 40 digits", "c_numeric", "1234567890123456789012345678901234567890"},
	{"numeric 40 digits fraction", "c_numeric", "-12345678901234567890.12345678901234567890"},
	{"numeric tiny", "c_numeric", "0.00000000000000000001"},
	{"numeric 1e20", "c_numeric", "1e20"},
	{"numeric NaN", "c_numeric", "'NaN'"},
	{"numeric Infinity", "c_numeric", "'Infinity'"},
	{"numeric -Infinity", "c_numeric", "'-Infinity'"},
	{"numeric scaled", "c_numeric_scaled", "3.1"},
	{"float4 1.5", "c_float4", "1.5"},
	{"float4 0.1", "c_float4", "0.1"},
	{"float4 max", "c_float4", "3.4028235e38"},
	{"float4 denormal", "c_float4", "1e-45"},
	{"float4 NaN", "c_float4", "'NaN'"},
	{"float4 -Infinity", "c_float4", "'-Infinity'"},
	{"float8 0.1", "c_float8", "0.1"},
	{"float8 1e-300", "c_float8", "1e-300"},
	{"float8 max", "c_float8", "1.7976931348623157e308"},
	{"float8 negative zero", "c_float8", "'-0'"},
	{"float8 exact", "c_float8", "123456789.125"},
	{"float8 NaN", "c_float8", "'NaN'"},
	{"float8 Infinity", "c_float8", "'Infinity'"},
	{"float8 -Infinity", "c_float8", "'-Infinity'"},
	{"bool true", "c_bool", "true"},
	{"bool false", "c_bool", "false"},
	{"text unicode", "c_text", "'héllo wörld ✓ 世界 🎉 é'"},
	{"text control chars", "c_text", `E'ctl \x01\x02\x1f tab\there nl\nnext cr\r bs\b ff\f del\x7f'`},
	{"text quotes and backslashes", "c_text", `'"quoted" and \ backslash \\ and \u0041'`},
	{"text empty", "c_text", "''"},
	{"text NULL word", "c_text", "'NULL'"},
	{"text line separators", "c_text", `E'\u2028\u2029 \uFEFF'`},
	{"text looks like timestamp", "c_text", "'2024-01-02 03:04:05+00'"},
	{"text long", "c_text", "repeat('abc\"\\', 5000)"},
	{"varchar", "c_varchar", "'abc'"},
	{"bpchar padded", "c_bpchar", "'ab'"},
	{"name", "c_name", "'pg_name'"},
	{"char", "c_char", "'x'"},
	{"json object", "c_json", `'{"b": [1, 2.50, "x"], "a": null}'`},
	{"json escapes", "c_json", `'"\u00e9\ud83c\udf89 \" \\"'`},
	{"json empty array", "c_json", "'[]'"},
	{"json big number", "c_json", "'12345678901234567890.12345678901234567890'"},
	{"jsonb object", "c_jsonb", `'{"a": 1, "nested": {"x": [true, false, null]}, "s": "é\n"}'`},
	{"jsonb string", "c_jsonb", `'"string"'`},
	{"jsonb null", "c_jsonb", "'null'"},
	{"jsonb huge number", "c_jsonb", "'1e400'"},
	{"uuid", "c_uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
	{"date", "c_date", "'2024-02-29'"},
	{"date infinity", "c_date", "'infinity'"},
	{"date -infinity", "c_date", "'-infinity'"},
	{"date BC", "c_date", "'0044-03-15 BC'"},
	{"date year 12345", "c_date", "'12345-06-07'"},
	{"time", "c_time", "'13:45:06.789'"},
	{"time midnight", "c_time", "'24:00:00'"},
	{"timetz", "c_timetz", "'13:45:06.789+05:30'"},
	{"timetz west", "c_timetz", "'12:00:00-07'"},
	{"timetz seconds offset", "c_timetz", "'00:00:00+05:53:28'"},
	{"time last microsecond", "c_time", "'23:59:59.999999'"},
	{"timestamp", "c_timestamp", "'2024-01-02 03:04:05'"},
	{"timestamp micros", "c_timestamp", "'2024-01-02 03:04:05.123456'"},
	{"timestamp tenth", "c_timestamp", "'2024-01-02 03:04:05.1'"},
	{"timestamp end of millennium", "c_timestamp", "'1999-12-31 23:59:59.999999'"},
	{"timestamp infinity", "c_timestamp", "'infinity'"},
	{"timestamp -infinity", "c_timestamp", "'-infinity'"},
	{"timestamp BC", "c_timestamp", "'0044-03-15 10:00:00 BC'"},
	{"timestamp year 12345", "c_timestamp", "'12345-01-01 00:00:00.5'"},
	{"timestamp(3)", "c_timestamp3", "'2024-01-02 03:04:05.123456'"},
	{"timestamptz", "c_timestamptz", "'2024-01-02 03:04:05.123456+00'"},
	{"timestamptz offset", "c_timestamptz", "'2024-06-30 23:59:59.5-07'"},
	{"timestamptz half hour", "c_timestamptz", "'1999-12-31 23:59:59+05:30'"},
	{"timestamptz epoch", "c_timestamptz", "'2000-01-01 00:00:00+00'"},
	{"timestamptz infinity", "c_timestamptz", "'infinity'"},
	{"timestamptz -infinity", "c_timestamptz", "'-infinity'"},
	{"timestamptz BC", "c_timestamptz", "'0044-03-15 10:00:00.25+00 BC'"},
	{"timestamptz year 12345", "c_timestamptz", "'12345-01-01 00:00:00+00'"},
	{"interval", "c_interval", "'1 year 2 mons 3 days 04:05:06.789'"},
	{"interval negative", "c_interval", "'-1 day'"},
	{"interval zero", "c_interval", "'0'"},
	{"interval mixed signs", "c_interval", "'-1 year -2 mons +3 days -04:05:06'"},
	{"interval day minus second", "c_interval", "'1 day -00:00:01'"},
	{"interval hours", "c_interval", "'100 hours 0.000001 sec'"},
	{"interval one of each", "c_interval", "'1 year 1 mon 1 day 1 sec'"},
	{"bytea", "c_bytea", `'\x0102ab'::bytea`},
	{"bytea empty", "c_bytea", "''::bytea"},
	{"int4[]", "c_int4_arr", "'{1,2,3}'"},
	{"int4[] empty", "c_int4_arr", "'{}'"},
	{"int4[] null element", "c_int4_arr", "'{1,NULL,3}'"},
	{"int4[] lower bound", "c_int4_arr", "'[0:2]={1,2,3}'"},
	{"text[] hostile", "c_text_arr", `ARRAY['a,b', 'quote"d', 'back\slash', NULL, 'NULL', '', ' spaced ', '{braces}', 'é🎉', E'nl\n']`},
	{"int4[][]", "c_int4_2d", "'{{1,2},{3,4}}'"},
	{"int4[][] 3-D", "c_int4_2d", "'{{{1,2}},{{3,NULL}}}'"},
	{"int4[][] nulls", "c_int4_2d", "'{{NULL,NULL}}'"},
	{"jsonb[]", "c_jsonb_arr", `ARRAY['{"a":1}'::jsonb, '[1,2]', 'null', NULL, '"s,}"']`},
	{"enum", "c_mood", "'happy'"},
	{"enum quoted label", "c_mood", `'it''s "quoted"'`},
	{"enum[]", "c_mood_arr", "'{happy,sad}'"},
	{"enum[] quoted and null", "c_mood_arr", `ARRAY['it''s "quoted"'::mood, NULL]`},
	{"domain", "c_posint", "5"},
	{"money", "c_money", "12.34"},
	{"money negative", "c_money", "-1000.5"},
	{"inet", "c_inet", "'192.168.0.1/24'"},
	{"inet v6", "c_inet", "'::1'"},
	{"inet v4 host", "c_inet", "'10.1.2.3/32'"},
	{"inet v4-mapped", "c_inet", "'::ffff:1.2.3.4'"},
	{"inet v6 prefix", "c_inet", "'2001:db8::1/64'"},
	{"cidr v6", "c_cidr", "'2001:db8::/32'"},
	{"cidr host", "c_cidr", "'10.1.2.3/32'"},
	{"cidr", "c_cidr", "'10.0.0.0/8'"},
	{"macaddr", "c_macaddr", "'08:00:2b:01:02:03'"},
	{"bit", "c_bit", "B'1010'"},
	{"varbit", "c_varbit", "B'101'"},
	{"xml", "c_xml", `'<a href="x">t&amp;</a>'`},
	{"tsvector", "c_tsvector", "'a fat cat'"},
	{"point", "c_point", "'(1.5,-2)'"},
	{"box[] semicolon delimiter", "c_box_arr", "ARRAY['(1,1),(0,0)'::box, '(2,2),(1,1)']"},
	{"numeric[]", "c_numeric_arr", "'{1.50,NaN,-Infinity,12345678901234567890123456789}'"},
	{"float8[]", "c_float8_arr", "'{0.1,NaN,Infinity,-1e-300}'"},
	{"timestamptz[]", "c_timestamptz_arr", "ARRAY['2024-01-02 03:04:05.5+00'::timestamptz, 'infinity', NULL]"},
	{"timestamp[]", "c_timestamp_arr", `'{"2024-01-02 03:04:05",infinity}'`},
	{"date[]", "c_date_arr", "'{2024-01-02,infinity}'"},
	{"bool[]", "c_bool_arr", "'{t,f,NULL}'"},
	{"uuid[]", "c_uuid_arr", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"},
	{"bytea[]", "c_bytea_arr", `ARRAY['\x01'::bytea, '']`},
	{"interval[]", "c_interval_arr", `'{"1 day","-02:00:00"}'`},
	{"timetz[]", "c_timetz_arr", "'{12:00:00+01}'"},
	{"money[]", "c_money_arr", "'{1.5,-2}'"},
	{"int4range", "c_int4range", "'[1,10)'"},
	{"tstzrange", "c_tstzrange", "'[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)'"},
}

// oidOverride: to_jsonb renders oid as a string, pgjet as a number (an oid
// is an unsigned integer); the test compares it with to_jsonb(oid::int8).
const oidOverride = "c_oid"

type testDB struct {
	conn *pgx.Conn
	cols []wire.Column
}

// setupValues starts Postgres, creates and fills the test table, and reads
// the column metadata the way the collector does (pg_attribute, pg_type).
func setupValues(t *testing.T) *testDB {
	t.Helper()
	c := pgtest.Run(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(c.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	// The settings the collector uses for its replication session.
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })

	var ddl strings.Builder
	ddl.WriteString(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s "quoted"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE vals (id int PRIMARY KEY`)
	for _, col := range columns {
		fmt.Fprintf(&ddl, ", %s %s", col.name, col.typ)
	}
	ddl.WriteString(")")
	if _, err := conn.Exec(ctx, ddl.String()); err != nil {
		t.Fatal(err)
	}
	for i, vc := range valueCases {
		sql := "INSERT INTO vals (id) VALUES ($1)"
		if vc.col != "" {
			sql = fmt.Sprintf("INSERT INTO vals (id, %s) VALUES ($1, %s)", vc.col, vc.literal)
		}
		if _, err := conn.Exec(ctx, sql, i); err != nil {
			t.Fatalf("%s: %s: %v", vc.name, sql, err)
		}
	}

	rows, err := conn.Query(ctx, `
SELECT a.attname, a.atttypid, a.atttypmod, n.nspname, t.typname, t.typtype::text,
       t.typelem, t.typbasetype, coalesce(e.typtype::text, '')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
WHERE a.attrelid = 'vals'::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`)
	if err != nil {
		t.Fatal(err)
	}
	db := &testDB{conn: conn}
	for rows.Next() {
		var col wire.Column
		var ti wire.TypeInfo
		var kind, elemKind string
		if err := rows.Scan(&col.Name, &col.TypeOID, &col.TypeMod, &ti.Schema, &ti.Name, &kind, &ti.ElemOID, &ti.BaseOID, &elemKind); err != nil {
			t.Fatal(err)
		}
		if col.TypeOID >= firstUserOID {
			ti.Kind = kind[0]
			if elemKind != "" {
				ti.ElemKind = elemKind[0]
			}
			col.Type = ti
		}
		db.cols = append(db.cols, col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return db
}

// fetch returns each row's column values in the given result format (what
// pgoutput sends, in text or binary mode), and to_jsonb of the row.
func (db *testDB) fetch(t *testing.T, format int16) (values [][]wire.Value, want []map[string]json.RawMessage) {
	t.Helper()
	ctx := context.Background()
	names := make([]string, len(db.cols))
	for i, c := range db.cols {
		names[i] = c.Name
	}
	// to_jsonb goes in a second query: the first one is all in one format.
	rows, err := db.conn.Query(ctx, "SELECT "+strings.Join(names, ", ")+" FROM vals ORDER BY id",
		pgx.QueryResultFormats{format})
	if err != nil {
		t.Fatal(err)
	}
	kind := wire.KindText
	if format == pgx.BinaryFormatCode {
		kind = wire.KindBinary
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]wire.Value, len(raw))
		for i, r := range raw {
			if r == nil {
				row[i] = wire.Value{Kind: wire.KindNull}
			} else {
				row[i] = wire.Value{Kind: kind, Data: append([]byte(nil), r...)}
			}
		}
		values = append(values, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	rows, err = db.conn.Query(ctx, "SELECT to_jsonb(v)::text, coalesce(to_jsonb(v."+oidOverride+"::int8)::text, 'null') FROM vals v ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var doc, oid string
		if err := rows.Scan(&doc, &oid); err != nil {
			t.Fatal(err)
		}
		m := make(map[string]json.RawMessage)
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		m[oidOverride] = json.RawMessage(oid)
		want = append(want, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(values) != len(valueCases) || len(want) != len(valueCases) {
		t.Fatalf("got %d rows and %d documents, want %d", len(values), len(want), len(valueCases))
	}
	return values, want
}

// TestAppendJSONMatchesToJSONB renders every value of every row as pgoutput
// would send it (text format) and compares it with what Postgres's to_jsonb
// gives for the same row.
func TestAppendJSONMatchesToJSONB(t *testing.T) {
	db := setupValues(t)
	values, want := db.fetch(t, pgx.TextFormatCode)
	d := NewDecoder()
	for i, vc := range valueCases {
		t.Run(vc.name, func(t *testing.T) {
			for j := range db.cols {
				col := &db.cols[j]
				got, err := d.AppendJSON(nil, col, values[i][j])
				if err != nil {
					t.Errorf("%s: %q: %v", col.Name, values[i][j].Data, err)
					continue
				}
				if !json.Valid(got) {
					t.Errorf("%s: invalid JSON %s", col.Name, got)
					continue
				}
				w, ok := want[i][col.Name]
				if !ok {
					t.Fatalf("to_jsonb has no %s", col.Name)
				}
				if eq, diff := jsoncmp.Equal(w, got); !eq {
					t.Errorf("%s: text %q\nwant %s\ngot  %s\n%s", col.Name, values[i][j].Data, w, got, diff)
				}
			}
		})
	}
}

// binaryUnsupported lists the columns whose binary form pgtype cannot decode
// (no codec for the type); they must fail loudly, never render wrongly.
var binaryUnsupported = map[string]bool{
	"c_money":     true,
	"c_money_arr": true,
	"c_int4range": true,
	"c_tstzrange": true,
}

// binaryTextDiffers lists types whose text pgtype renders differently from
// Postgres (same value, other spelling): in binary mode they are still strings
// but not to_jsonb's.
var binaryTextDiffers = map[string]bool{}

// TestAppendJSONBinaryMatchesToJSONB does the same for binary mode values.
func TestAppendJSONBinaryMatchesToJSONB(t *testing.T) {
	db := setupValues(t)
	values, want := db.fetch(t, pgx.BinaryFormatCode)
	d := NewDecoder()
	for i, vc := range valueCases {
		t.Run(vc.name, func(t *testing.T) {
			for j := range db.cols {
				col := &db.cols[j]
				v := values[i][j]
				got, err := d.AppendJSON(nil, col, v)
				if binaryUnsupported[col.Name] && v.Kind != wire.KindNull {
					if err == nil {
						t.Errorf("%s: binary value rendered as %s, want an error", col.Name, got)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %x: %v", col.Name, v.Data, err)
					continue
				}
				if !json.Valid(got) {
					t.Errorf("%s: invalid JSON %s", col.Name, got)
					continue
				}
				if binaryTextDiffers[col.Name] {
					continue
				}
				if eq, diff := jsoncmp.Equal(want[i][col.Name], got); !eq {
					t.Errorf("%s: binary %x\nwant %s\ngot  %s\n%s", col.Name, v.Data, want[i][col.Name], got, diff)
				}
			}
		})
	}
}
