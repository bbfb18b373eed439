package value

import (
	"encoding/json"
	"strings"
	"testing"
)

var jsonCases = []string{
	``, ` `, `null`, ` true `, `false`, `nul`, `truex`, `"a"`, `"`, `"\"`, `"\\"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`,
	`"\x"`, "\"a\x01b\"", "\"\x1f\"", "\" \"", "\"\xff\xfe\"", `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`, `-1.25e-7`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,[2,[3]]]`, `[`, `]`, `{}`, `{ }`, `{"a":1}`, `{"a" : [1, {"b": null}] }`,
	`{"a":}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `{"a":1,"b"}`, `{"a":1}}`, `{"a":1} x`, `1 2`, "\t\n\r[1]\r\n", `[1]x`,
	`{"k": 123, "tag": "order-123", "items": [1, 2, 3], "note": "xxxxxxxx"}`,
}

// validJSON gives encoding/json.Valid's answer, nesting limit included.
func TestValidJSONMatchesStdlib(t *testing.T) {
	cases := append([]string{}, jsonCases...)
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		cases = append(cases, strings.Repeat("[", depth)+strings.Repeat("]", depth))
		cases = append(cases, strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth))
		cases = append(cases, strings.Repeat("[", depth-1)+"{}"+strings.Repeat("]", depth-1))
	}
	for _, c := range cases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// A jsonb document like the benchmark's wide rows (60 fields of 32 hex
// digits) and like its OLTP rows.
func benchDocs() map[string][]byte {
	var wide strings.Builder
	wide.WriteString("{")
	for i := range 60 {
		if i > 0 {
			wide.WriteString(", ")
		}
		wide.WriteString(`"field_` + strings.Repeat("7", 1+i%2) + `": "0cc175b9c0f1b6a831c399e269772661"`)
	}
	wide.WriteString("}")
	return map[string][]byte{
		"wide": []byte(wide.String()),
		"oltp": []byte(`{"k": 123456, "tag": "order-123456", "note": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "items": [1, 2, 3]}`),
	}
}

func BenchmarkValidJSON(b *testing.B) {
	for name, doc := range benchDocs() {
		for _, v := range []struct {
			name  string
			valid func([]byte) bool
		}{{"validJSON", validJSON}, {"json.Valid", json.Valid}} {
			b.Run(name+"/"+v.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc)))
				for range b.N {
					if !v.valid(doc) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
