package value

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// dbzColumnExpect is a column whose Connect schema (and, for a NOT NULL
// column, the value Debezium gives the NULL a key-only old row holds for
// it) is taken from Debezium's own tests or source (3.6.1.Final), cited
// in from. The column is created in a real Postgres and described as the
// collector describes it: its type, and what the catalog says of it
// (pgtypes.ReadRelation).
type dbzColumnExpect struct {
	name, def string // def: the column's definition, "v <def>"
	opts      DebeziumOptions
	schema    string
	null      string // "": not checked
	from      string
}

const dbzCatalogDDL = `
CREATE TYPE test_type AS ENUM ('V1', 'V2');
CREATE TYPE enum8684 AS ENUM ('c', 'a', 'b');
CREATE TYPE "Status" AS ENUM ('on', 'off');
CREATE DOMAIN posint AS int NOT NULL;`

const (
	int32Schema = `{"type":"int32","optional":false`
	enumV1V2    = `{"type":"string","optional":false,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"V1,V2"}`
)

var dbzColumnExpects = []dbzColumnExpect{
	// NOT NULL, defaults.
	{name: "serial", def: "serial", schema: int32Schema + `,"default":0}`,
		from: "RecordsStreamProducerIT.shouldStreamEnumAsKnownType: pk SERIAL, SchemaBuilder.int32().defaultValue(0) (nextval(...) is a function: its placeholder)"},
	{name: "smallserial", def: "smallserial", schema: `{"type":"int16","optional":false,"default":0}`,
		from: "AbstractRecordsProducerTest.schemasAndValuesForNumericType: ss SMALLSERIAL, SchemaBuilder.int16().defaultValue((short) 0)"},
	{name: "bigserial", def: "bigserial", schema: `{"type":"int64","optional":false,"default":0}`,
		from: "AbstractRecordsProducerTest.schemasAndValuesForNumericType: bs BIGSERIAL, SchemaBuilder.int64().defaultValue(0L)"},
	{name: "int4 not null", def: "int4 NOT NULL", schema: int32Schema + `}`, null: "0",
		from: "RecordsStreamProducerIT.shouldReceiveNumericTypeAsDoubleWithDefaults: r int4 NOT NULL, Schema.INT32_SCHEMA"},
	{name: "int4 default 2", def: "int4 NOT NULL DEFAULT 2", schema: int32Schema + `,"default":2}`, null: "2",
		from: "RecordsStreamProducerIT.shouldReceiveNumericTypeAsDoubleWithDefaults: r_int int4 NOT NULL DEFAULT 2, defaultValue(2)"},
	{name: "numeric default 1, double", def: "numeric(19, 4) NOT NULL DEFAULT 1", opts: DebeziumOptions{Decimal: DecimalDouble},
		schema: `{"type":"double","optional":false,"default":1.0}`, null: "1.0",
		from: "RecordsStreamProducerIT.shouldReceiveNumericTypeAsDoubleWithDefaults: r_numeric numeric(19, 4) NOT NULL DEFAULT 1, defaultValue(1.0d)"},
	{name: "numeric default 1, precise", def: "numeric(19, 4) NOT NULL DEFAULT 1",
		schema: `{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"4","connect.decimal.precision":"19"},"default":"JxA="}`,
		from:   "PostgresDefaultValueConverter: new BigDecimal(\"1\"), then setScale(4) (PostgresValueConverter.withScaleAdjustedIfNeeded): unscaled 10000 = 0x2710"},
	{name: "numeric default 1, string", def: "numeric(19, 4) NOT NULL DEFAULT 1", opts: DebeziumOptions{Decimal: DecimalString},
		schema: `{"type":"string","optional":false,"default":"1.0000"}`,
		from:   "PostgresValueConverter.convertDecimal: the scale set before the mode's form"},
	{name: "numeric default null", def: "numeric(19, 4) NULL DEFAULT NULL", opts: DebeziumOptions{Decimal: DecimalDouble},
		schema: `{"type":"double","optional":true}`,
		from:   "RecordsStreamProducerIT.shouldReceiveNumericTypeAsDoubleWithNullDefaults: r_numeric, defaultValue(null); PostgresDefaultValueConverterIT.shouldReturnNullForNumericDefaultValue"},
	{name: "int default null", def: "int4 NULL DEFAULT NULL", schema: `{"type":"int32","optional":true}`,
		from: "RecordsStreamProducerIT.shouldReceiveNumericTypeAsDoubleWithNullDefaults: r_int, defaultValue(null)"},
	{name: "numeric without modifier, precise", def: "numeric NOT NULL DEFAULT 1.5",
		schema: `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":false,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal"}`,
		null:   `{"scale":0,"value":"AA=="}`,
		from:   "PostgresDefaultValueConverter.parseDefaultValue: a Struct is no default (KAFKA-12694); fallback BigDecimal.ZERO, stripped"},
	{name: "text default", def: "text DEFAULT 'default'", schema: `{"type":"string","optional":true,"default":"default"}`,
		from: "RecordsStreamProducerIT.shouldReceiveChangesForDefaultValues: default_column TEXT DEFAULT 'default', SchemaBuilder.string().optional().defaultValue(\"default\")"},
	{name: "text not null default", def: "text NOT NULL DEFAULT ''", schema: `{"type":"string","optional":false,"default":""}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldNotPropagateUnchangedToastedData: mandatory_text TEXT NOT NULL DEFAULT '', SchemaBuilder.string().defaultValue(...)"},
	{name: "varchar not null", def: "varchar(25) NOT NULL", schema: `{"type":"string","optional":false}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldStreamEnumsWhenIncludeUnknownDataTypesDisabled: data varchar(25) NOT NULL, Schema.STRING_SCHEMA; fallback \"\""},
	{name: "timestamptz default", def: "timestamptz DEFAULT '2021-03-20 14:44:28 +1'::TIMESTAMPTZ",
		schema: `{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"default":"2021-03-20T13:44:28.000000Z"}`,
		from:   "PostgresConnectorIT.shouldPropagateSchemaColumnDefaultChanges (tstz): readRecordFieldDefault = \"2021-03-20T13:44:28.000000Z\""},
	{name: "timestamptz now()", def: "timestamptz NOT NULL DEFAULT now()",
		schema: `{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"default":"1970-01-01T00:00:00.000000Z"}`,
		from:   "PostgresDefaultValueConverter: now() matches FUNCTION_DEFAULT_PATTERN, placeholder 1970-01-01"},
	{name: "timestamp CURRENT_TIMESTAMP", def: "timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP",
		schema: `{"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1,"default":0}`,
		null:   "0",
		from:   "PostgresDefaultValueConverter: CURRENT_TIMESTAMP is one of CURRENT_DATE_TIMES, placeholder 1970-01-01"},
	{name: "date default", def: "date DEFAULT '2024-02-29'", schema: `{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"default":19782}`,
		from: "PostgresDefaultValueConverter: timestampUtils.toLocalDateTime, then epoch days"},
	{name: "interval default", def: "interval DEFAULT '60 days'::INTERVAL NOT NULL",
		schema: `{"type":"int64","optional":false,"name":"io.debezium.time.MicroDuration","version":1,"default":5184000000000}`,
		from:   "RecordsStreamProducerIT table_with_interval (DBZ-259): time_limit INTERVAL DEFAULT '60 days'::INTERVAL NOT NULL; new PGInterval(\"60 days\")"},
	{name: "bool default", def: "bool NOT NULL DEFAULT true", schema: `{"type":"boolean","optional":false,"default":true}`,
		from: "PostgresDefaultValueConverter: Boolean.parseBoolean(\"true\")"},
	{name: "uuid default", def: "uuid DEFAULT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
		schema: `{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"default":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}`,
		from:   "PostgresDefaultValueConverter: UUID.fromString, then its string"},
	{name: "float8 default", def: "float8 DEFAULT 1.5", schema: `{"type":"double","optional":true,"default":1.5}`,
		from: "PostgresDefaultValueConverter: Double.parseDouble"},
	{name: "money default", def: "money NOT NULL DEFAULT 1", opts: DebeziumOptions{Decimal: DecimalString},
		schema: `{"type":"string","optional":false}`, null: `"0.00"`,
		from: "PostgresDefaultValueConverter has no mapper for money; PostgresValueConverter.convertMoney fallback BigDecimal.ZERO.setScale(2).toString()"},
	{name: "domain not null", def: "posint", schema: int32Schema + `}`, null: "0",
		from: "pgjdbc getColumns: a.attnotnull OR (t.typtype = 'd' AND t.typnotnull); PostgresConnection.readTableColumn column.optional(isNullable)"},

	// Enums: allowed, in their order, and defaults.
	{name: "enum default", def: "test_type NOT NULL DEFAULT 'V2'::test_type", schema: enumV1V2 + `,"default":"V2"}`, null: `"V2"`,
		from: "RecordsStreamProducerIT.shouldEmitEnumColumnDefaultValuesInSchema: Enum.builder(\"V1,V2\").defaultValue(\"V2\")"},
	{name: "enum default without cast", def: "test_type NOT NULL DEFAULT 'V1'", schema: enumV1V2 + `,"default":"V1"}`,
		from: "RecordsStreamProducerIT.shouldStreamEnumsWhenIncludeUnknownDataTypesDisabled: value test_type NOT NULL DEFAULT 'V1', defaultValue(\"V1\")"},
	{name: "enum order", def: "enum8684", schema: `{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"c,a,b"}}`,
		from: "PostgresConnectorIT.shouldCreateEnumSchemaWithLogicalOrder: allowed \"c,a,b\""},
	{name: "quoted enum default", def: `"Status" DEFAULT 'off'`,
		schema: `{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"on,off"},"default":"off"}`,
		from:   "PostgresDefaultValueConverter.extractEnumDefault: 'off'::\"Status\", TypeId.parse unquotes"},
	{name: "enum not null, no default", def: "test_type NOT NULL", schema: enumV1V2 + `}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldStreamEnumAsKnownType: value test_type NOT NULL, Enum.builder(\"V1,V2\"); enum converter convertString, fallback \"\""},
	{name: "enum array", def: "test_type[] NOT NULL",
		schema: `{"type":"array","items":` + enumV1V2 + `},"optional":false}`, null: `[]`,
		from: "RecordsStreamProducerIT.shouldStreamEnumArrayAsKnownType: SchemaBuilder.array(Enum.builder(\"V1,V2\")), NOT NULL; convertArray fallback an empty list"},

	// What a key-only old row's NULLs in NOT NULL columns become: the
	// converters' fallbacks (DBZ-1158), adaptive time precision.
	{name: "timestamp fallback", def: "timestamp NOT NULL", schema: `{"type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1}`, null: "0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: created_at 0L"},
	{name: "timestamptz fallback", def: "timestamptz NOT NULL", schema: `{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1}`, null: `"1970-01-01T00:00:00Z"`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: created_at_tz \"1970-01-01T00:00:00Z\""},
	{name: "time fallback", def: "time NOT NULL", schema: `{"type":"int64","optional":false,"name":"io.debezium.time.MicroTime","version":1}`, null: "0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: ctime 0L"},
	{name: "timetz fallback", def: "timetz NOT NULL", schema: `{"type":"string","optional":false,"name":"io.debezium.time.ZonedTime","version":1}`, null: `"00:00:00Z"`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: ctime_tz \"00:00:00Z\""},
	{name: "date fallback", def: "date NOT NULL", schema: `{"type":"int32","optional":false,"name":"io.debezium.time.Date","version":1}`, null: "0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: cdate 0"},
	{name: "money fallback", def: "money NOT NULL",
		schema: `{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}`, null: `"AA=="`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: cmoney BigDecimal(\"0.00\")"},
	{name: "bits fallback", def: "bit(3) NOT NULL", schema: `{"type":"bytes","optional":false,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"3"}}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsAdaptiveDateTypes: cbits byte[0]"},
	{name: "smallint fallback", def: "smallint NOT NULL", schema: `{"type":"int16","optional":false}`, null: "0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: csmallint (short) 0"},
	{name: "real fallback", def: "real NOT NULL", schema: `{"type":"float","optional":false}`, null: "0.0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: creal 0.f"},
	{name: "bool fallback", def: "bool NOT NULL", schema: `{"type":"boolean","optional":false}`, null: "false",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cbool false"},
	{name: "numeric fallback", def: "numeric(6,2) NOT NULL",
		schema: `{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"6"}}`, null: `"AA=="`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cnumeric BigDecimal(\"0.00\")"},
	{name: "interval fallback", def: "interval NOT NULL", schema: `{"type":"int64","optional":false,"name":"io.debezium.time.MicroDuration","version":1}`, null: "0",
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cinterval 0L"},
	{name: "point fallback", def: "point NOT NULL",
		schema: `{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":false,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)"}`,
		null:   `{"x":0.0,"y":0.0,"wkb":"AQEAAAAAAAAAAAAAAAAAAAAAAAAA","srid":null}`,
		from:   "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cpoint Point.createValue(Point.builder().build(), 0, 0)"},
	{name: "json fallback", def: "json NOT NULL", schema: `{"type":"string","optional":false,"name":"io.debezium.data.Json","version":1}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cjson \"\""},
	{name: "uuid fallback", def: "uuid NOT NULL", schema: `{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cuuid \"\""},
	{name: "varbit fallback", def: "varbit(3) NOT NULL", schema: `{"type":"bytes","optional":false,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"3"}}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cvarbit byte[0]"},
	{name: "inet fallback", def: "inet NOT NULL", schema: `{"type":"string","optional":false}`, null: `""`,
		from: "RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity: cinet \"\""},
	{name: "interval string fallback", def: "interval NOT NULL", opts: DebeziumOptions{Interval: IntervalString},
		schema: `{"type":"string","optional":false,"name":"io.debezium.time.Interval","version":1}`, null: `"P0Y0M0DT0H0M0S"`,
		from: "PostgresValueConverter.convertInterval: fallback Interval.toIsoString(0, 0, 0, 0, 0, BigDecimal 0)"},
}

// TestDebeziumSchemasFromCatalog renders each column's Connect schema,
// optional as the catalog says, with its default and an enum's labels, and
// a NOT NULL column's NULL, and compares them byte for byte with what
// Debezium's tests expect.
func TestDebeziumSchemasFromCatalog(t *testing.T) {
	pg := pgtest.Run(t)
	ctx := context.Background()
	conn := pg.Connect(t)
	if _, err := conn.Exec(ctx, dbzCatalogDDL); err != nil {
		t.Fatal(err)
	}
	for i, c := range dbzColumnExpects {
		t.Run(c.name, func(t *testing.T) {
			table := fmt.Sprintf("dbz_catalog_%d", i)
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (v %s)", table, c.def)); err != nil {
				t.Fatal(err)
			}
			col := catalogColumn(t, conn, table)
			opts := c.opts
			opts.MoneyFractionDigits = 2
			enc, err := NewDebezium(opts)
			if err != nil {
				t.Fatal(err)
			}
			if schema := string(enc.AppendSchema(nil, &col, !col.NotNull)) + "}"; schema != c.schema {
				t.Errorf("schema (default %q)\nwant %s\ngot  %s\n(%s)", col.Default, c.schema, schema, c.from)
			}
			if c.null == "" {
				return
			}
			got, err := enc.AppendValue(nil, &col, wire.Value{Kind: wire.KindNull})
			if err != nil || string(got) != c.null {
				t.Errorf("NULL: %s, %v; want %s\n(%s)", got, err, c.null, c.from)
			}
		})
	}
}

