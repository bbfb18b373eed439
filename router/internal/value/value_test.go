package value

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

func text(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }
func bin(s string) wire.Value  { return wire.Value{Kind: wire.KindBinary, Data: []byte(s)} }

var (
	moodInfo    = wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e'}
	moodArrInfo = wire.TypeInfo{Schema: "public", Name: "_mood", Kind: 'b', ElemOID: 16500, ElemKind: 'e'}
	domainInfo  = wire.TypeInfo{Schema: "public", Name: "posint", Kind: 'd', BaseOID: pgtype.Int4OID}
	domArrInfo  = wire.TypeInfo{Schema: "public", Name: "ints", Kind: 'd', BaseOID: pgtype.Int4ArrayOID}
	userArrInfo = wire.TypeInfo{Schema: "public", Name: "_ints", Kind: 'b', ElemOID: pgtype.Int8OID, ElemKind: 'b'}
	compInfo    = wire.TypeInfo{Schema: "public", Name: "pair", Kind: 'c'}
)

// TestAppendJSONExact pins renderings whose exact form matters to consumers
// (the Postgres comparison only checks meaning).
func TestAppendJSONExact(t *testing.T) {
	tests := []struct {
		name string
		oid  uint32
		info wire.TypeInfo
		v    wire.Value
		want string
	}{
		{"null", pgtype.Int4OID, wire.TypeInfo{}, wire.Value{Kind: wire.KindNull}, `null`},
		{"int4", pgtype.Int4OID, wire.TypeInfo{}, text("-42"), `-42`},
		{"numeric keeps digits", pgtype.NumericOID, wire.TypeInfo{}, text("1.50"), `1.50`},
		{"numeric NaN", pgtype.NumericOID, wire.TypeInfo{}, text("NaN"), `"NaN"`},
		{"float8 exponent", pgtype.Float8OID, wire.TypeInfo{}, text("1e-300"), `1e-300`},
		{"float8 -Infinity", pgtype.Float8OID, wire.TypeInfo{}, text("-Infinity"), `"-Infinity"`},
		{"bool", pgtype.BoolOID, wire.TypeInfo{}, text("t"), `true`},
		{"text escapes", pgtype.TextOID, wire.TypeInfo{}, text("a\"b\\c\n\x01é"), `"a\"b\\c\n\u0001é"`},
		{"jsonb embedded as is", pgtype.JSONBOID, wire.TypeInfo{}, text(`{"a": [1, 2.50]}`), `{"a": [1, 2.50]}`},
		{"date", pgtype.DateOID, wire.TypeInfo{}, text("2024-02-29"), `"2024-02-29"`},
		{"date BC", pgtype.DateOID, wire.TypeInfo{}, text("0044-03-15 BC"), `"0044-03-15 BC"`},
		{"timestamp", pgtype.TimestampOID, wire.TypeInfo{}, text("2024-01-02 03:04:05.1"), `"2024-01-02T03:04:05.1"`},
		{"timestamp BC", pgtype.TimestampOID, wire.TypeInfo{}, text("0044-03-15 10:00:00 BC"), `"0044-03-15T10:00:00 BC"`},
		{"timestamptz UTC", pgtype.TimestamptzOID, wire.TypeInfo{}, text("2024-01-02 03:04:05.123456+00"), `"2024-01-02T03:04:05.123456Z"`},
		{"timestamptz converted to UTC", pgtype.TimestamptzOID, wire.TypeInfo{}, text("2024-01-01 01:30:00+05:30"), `"2023-12-31T20:00:00Z"`},
		{"timestamptz seconds offset", pgtype.TimestamptzOID, wire.TypeInfo{}, text("1900-01-01 00:00:00+00:53:28"), `"1899-12-31T23:06:32Z"`},
		{"timestamptz fraction carried", pgtype.TimestamptzOID, wire.TypeInfo{}, text("2024-01-01 00:00:00.5-01"), `"2024-01-01T01:00:00.5Z"`},
		{"timestamptz year 12345", pgtype.TimestamptzOID, wire.TypeInfo{}, text("12345-01-01 00:00:00+00"), `"12345-01-01T00:00:00+00:00"`},
		{"timestamptz BC", pgtype.TimestamptzOID, wire.TypeInfo{}, text("0044-03-15 10:00:00+00 BC"), `"0044-03-15T10:00:00+00:00 BC"`},
		{"timestamptz infinity", pgtype.TimestamptzOID, wire.TypeInfo{}, text("infinity"), `"infinity"`},
		{"bytea", pgtype.ByteaOID, wire.TypeInfo{}, text(`\x01ab`), `"\\x01ab"`},
		{"int4[] 2-D", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("{{1,NULL},{3,4}}"), `[[1,null],[3,4]]`},
		{"int4[] empty", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("{}"), `[]`},
		{"int4[] lower bound dropped", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("[0:1]={5,6}"), `[5,6]`},
		{"text[] quoted", pgtype.TextArrayOID, wire.TypeInfo{}, text(`{"a,b","q\"d",NULL,"NULL",""}`), `["a,b","q\"d",null,"NULL",""]`},
		{"enum", 16500, moodInfo, text("happy"), `"happy"`},
		{"enum[]", 16501, moodArrInfo, text(`{happy,"it's \"q\""}`), `["happy","it's \"q\""]`},
		{"domain over int", 16502, domainInfo, text("5"), `5`},
		{"domain over int[]", 16503, domArrInfo, text("{5,6}"), `[5,6]`},
		{"user array of int8", 16504, userArrInfo, text("{7}"), `[7]`},
		{"PostGIS geometry[]: ':' between elements", 16507, wire.TypeInfo{Schema: "public", Name: "_geometry", Kind: 'b', ElemOID: 16508, ElemKind: 'b'},
			text("{010700000000000000:0101000020E6100000000000000000F03F0000000000000040}"), `["010700000000000000","0101000020E6100000000000000000F03F0000000000000040"]`},
		{"composite as text", 16505, compInfo, text(`(1,"a b")`), `"(1,\"a b\")"`},
		{"user type without info", 16506, wire.TypeInfo{}, text("whatever"), `"whatever"`},
		{"unknown builtin", 3220, wire.TypeInfo{}, text("0/16B3748"), `"0/16B3748"`},
		{"money[] unknown to pgtype", 791, wire.TypeInfo{}, text(`{$1.50,-$2.00}`), `["$1.50","-$2.00"]`},

		{"binary int4", pgtype.Int4OID, wire.TypeInfo{}, bin("\xff\xff\xff\xfe"), `-2`},
		{"binary float4", pgtype.Float4OID, wire.TypeInfo{}, bin("\x3d\xcc\xcc\xcd"), `0.1`},
		{"binary bool", pgtype.BoolOID, wire.TypeInfo{}, bin("\x00"), `false`},
		{"binary uuid", pgtype.UUIDOID, wire.TypeInfo{}, bin("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11"), `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"binary timestamptz epoch", pgtype.TimestamptzOID, wire.TypeInfo{}, bin("\x00\x00\x00\x00\x00\x00\x00\x01"), `"2000-01-01T00:00:00.000001Z"`},
		{"binary timestamp before epoch", pgtype.TimestampOID, wire.TypeInfo{}, bin("\xff\xff\xff\xff\xff\xff\xff\xff"), `"1999-12-31T23:59:59.999999"`},
		{"binary timestamp infinity", pgtype.TimestampOID, wire.TypeInfo{}, bin("\x7f\xff\xff\xff\xff\xff\xff\xff"), `"infinity"`},
		{"binary date -infinity", pgtype.DateOID, wire.TypeInfo{}, bin("\x80\x00\x00\x00"), `"-infinity"`},
		{"binary jsonb", pgtype.JSONBOID, wire.TypeInfo{}, bin("\x01[1]"), `[1]`},
		{"binary enum", 16500, moodInfo, bin("sad"), `"sad"`},
		{"binary interval", pgtype.IntervalOID, wire.TypeInfo{}, bin("\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"), `"-00:00:00.000001"`},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &wire.Column{Name: "c", TypeOID: tt.oid, Type: tt.info}
			got, err := d.AppendJSON([]byte("prefix:"), col, tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix:"+tt.want {
				t.Errorf("got  %s\nwant prefix:%s", got, tt.want)
			}
		})
	}
}

func TestAppendJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		oid  uint32
		info wire.TypeInfo
		v    wire.Value
		want string // substring of the error
	}{
		{"unchanged toast", pgtype.TextOID, wire.TypeInfo{}, wire.Value{Kind: wire.KindUnchanged}, "unchanged TOAST"},
		{"unknown kind", pgtype.TextOID, wire.TypeInfo{}, wire.Value{Kind: 'x'}, "unknown value kind"},
		{"int4 letters", pgtype.Int4OID, wire.TypeInfo{}, text("abc"), `invalid int4 text "abc"`},
		{"int4 empty", pgtype.Int4OID, wire.TypeInfo{}, text(""), "invalid int4"},
		{"int4 fraction", pgtype.Int4OID, wire.TypeInfo{}, text("1.5"), "invalid int4"},
		{"int8 leading zero", pgtype.Int8OID, wire.TypeInfo{}, text("007"), "invalid int8"},
		{"int8 minus only", pgtype.Int8OID, wire.TypeInfo{}, text("-"), "invalid int8"},
		{"numeric garbage", pgtype.NumericOID, wire.TypeInfo{}, text("1e"), "invalid numeric"},
		{"numeric leading dot", pgtype.NumericOID, wire.TypeInfo{}, text(".5"), "invalid numeric"},
		{"float8 nan lowercase", pgtype.Float8OID, wire.TypeInfo{}, text("nan"), "invalid float8"},
		{"bool word", pgtype.BoolOID, wire.TypeInfo{}, text("true"), "invalid bool"},
		{"json broken", pgtype.JSONOID, wire.TypeInfo{}, text(`{"a":`), "invalid json"},
		{"jsonb two values", pgtype.JSONBOID, wire.TypeInfo{}, text(`1 2`), "invalid jsonb"},
		{"date other DateStyle", pgtype.DateOID, wire.TypeInfo{}, text("01/02/2024"), "invalid date"},
		{"date bad month", pgtype.DateOID, wire.TypeInfo{}, text("2024-13-01"), "invalid date"},
		{"timestamp Postgres style", pgtype.TimestampOID, wire.TypeInfo{}, text("Tue Jan 02 03:04:05 2024"), "invalid timestamp"},
		{"timestamp with zone", pgtype.TimestampOID, wire.TypeInfo{}, text("2024-01-02 03:04:05+00"), "invalid timestamp"},
		{"timestamptz without zone", pgtype.TimestamptzOID, wire.TypeInfo{}, text("2024-01-02 03:04:05"), "invalid timestamptz"},
		{"timestamptz nanoseconds", pgtype.TimestamptzOID, wire.TypeInfo{}, text("2024-01-02 03:04:05.1234567+00"), "invalid timestamptz"},
		{"long value is shortened", pgtype.Int4OID, wire.TypeInfo{}, text(strings.Repeat("x", 1000)), `xxx..."`},
		{"array unterminated", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("{1,2"), "parse array"},
		{"array bad element", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("{1,x}"), "array element 2: invalid int4"},
		{"array ragged", pgtype.Int4ArrayOID, wire.TypeInfo{}, text("{{1},{2,3}}"), "array"},
		{"binary int4 short", pgtype.Int4OID, wire.TypeInfo{}, bin("\x00\x01"), "invalid binary int4"},
		{"binary user type", 16505, compInfo, bin("\x00"), "cannot be decoded"},
		{"binary money", 790, wire.TypeInfo{}, bin("\x00\x00\x00\x00\x00\x00\x00\x01"), "cannot be decoded"},
		{"binary array garbage", pgtype.Int4ArrayOID, wire.TypeInfo{}, bin("\x00\x00\x00\x01"), "parse array"},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &wire.Column{Name: "c", TypeOID: tt.oid, Type: tt.info}
			got, err := d.AppendJSON([]byte("prefix"), col, tt.v)
			if err == nil {
				t.Fatalf("no error, got %s", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if string(got) != "prefix" {
				t.Errorf("buffer changed on error: %q", got)
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"\"\\/", `"\"\\/"`},
		// Jackson's escapes (Debezium): the short ones, else \u00XX in upper
		// case; DEL as it is.
		{"\b\f\n\r\t\x00\x1f\x7f", `"\b\f\n\r\t\u0000\u001F` + "\x7f\""},
		{"é🎉\u2028", "\"é🎉\u2028\""},
		{"a\xffb", "\"a\ufffdb\""},
		{"\xed\xa0\x80", "\"\ufffd\ufffd\ufffd\""}, // a UTF-16 surrogate is not UTF-8
		{"\xc0\xaf", "\"\ufffd\ufffd\""},           // overlong
		{"\xf4\x90\x80\x80", "\"\ufffd\ufffd\ufffd\ufffd\""},
		{"trunc\xe2\x82", "\"trunc\ufffd\ufffd\""},
	}
	for _, tt := range tests {
		if got := AppendString(nil, []byte(tt.in)); string(got) != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := AppendString(nil, tt.in); string(got) != tt.want {
			t.Errorf("AppendString(string %q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzAppendString checks that the output is valid JSON that decodes to what
// encoding/json makes of the same bytes (which also replaces each invalid
// byte with U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\xff", "é\xe2\x82", "\xf0\x9f\x8e\x89", "\u2028<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		if !json.Valid(got) || !utf8.Valid(got) {
			t.Fatalf("invalid JSON for %q: %s", s, got)
		}
		var dec, ref string
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s)
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if dec != ref {
			t.Fatalf("%q: decodes to %q, encoding/json gives %q", s, dec, ref)
		}
	})
}

// FuzzAppendJSON feeds arbitrary text and binary values to the decoders that
// parse: they must never panic, and output must be valid JSON.
func FuzzAppendJSON(f *testing.F) {
	oids := []uint32{
		pgtype.Int4OID, pgtype.NumericOID, pgtype.Float8OID, pgtype.BoolOID, pgtype.JSONBOID,
		pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.TextOID,
		pgtype.Int4ArrayOID, pgtype.TextArrayOID, pgtype.TimestamptzArrayOID, pgtype.JSONBArrayOID,
		pgtype.IntervalOID, pgtype.TimetzOID, pgtype.InetOID, pgtype.UUIDOID, pgtype.NumericArrayOID,
	}
	f.Add(uint8(0), false, []byte("12"))
	f.Add(uint8(7), false, []byte("2024-01-02 03:04:05.5+05:30"))
	f.Add(uint8(9), false, []byte(`{{1,2},{3,NULL}}`))
	f.Add(uint8(10), false, []byte(`{"a\"",NULL,"",b}`))
	f.Add(uint8(9), true, []byte("\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x17\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07"))
	f.Add(uint8(14), true, []byte("\x02\x20\x00\x04\x0a\x00\x00\x01"))
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, which uint8, bin bool, data []byte) {
		col := &wire.Column{Name: "c", TypeOID: oids[int(which)%len(oids)]}
		v := wire.Value{Kind: wire.KindText, Data: data}
		if bin {
			v.Kind = wire.KindBinary
		}
		got, err := d.AppendJSON(nil, col, v)
		if err == nil && !json.Valid(got) {
			t.Fatalf("type %d %q: invalid JSON %s", col.TypeOID, data, got)
		}
	})
}

// TestAppendJSONAllocs guards the hot paths: they must not allocate.
func TestAppendJSONAllocs(t *testing.T) {
	tests := []struct {
		oid uint32
		v   wire.Value
	}{
		{pgtype.Int4OID, text("123456")},
		{pgtype.Int8OID, bin("\x00\x00\x00\x00\x00\x00\x01\x00")},
		{pgtype.TextOID, text("hello \"world\" é\n")},
		{pgtype.BoolOID, text("t")},
		{pgtype.NumericOID, text("12345.678")},
		{pgtype.TimestamptzOID, text("2024-01-02 03:04:05.123456+00")},
		{pgtype.TimestampOID, text("2024-01-02 03:04:05.123456")},
		{pgtype.DateOID, text("2024-01-02")},
		{pgtype.UUIDOID, text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
		{pgtype.JSONBOID, text(`{"a": 1}`)},
	}
	d := NewDecoder()
	buf := make([]byte, 0, 1024)
	for _, tt := range tests {
		col := &wire.Column{TypeOID: tt.oid}
		n := testing.AllocsPerRun(100, func() {
			var err error
			if _, err = d.AppendJSON(buf[:0], col, tt.v); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("type %d: %v allocations per value", tt.oid, n)
		}
	}
}
