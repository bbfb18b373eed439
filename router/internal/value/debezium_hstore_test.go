package value

import (
	"strings"
	"testing"

	"github.com/pgjet/pgjet/shared/wire"
)

// TestHstoreOrder: the order a java.util.HashMap iterates keys put in
// a given order, which Debezium's hstore JSON follows. The expectations
// were printed by OpenJDK 17's HashMap.keySet() for these insertions.
func TestHstoreOrder(t *testing.T) {
	tests := []struct{ put, want string }{
		{"key4|key5", "key5|key4"},
		{"key_#1|key 2", "key_#1|key 2"},
		{"a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q", "a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q"},
		// 16 keys: the table grows from 16 to 32 buckets at the 13th.
		{"name|email|address|city|zip|country|phone|fax|mobile|company|title|dept|manager|notes|created|updated",
			"zip|country|address|notes|manager|city|created|mobile|dept|title|phone|name|company|fax|updated|email"},
		// UTF-16 code units, surrogate pairs, equal hashes ("Aa", "BB").
		{"é|ü|日本|😀|x\ty|Aa|BB|AaAa|BBBB|AaBB|BBAa", "Aa|BB|😀|é|x\ty|日本|ü|AaAa|BBBB|AaBB|BBAa"},
		{"0|16|32|48|64|80|96|112|128|144", "0|144|112|48|16|128|80|96|64|32"},
		// Ten keys in one bucket of 16: a ninth in a bucket grows a small
		// table instead of making the bucket a tree.
		{"k18|k29|k90|k140|k151|k162|k173|k184|k195|k250", "k90|k18|k140|k162|k184|k29|k151|k173|k195|k250"},
		// Keys of one hash ("Aa" and "BB" have the same): their bucket
		// grows the table to 64 buckets, then becomes a tree ordered by
		// String.compareTo, its root first.
		{"BBBBBBAa|AaBBBBAa|BBAaBBAa|AaBBAaBB|BBBBBBBB|AaAaBBAa|BBAaAaAa|AaAaAaAa|BBBBAaAa|BBBBAaBB|AaBBAaAa|AaAaBBBB|BBAaAaBB|AaAaAaBB|AaBBBBBB|BBAaBBBB",
			"BBAaBBAa|BBBBBBAa|AaBBBBAa|AaBBBBBB|AaBBAaBB|BBBBBBBB|AaAaBBAa|BBAaAaAa|BBAaAaBB|AaAaAaAa|AaAaAaBB|BBBBAaAa|BBAaBBBB|BBBBAaBB|AaBBAaAa|AaAaBBBB"},
		{"AaBBAaBBBB|BBBBBBAaAa|AaAaBBAaAa|AaAaAaAaBB|AaBBAaAaBB|AaBBBBAaAa|AaBBBBBBBB|BBAaAaBBBB|BBBBBBBBAa|BBBBAaBBAa|BBBBAaAaAa|BBBBAaAaBB|BBAaAaAaBB|AaAaBBAaBB|AaBBAaBBAa|BBAaBBAaAa|BBAaBBAaBB|BBAaBBBBAa|AaAaAaAaAa|AaAaBBBBBB|AaAaAaBBBB|AaBBBBAaBB|BBBBBBBBBB|AaAaAaBBAa|BBAaAaAaAa|BBBBAaBBBB|AaBBAaAaAa|BBAaAaBBAa|AaAaBBBBAa|AaBBBBBBAa|BBBBBBAaBB|BBAaBBBBBB",
			"AaBBBBBBBB|AaBBAaBBBB|BBBBBBAaAa|AaAaBBAaAa|AaAaAaAaBB|AaAaAaBBBB|AaAaAaBBAa|AaAaAaAaAa|AaBBAaAaBB|AaBBAaBBAa|AaAaBBAaBB|AaAaBBBBAa|AaAaBBBBBB|AaBBAaAaAa|AaBBBBAaAa|AaBBBBAaBB|AaBBBBBBAa|BBAaAaBBBB|BBAaBBAaAa|BBAaBBAaBB|BBAaBBBBAa|BBAaBBBBBB|BBAaAaAaBB|BBAaAaBBAa|BBAaAaAaAa|BBBBBBBBAa|BBBBBBAaBB|BBBBBBBBBB|BBBBAaBBAa|BBBBAaBBBB|BBBBAaAaBB|BBBBAaAaAa"},
		{"AaAaAaAa|k0|AaAaAaBB|k1|AaAaBBAa|k2|AaAaBBBB|k3|AaBBAaAa|k4|AaBBAaBB|k5|AaBBBBAa|k6|AaBBBBBB|k7|BBAaAaAa|k8|BBAaAaBB|k9|BBAaBBAa|k10|BBAaBBBB|k11|BBBBAaAa|k12|BBBBAaBB|k13|BBBBBBAa|k14|BBBBBBBB|k15",
			"AaAaBBBB|AaAaAaAa|AaAaAaBB|AaAaBBAa|AaBBAaAa|AaBBAaBB|AaBBBBAa|AaBBBBBB|BBAaAaAa|BBAaAaBB|BBAaBBAa|BBAaBBBB|BBBBAaAa|BBBBAaBB|BBBBBBAa|BBBBBBBB|k11|k10|k13|k12|k15|k14|k0|k1|k2|k3|k4|k5|k6|k7|k8|k9"},
	}
	for _, tt := range tests {
		var pairs []hstorePair
		for _, k := range strings.Split(tt.put, "|") {
			pairs = append(pairs, hstorePair{key: []byte(k)})
		}
		new(Debezium).sortHstore(pairs)
		var got []string
		for _, p := range pairs {
			got = append(got, string(p.key))
		}
		if g := strings.Join(got, "|"); g != tt.want {
			t.Errorf("put %s\nwant %s\ngot  %s", tt.put, tt.want, g)
		}
	}
}

func TestParseHstore(t *testing.T) {
	e, err := NewDebezium(DebeziumOptions{HStore: HStoreMap})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ in, want string }{
		{``, `{}`},
		{`"a"=>"1"`, `{"a":"1"}`},
		{`"q\"uote"=>"back\\slash", "n"=>NULL`, `{"q\"uote":"back\\slash","n":null}`},
		{`"é"=>"\"", "nl"=>"a` + "\n" + `b"`, `{"é":"\"","nl":"a\nb"}`},
	} {
		got, err := e.AppendValue(nil, &hstoreColumn, textValue(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`a=>"1"`, `"a"=>`, `"a"="1"`, `"a"=>"1`, `"a"=>"1" "b"=>"2"`, `"a"=>NUL`} {
		if got, err := e.AppendValue([]byte("keep"), &hstoreColumn, textValue(bad)); err == nil || string(got) != "keep" {
			t.Errorf("%s: got %s, %v; want an error", bad, got, err)
		}
	}
}

// hstoreColumn is a column of the hstore extension's type, as the
// collector describes it.
var hstoreColumn = wire.Column{Name: "h", TypeOID: 16500, TypeMod: -1, Type: wire.TypeInfo{Schema: "public", Name: "hstore", Kind: 'b'}}

func textValue(s string) wire.Value { return wire.Value{Kind: wire.KindText, Data: []byte(s)} }
