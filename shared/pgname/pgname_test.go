package pgname

import (
	"strings"
	"testing"
)

func TestParseTable(t *testing.T) {
	for _, tc := range []struct {
		in     string
		bare   bool
		schema string
		name   string
		err    string
	}{
		{in: "public.users", schema: "public", name: "users"},
		{in: "Sales.Orders", schema: "Sales", name: "Orders"}, // as written
		{in: "users", bare: true, schema: "public", name: "users"},
		{in: "users", err: "use schema.table"},
		{in: `"my.schema".t`, schema: "my.schema", name: "t"},
		{in: `public."my.table"`, schema: "public", name: "my.table"},
		{in: `"a,b"."c""d"`, schema: "a,b", name: `c"d`},
		{in: `"".t`, err: "empty part"},
		{in: " public.users ", schema: "public", name: "users"},
		{in: "public.my.table", err: `3 dot-separated parts; a schema or table whose name holds a dot is written in double quotes`},
		{in: `"my.schema.t`, err: "not closed"},
		{in: `my"schema.t`, err: "quote inside an unquoted name"},
		{in: `"my"schema.t`, err: "text after a closing quote"},
		{in: ".t", err: "empty part"},
		{in: "public.", err: "empty part"},
	} {
		got, err := ParseTable(tc.in, tc.bare)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Schema != tc.schema || got.Name != tc.name {
			t.Errorf("%s: %+v %v, want %s . %s", tc.in, got, err, tc.schema, tc.name)
			continue
		}
		// String reads back to the same name.
		again, err := ParseTable(got.String(), false)
		if err != nil || again != got {
			t.Errorf("%s: String %q reads back as %+v %v", tc.in, got.String(), again, err)
		}
	}
	if id := (Table{"my.schema", `t"x`}).Ident(); id != `"my.schema"."t""x"` {
		t.Errorf("Ident = %s", id)
	}
}

func TestSplitList(t *testing.T) {
	got, err := SplitList(` public.a, "x,y".b ,,"q""".c`)
	if err != nil || strings.Join(got, "|") != `public.a|"x,y".b|"q""".c` {
		t.Errorf("%q %v", got, err)
	}
	if _, err := SplitList(`"open.a, b`); err == nil {
		t.Error("unclosed quote accepted")
	}
}
