package value

import (
	"testing"

	"github.com/pgjet/pgjet/shared/wire"
)

// TestDebeziumExtensionTypes: values of PostGIS and pgvector types as those
// extensions print them, rendered as Debezium's tests expect (no extension
// is needed: the value is text and the column names its type).
func TestDebeziumExtensionTypes(t *testing.T) {
	ext := func(name string) wire.Column {
		c := wire.Column{Name: "v", TypeOID: 17000, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: name, Kind: 'b'}}
		if name[0] == '_' { // an array
			c.TypeOID, c.Type.ElemOID, c.Type.ElemKind = 17001, 17000, 'b'
		}
		return c
	}
	geometry := `{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,` +
		`"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry"}`
	geography := `{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,` +
		`"name":"io.debezium.data.geometry.Geography","version":1,"doc":"Geography"}`
	sparse := `{"type":"struct","fields":[{"type":"int16","optional":false,"field":"dimensions"},` +
		`{"type":"map","keys":{"type":"int16","optional":false},"values":{"type":"double","optional":false},"optional":false,"field":"vector"}],` +
		`"optional":true,"name":"io.debezium.data.SparseDoubleVector","version":1,"doc":"Sparse double vector"}`
	tests := []struct {
		typ, text, value, schema, from string
	}{
		{"geometry", "0101000020730C00001C7C613255DE6540787AA52C435C42C0", `{"wkb":"AQEAACBzDAAAHHxhMlXeZUB4eqUsQ1xCwA==","srid":3187}`, geometry,
			"AbstractRecordsProducerTest.schemaAndValuesForPostgisTypes: p, 'SRID=3187;POINT(174.9479 -36.7208)'"},
		{"geography", "0105000020E610000001000000010200000002000000A779C7293A2465400B462575025A46C0C66D3480B7FC6440C3D32B65195246C0",
			`{"wkb":"AQUAACDmEAAAAQAAAAECAAAAAgAAAKd5xyk6JGVAC0YldQJaRsDGbTSAt/xkQMPTK2UZUkbA","srid":4326}`, geography,
			"AbstractRecordsProducerTest.schemaAndValuesForPostgisTypes: ml, a MULTILINESTRING geography"},
		{"geometry", "010700000000000000", `{"wkb":"AQcAAAAAAAAA","srid":null}`, geometry,
			"AbstractRecordsProducerTest.schemaAndValuesForPostgisArrayTypes: 'GEOMETRYCOLLECTION EMPTY', no SRID"},
		// PostGIS separates array elements with ':'.
		{"_geometry", "{010700000000000000:01030000000100000005000000B81E85EB51D0644052B81E85EB5147C0713D0AD7A350664052B81E85EB5147C0713D0AD7A35066409A999999993941C0B81E85EB51D064409A999999993941C0B81E85EB51D0644052B81E85EB5147C0:NULL}",
			`[{"wkb":"AQcAAAAAAAAA","srid":null},{"wkb":"AQMAAAABAAAABQAAALgehetR0GRAUrgehetRR8BxPQrXo1BmQFK4HoXrUUfAcT0K16NQZkCamZmZmTlBwLgehetR0GRAmpmZmZk5QcC4HoXrUdBkQFK4HoXrUUfA","srid":null},null]`,
			`{"type":"array","items":` + geometry + `,"optional":true}`,
			"AbstractRecordsProducerTest.schemaAndValuesForPostgisArrayTypes: ga, array of optional Geometry (and a NULL element)"},
		{"_geography", "{0101000020E6100000000000000000F03F0000000000000040}",
			`[{"wkb":"AQEAACDmEAAAAAAAAAAA8D8AAAAAAAAAQA==","srid":4326}]`,
			`{"type":"array","items":` + geography + `,"optional":true}`,
			"PostgresValueConverter.schemaBuilder: geographyArrayOid, array of optional Geography"},
		{"vector", "[1,2,3]", `[1.0,2.0,3.0]`, `{"type":"array","items":{"type":"double","optional":false},"optional":true,"name":"io.debezium.data.DoubleVector","version":1}`,
			"VectorDatabaseIT: f_vector, List.of(1.0, 2.0, 3.0)"},
		{"sparsevec", "{1:201,9:209}/3000", `{"dimensions":3000,"vector":[[1,201.0],[9,209.0]]}`, sparse,
			"VectorDatabaseIT: f_sparsevec, dimensions 3000, Map.of(1, 201.0, 9, 209.0)"},
		// The HashMap's order: 17 and 1 share a bucket of 4 (3 entries),
		// 2 has its own.
		{"sparsevec", "{1:1.5,2:0.1,17:-3e-05}/20", `{"dimensions":20,"vector":[[1,1.5],[17,-3.0E-5],[2,0.1]]}`, sparse,
			"VectorDatabaseTest.shouldParseSparseVector; order of new HashMap<>(3) in OpenJDK 17"},
		{"sparsevec", "{}/5", `{"dimensions":5,"vector":[]}`, sparse, "Vectors.fromSparseVectorString: {} is an empty map"},
		{"halfvec", "[10,20.5,0.1]", `[10.0,20.5,0.1]`, `{"type":"array","items":{"type":"float","optional":false},"optional":true,"name":"io.debezium.data.FloatVector","version":1}`,
			"VectorDatabaseIT: f_halfvec, FloatVector: Float.parseFloat of each element"},
	}
	enc, err := NewDebezium(DebeziumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		col := ext(tt.typ)
		got, err := enc.AppendValue(nil, &col, textValue(tt.text))
		if err != nil || string(got) != tt.value {
			t.Errorf("%s %s: %s, %v\nwant %s (%s)", tt.typ, tt.text, got, err, tt.value, tt.from)
		}
		if schema := string(enc.AppendSchema(nil, &col, true)) + "}"; schema != tt.schema {
			t.Errorf("%s schema\nwant %s\ngot  %s", tt.typ, tt.schema, schema)
		}
	}
	for _, bad := range []struct{ typ, text string }{{"geometry", "0101"}, {"geometry", "01010000zz"}, {"vector", "1,2"}, {"vector", "[1,x]"},
		// Debezium fails on dimensions or indexes beyond a Short.
		{"sparsevec", "{1:1}/40000"}, {"sparsevec", "{40000:1}/50000"}, {"sparsevec", "{1:1}"}, {"sparsevec", "{1=1}/3"}, {"sparsevec", "{1:x}/3"}} {
		col := ext(bad.typ)
		if got, err := enc.AppendValue([]byte("keep"), &col, textValue(bad.text)); err == nil || string(got) != "keep" {
			t.Errorf("%s %q: %s, %v; want an error", bad.typ, bad.text, got, err)
		}
	}
}