// catalogColumn describes table's column v as the collector does: its
// type (testDB.column), and what the catalog says of it
// (pgtypes.ReadRelation).
func catalogColumn(t *testing.T, conn *pgx.Conn, table string) wire.Column {
	t.Helper()
	ctx := context.Background()
	col := (&testDB{conn: conn}).column(t, table)
	var relid uint32
	if err := conn.QueryRow(ctx, `SELECT $1::regclass::oid`, table).Scan(&relid); err != nil {
		t.Fatal(err)
	}
	facts, err := pgtypes.ReadRelation(ctx, conn, relid)
	if err != nil {
		t.Fatal(err)
	}
	f := facts[col.Name]
	col.NotNull, col.Default, col.PrimaryKey = f.NotNull, f.Default, f.PrimaryKey
	return col
}

// Debezium's reading of default expressions, on the forms the catalog
// prints and on what it makes of odd ones
// (PostgresDefaultValueConverter.extractDefault: the first quoted literal,
// a function's placeholder, NULL casts; PostgresDefaultValueConverterIT).
func TestExtractDefault(t *testing.T) {
	for _, tt := range []struct {
		expr, placeholder, want string
		ok                      bool
	}{
		{"'abc'::text", "", "abc", true},
		{"'it''s'::text", "", "it", true}, // the first pair of quotes, as Debezium reads it
		{"nextval('t_id_seq'::regclass)", "0", "0", true},
		{"now()", "1970-01-01", "1970-01-01", true},
		{"CURRENT_TIMESTAMP", "1970-01-01", "1970-01-01", true},
		{"CURRENT_TIMESTAMP(3)", "1970-01-01", "1970-01-01", true},
		{"(CURRENT_TIMESTAMP)::timestamp(3) without time zone", "1970-01-01", "(CURRENT_TIMESTAMP)::timestamp(3) without time zone", true},
		{"NULL::numeric", "0.0", "", false},
		{"NULL::text", "", "", false},
		{"42", "0", "42", true},
		{"'-1'::integer", "0", "-1", true},
		{"'unterminated", "", "", false},
	} {
		got, ok := extractDefault(tt.expr, tt.placeholder)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("extractDefault(%q) = %q, %v; want %q, %v", tt.expr, got, ok, tt.want, tt.ok)
		}
	}
	// PostgresDefaultValueConverterIT.shouldTrimNumericalDefaultValue...:
	// " 1 " for a number is 1, for text " 1 ".
	enc, err := NewDebezium(DebeziumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		col  wire.Column
		want string
	}{
		{wire.Column{TypeOID: 20, TypeMod: -1, Default: " 1 "}, `{"type":"int64","optional":true,"default":1}`},
		{wire.Column{TypeOID: 25, TypeMod: -1, Default: " 1 "}, `{"type":"string","optional":true,"default":" 1 "}`},
	} {
		if got := string(enc.AppendSchema(nil, &tt.col, true)) + "}"; got != tt.want {
			t.Errorf("%q: %s, want %s", tt.col.Default, got, tt.want)
		}
	}
}
