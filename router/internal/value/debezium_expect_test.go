package value

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/wire"
)

// dbzExpect is one value whose rendering and Connect schema are taken from
// Debezium's own tests or source (3.6.1.Final, debezium-connector-postgres),
// cited in from: the value is stored in a real Postgres and read as
// pgoutput sends it, with the column described as the collector describes
// it (domains resolved through pgtypes).
type dbzExpect struct {
	name, typ, literal string
	opts               DebeziumOptions
	value, schema      string // schema: of an optional (nullable) column
	from               string
}

// dbzDDL creates the types the cases use, as Debezium's tests create them.
const dbzDDL = `
CREATE EXTENSION hstore;
CREATE EXTENSION ltree;
CREATE DOMAIN bit2 AS bit(3);
CREATE DOMAIN varbit2 AS varbit(3);
CREATE DOMAIN numeric2 AS numeric(6,2);
CREATE DOMAIN numeric82 AS numeric(8,2);
CREATE DOMAIN numericex AS numeric82;
CREATE DOMAIN float82 AS float8;
CREATE DOMAIN point2 AS point;`

const (
	bits3Schema    = `{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"3"}}`
	doubleSchema   = `{"type":"double","optional":true}`
	jsonSchema     = `{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1}`
	ltreeSchema    = `{"type":"string","optional":true,"name":"io.debezium.data.Ltree","version":1}`
	durationSchema = `{"type":"int64","optional":true,"name":"io.debezium.time.MicroDuration","version":1}`
	pointSchemaDbz = `{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},` +
		`{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,` +
		`"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)"}`
	hstoreMapSchemaDbz = `{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":true}`
)

var (
	optDoubleDecimal = DebeziumOptions{Decimal: DecimalDouble}
	optHstoreMap     = DebeziumOptions{HStore: HStoreMap}
)

