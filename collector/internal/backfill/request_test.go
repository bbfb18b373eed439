package backfill

import (
	"slices"
	"testing"
)

// Tables are stored as the collector names them, whatever quoting they
// were asked with: the engine finds a table's progress by that name (a
// quoted request once made it look up nothing and panic).
func TestCanonicalTableNames(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		bare bool
		want []string
		err  bool
	}{
		{in: []string{`"public"."users"`, `public."users"`, "public.users"}, want: []string{"public.users", "public.users", "public.users"}},
		{in: []string{`public."my.t"`, `"My Schema".t`}, want: []string{`public."my.t"`, "My Schema.t"}},
		{in: []string{"users"}, bare: true, want: []string{"public.users"}},
		{in: []string{"users"}, err: true},
		{in: []string{"a.b.c"}, err: true},
	} {
		got, err := canonical(tt.in, tt.bare)
		if (err != nil) != tt.err || !tt.err && !slices.Equal(got, tt.want) {
			t.Errorf("canonical(%q, %v) = %q, %v; want %q (error %v)", tt.in, tt.bare, got, err, tt.want, tt.err)
		}
	}
}
