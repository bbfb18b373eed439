package jsoncmp

import (
	"strings"
	"testing"
)

func TestEqual(t *testing.T) {
	tests := []struct {
		name      string
		want, got string
		equal     bool
		diff      string // substring of the report when not equal
	}{
		{"same", `{"a":1}`, `{"a":1}`, true, ""},
		{"member order", `{"a":1,"b":[true,null]}`, `{"b":[true,null],"a":1}`, true, ""},
		{"whitespace", `{"a": [1, 2]}`, "{\"a\":[1,2]}\n", true, ""},
		{"trailing zeros", `1.50`, `1.5`, true, ""},
		{"exponent", `100`, `1e2`, true, ""},
		{"negative exponent", `0.001`, `1E-3`, true, ""},
		{"negative zero", `0`, `-0`, true, ""},
		{"huge exact", `12345678901234567890123456789012345678901`, `12345678901234567890123456789012345678901.0`, true, ""},
		{"huge differs in last digit", `12345678901234567890123456789012345678901`, `12345678901234567890123456789012345678902`, false, "want 1234"},
		{"float rounding is a difference", `0.1`, `0.1000000000000000055511151231257827`, false, "$: want 0.1"},
		{"tiny", `1e-300`, `1.0e-300`, true, ""},
		{"huge exponent compares literally", `1e999999999`, `10e999999998`, false, ""},
		{"number vs string", `1`, `"1"`, false, "want number 1, got string"},
		{"NaN strings", `"NaN"`, `"NaN"`, true, ""},
		{"NaN vs number", `"NaN"`, `0`, false, ""},
		{"string differs", `{"s":"a"}`, `{"s":"b"}`, false, `$.s: want "a", got "b"`},
		{"escapes decode", `"\u00e9\n"`, "\"é\\n\"", true, ""},
		{"missing key", `{"a":1,"b":2}`, `{"a":1}`, false, "$.b: missing"},
		{"extra key", `{"a":1}`, `{"a":1,"c":3}`, false, "$.c: unexpected"},
		{"odd key path", `{"a b":1}`, `{"a b":2}`, false, `$["a b"]: want 1, got 2`},
		{"array length", `[1,2]`, `[1]`, false, "want 2 elements, got 1"},
		{"nested path", `{"a":[{"b":true}]}`, `{"a":[{"b":false}]}`, false, "$.a[0].b: want true, got false"},
		{"null vs missing", `{"a":null}`, `{}`, false, "$.a: missing"},
		{"null vs string", `null`, `"null"`, false, ""},
		{"duplicate key", `{"a":1}`, `{"a":1,"a":1}`, false, "duplicate object key"},
		{"invalid json", `{"a":1}`, `{"a":}`, false, "invalid got"},
		{"trailing data", `1`, `1 2`, false, "trailing data"},
		{"invalid utf8", `"a"`, "\"\xff\"", false, "not valid UTF-8"},

		{"timestamptz Z vs offset", `"2024-01-02T03:04:05.123456+00:00"`, `"2024-01-02T03:04:05.123456Z"`, true, ""},
		{"timestamptz other offset", `"2024-01-02T08:34:05+05:30"`, `"2024-01-02T03:04:05Z"`, true, ""},
		{"timestamptz short offset", `"2024-01-02 03:04:05-07"`, `"2024-01-02T10:04:05Z"`, true, ""},
		{"timestamptz second offset", `"2024-01-02T03:04:05+00:00:30"`, `"2024-01-02T03:03:35Z"`, true, ""},
		{"timestamptz differs", `"2024-01-02T03:04:05+01:00"`, `"2024-01-02T03:04:05Z"`, false, "want \"2024"},
		{"timestamp fraction", `"2024-01-02 03:04:05.500000"`, `"2024-01-02T03:04:05.5"`, true, ""},
		{"timestamp microsecond off", `"2024-01-02T03:04:05.123456"`, `"2024-01-02T03:04:05.123457"`, false, ""},
		{"zone vs no zone", `"2024-01-02T03:04:05"`, `"2024-01-02T03:04:05Z"`, false, ""},
		{"not normalized", `"2024-13-01T00:00:00"`, `"2025-01-01T00:00:00"`, false, ""},
		{"feb 30", `"2024-02-30T00:00:00"`, `"2024-03-01T00:00:00"`, false, ""},
		{"bad offset", `"2024-01-02T03:04:05+0:530"`, `"2024-01-02T03:04:05+00:05:30"`, false, ""},
		{"date only compares exactly", `"2024-01-02"`, `"2024-1-2"`, false, ""},
		{"BC compares exactly", `"0044-03-15T00:00:00 BC"`, `"0044-03-15T00:00:00 BC"`, true, ""},
		{"infinity", `"infinity"`, `"infinity"`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eq, diff := Equal([]byte(tt.want), []byte(tt.got))
			if eq != tt.equal {
				t.Fatalf("Equal(%s, %s) = %v (%s), want %v", tt.want, tt.got, eq, diff, tt.equal)
			}
			if eq && diff != "" {
				t.Errorf("equal but report %q", diff)
			}
			if !eq && !strings.Contains(diff, tt.diff) {
				t.Errorf("report %q does not mention %q", diff, tt.diff)
			}
			// Equality is symmetric.
			if eq2, _ := Equal([]byte(tt.got), []byte(tt.want)); eq2 != eq && !strings.Contains(tt.diff, "invalid") {
				t.Errorf("Equal is not symmetric for %s / %s", tt.want, tt.got)
			}
		})
	}
}

func TestEqualReportsSeveralDifferences(t *testing.T) {
	var want, got strings.Builder
	want.WriteString("[")
	got.WriteString("[")
	for i := range 30 {
		if i > 0 {
			want.WriteString(",")
			got.WriteString(",")
		}
		want.WriteString("1")
		got.WriteString("2")
	}
	want.WriteString("]")
	got.WriteString("]")
	eq, diff := Equal([]byte(want.String()), []byte(got.String()))
	if eq {
		t.Fatal("equal")
	}
	lines := strings.Split(diff, "\n")
	if len(lines) != maxDiffs+1 || !strings.Contains(lines[maxDiffs], "10 more") {
		t.Errorf("report has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}