var dbzExpects = []dbzExpect{
	// Domains: the root type, with the nearest domain's modifier.
	{name: "bit(3) domain", typ: "bit2", literal: "B'101'", value: `"BQ=="`, schema: bits3Schema,
		from: "RecordsStreamProducerIT.shouldStreamValuesForAliasLikeBaseTypes: bit_alias, Bits.builder(3), byte{5}"},
	{name: "varbit(3) domain", typ: "varbit2", literal: "B'101'", value: `"BQ=="`, schema: bits3Schema,
		from: "RecordsStreamProducerIT.shouldStreamDomainAliasWithProperModifiers: varbit2, Bits.builder(3), byte{5}"},
	{name: "numeric(6,2) domain, double", typ: "numeric2", literal: "1234.12", opts: optDoubleDecimal, value: `1234.12`, schema: doubleSchema,
		from: "RecordsStreamProducerIT.shouldStreamValuesForAliasLikeBaseTypes: numeric_alias, SpecialValueDecimal DOUBLE, 1234.12"},
	{name: "numeric(6,2) domain, precise", typ: "numeric2", literal: "1234.12", value: `"AeIU"`,
		schema: `{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"6"}}`,
		from:   "PostgresValueConverter.numericSchema: SpecialValueDecimal.builder(PRECISE, column length 6, scale 2), the domain's (PostgresType.getDefaultLength/Scale); 123412 = 0x01E214"},
	{name: "domain of a domain, double", typ: "numericex", literal: "123.45", opts: optDoubleDecimal, value: `123.45`, schema: doubleSchema,
		from: "RecordsStreamProducerIT.shouldStreamValuesForDomainTypeOfDomainType: numericex over numeric82 over numeric(8,2), 123.45"},
	{name: "float8 domain", typ: "float82", literal: "3.14", value: `3.14`, schema: doubleSchema,
		from: "RecordsStreamProducerIT.shouldStreamValuesForAliasLikeBaseTypes: float8_alias, FLOAT64, 3.14"},

	// bit varying without a length.
	{name: "varbit unbounded", typ: "varbit", literal: "B'101'", value: `"BQ=="`,
		schema: `{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"2147483647"}}`,
		from:   "PostgresSchemaIT.shouldLoadSchemaForBuiltinPostgresTypes: bvunlimited1 BIT VARYING, Bits.builder(Integer.MAX_VALUE)"},
	{name: "bit varying unbounded", typ: "bit varying", literal: "B'1'", value: `"AQ=="`,
		schema: `{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"2147483647"}}`,
		from:   "PostgresSchemaIT.shouldLoadSchemaForBuiltinPostgresTypes: bvunlimited2 BIT VARYING, Bits.builder(Integer.MAX_VALUE)"},

	// Intervals past 64 bits of microseconds: MicroDuration.durationMicros
	// returns (long) of a double, and Java's narrowing conversion saturates
	// (JLS 5.1.3).
	{name: "interval past int64", typ: "interval", literal: "'178000000 years'", value: `9223372036854775807`, schema: durationSchema,
		from: "MicroDuration.durationMicros: (long) (numberOfSeconds * 1e6 + micros), saturating"},
	{name: "negative interval past int64", typ: "interval", literal: "'-178000000 years'", value: `-9223372036854775808`, schema: durationSchema,
		from: "MicroDuration.durationMicros: (long) (numberOfSeconds * 1e6 + micros), saturating"},

	// hstore: json (the default) and map, keys in java.util.HashMap order.
	{name: "hstore", typ: "hstore", literal: `'"key" => "val"'::hstore`, value: `"{\"key\":\"val\"}"`, schema: jsonSchema,
		from: "RecordsStreamProducerIT.shouldReceiveHStoreTypeAsJsonString: schemaAndValueFieldForJsonEncodedHStoreType"},
	{name: "hstore several", typ: "hstore", literal: `'"key1" => "val1","key2" => "val2","key3" => "val3"'`,
		value: `"{\"key1\":\"val1\",\"key2\":\"val2\",\"key3\":\"val3\"}"`, schema: jsonSchema,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForJsonEncodedHStoreTypeWithMultipleValues: hs"},
	{name: "hstore[]", typ: "hstore[]", literal: `array['"key4" => "val4","key5" => NULL'::hstore, '"key6" => "val6"']`,
		value: `["{\"key5\":null,\"key4\":\"val4\"}","{\"key6\":\"val6\"}"]`, schema: `{"type":"array","items":` + jsonSchema + `,"optional":true}`,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForJsonEncodedHStoreTypeWithMultipleValues: hsarr (HashMap order: key5 before key4)"},
	{name: "hstore null value", typ: "hstore", literal: `'"key1" => "val1","key2" => NULL'`,
		value: `"{\"key1\":\"val1\",\"key2\":null}"`, schema: jsonSchema,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForJsonEncodedHStoreTypeWithNullValues"},
	{name: "hstore special characters", typ: "hstore", literal: `'"key_#1" => "val 1","key 2" =>" ##123 78"'`,
		value: `"{\"key_#1\":\"val 1\",\"key 2\":\" ##123 78\"}"`, schema: jsonSchema,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForJsonEncodedHStoreTypeWithSpcialCharacters"},
	{name: "hstore map", typ: "hstore", literal: `'"key1" => "val1","key2" => NULL'`, opts: optHstoreMap,
		value: `{"key1":"val1","key2":null}`, schema: hstoreMapSchemaDbz,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForMapEncodedHStoreTypeWithNullValues (hstore.handling.mode map)"},
	{name: "hstore[] map", typ: "hstore[]", literal: `array['"key4" => "val4","key5" => NULL'::hstore, '"key6" => "val6"']`, opts: optHstoreMap,
		value: `[{"key5":null,"key4":"val4"},{"key6":"val6"}]`, schema: `{"type":"array","items":` + hstoreMapSchemaDbz + `,"optional":true}`,
		from: "AbstractRecordsProducerTest.schemaAndValueFieldForMapEncodedHStoreTypeWithMultipleValues: hsarr"},

	// ltree.
	{name: "ltree", typ: "ltree", literal: "'Top.Collections.Pictures.Astronomy.Galaxies'", value: `"Top.Collections.Pictures.Astronomy.Galaxies"`,
		schema: ltreeSchema, from: "AbstractRecordsProducerTest.schemasAndValuesForCustomTypes: lt, Ltree.builder()"},
	{name: "ltree[]", typ: "ltree[]", literal: `'{"Ship.Frigate","Ship.Destroyer"}'`, value: `["Ship.Frigate","Ship.Destroyer"]`,
		schema: `{"type":"array","items":` + ltreeSchema + `,"optional":true}`,
		from:   "AbstractRecordsProducerTest.schemasAndValuesForCustomTypes: lt_array, array of Ltree"},

	// point.
	{name: "point", typ: "point", literal: "'(1,1)'", value: `{"x":1.0,"y":1.0,"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAPA/","srid":null}`, schema: pointSchemaDbz,
		from: "AbstractRecordsProducerTest.schemaAndValuesForGeomTypes: p, Point.createValue(pointSchema, 1, 1)"},
	{name: "point domain", typ: "point2", literal: "'(1,1)'", value: `{"x":1.0,"y":1.0,"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAPA/","srid":null}`, schema: pointSchemaDbz,
		from: "RecordsStreamProducerIT.shouldStreamValuesForAliasLikeBaseTypes: point_alias, Point.createValue(Point.builder().build(), 1, 1)"},
}

// TestDebeziumFollowsDebeziumTests renders each case's value and schema
// and compares them byte for byte with what Debezium's tests expect.
func TestDebeziumFollowsDebeziumTests(t *testing.T) {
	db := setupValues(t)
	ctx := context.Background()
	if _, err := db.conn.Exec(ctx, dbzDDL); err != nil {
		t.Fatalf("%v (the hstore and ltree extensions ship with Postgres's contrib modules)", err)
	}
	for i, c := range dbzExpects {
		t.Run(c.name, func(t *testing.T) {
			table := fmt.Sprintf("dbz_expect_%d", i)
			if _, err := db.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %[1]s (v %[2]s); INSERT INTO %[1]s VALUES (%[3]s)", table, c.typ, c.literal)); err != nil {
				t.Fatal(err)
			}
			col := db.column(t, table)
			var text []byte
			if err := db.conn.QueryRow(ctx, "SELECT v FROM "+table, pgx.QueryResultFormats{pgx.TextFormatCode}).Scan(&text); err != nil {
				t.Fatal(err)
			}
			opts := c.opts
			opts.MoneyFractionDigits = 2
			enc, err := NewDebezium(opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.AppendValue(nil, &col, wire.Value{Kind: wire.KindText, Data: text})
			if err != nil {
				t.Fatalf("%q: %v", text, err)
			}
			if string(got) != c.value {
				t.Errorf("%q\nwant %s\ngot  %s\n(%s)", text, c.value, got, c.from)
			}
			if schema := string(enc.AppendSchema(nil, &col, true)) + "}"; schema != c.schema {
				t.Errorf("schema\nwant %s\ngot  %s\n(%s)", c.schema, schema, c.from)
			}
		})
	}
}
