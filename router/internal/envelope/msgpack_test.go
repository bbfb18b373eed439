package envelope

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

func newMsgpack(t testing.TB, name string, settings map[string]any) Renderer {
	t.Helper()
	r, err := New(name, Options{Encoding: "msgpack", Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// msgpackOutput renders ev in msgpack with r and in JSON with j, checks
// they say the same (checkTranscoded) and that Document is the JSON, and
// returns the golden form: headers, length, hex dump, decoded document.
func msgpackOutput(t *testing.T, r, j Renderer, ev *Event, keyHeader string) []byte {
	t.Helper()
	body, err := r.Append([]byte("keep"), ev)
	if err != nil {
		t.Fatal(err)
	}
	body = body[len("keep"):]
	h := HeaderOf(r, ev)
	want, err := j.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	checkTranscoded(t, want, body)
	if doc := r.Document([]byte("x"), ev, body); string(doc) != "x"+string(want) {
		t.Errorf("document %s, want the JSON %s", doc, want)
	}
	if ct := h.Get("Content-Type"); ct != "application/vnd.msgpack" {
		t.Errorf("Content-Type %q", ct)
	}
	if jk, mk := HeaderOf(j, ev).Get(keyHeader), h.Get(keyHeader); keyHeader != "" && jk != mk {
		t.Errorf("key header %q, JSON's %q", mk, jk)
	}
	var out strings.Builder
	for _, name := range []string{"Content-Type", keyHeader} {
		if v := h.Get(name); name != "" && v != "" {
			out.WriteString(name + ": " + v + "\n")
		}
	}
	fmt.Fprintf(&out, "bytes: %d (JSON %d)\n%s", len(body), len(want), hex.Dump(body))
	out.WriteString(msgpackDump(t, body) + "\n")
	return []byte(out.String())
}

func TestMsgpackNativeGolden(t *testing.T) {
	r, j := newMsgpack(t, "native", nil), NewNative()
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			ev := gc.ev
			ev.Source = source
			if ev.Tx == nil {
				ev.Tx = tx
			}
			golden(t, filepath.Join("testdata", "msgpack", "native", gc.name+".golden"), msgpackOutput(t, r, j, &ev, ""))
		})
	}
	for name, ev := range metaEvents() {
		t.Run(name, func(t *testing.T) {
			golden(t, filepath.Join("testdata", "msgpack", "native", name+".golden"), msgpackOutput(t, r, j, ev, ""))
		})
	}
}

func TestMsgpackDebeziumGolden(t *testing.T) {
	for _, set := range []string{"default", "schema"} {
		var settings map[string]any
		if set == "schema" {
			settings = map[string]any{"schema": true}
		}
		r, j := newMsgpack(t, "debezium", settings), newTestDebezium(t, settings)
		for _, gc := range debeziumCases {
			t.Run(set+"/"+gc.name, func(t *testing.T) {
				ev := gc.ev
				ev.Source = source
				if ev.Tx == nil {
					ev.Tx = tx
				}
				golden(t, filepath.Join("testdata", "msgpack", "debezium", set, gc.name+".golden"), msgpackOutput(t, r, j, &ev, DefaultKeyHeader))
			})
		}
		for name, ev := range metaEvents() {
			if !Renders("debezium", ev.Kind) {
				continue
			}
			t.Run(set+"/"+name, func(t *testing.T) {
				golden(t, filepath.Join("testdata", "msgpack", "debezium", set, name+".golden"), msgpackOutput(t, r, j, ev, DefaultKeyHeader))
			})
		}
	}
}

// The round trip over everything the renderers produce from hostile
// content, in every Debezium option set.
func TestMsgpackHostileRoundTrip(t *testing.T) {
	rs := []struct{ mp, js Renderer }{{newMsgpack(t, "native", nil), NewNative()}}
	for _, set := range debeziumOptionSets {
		rs = append(rs, struct{ mp, js Renderer }{newMsgpack(t, "debezium", set.settings), newTestDebezium(t, set.settings)})
	}
	for _, s := range hostile {
		for _, ev := range hostileEvents(s) {
			for _, r := range rs {
				want, err := r.js.Append(nil, &ev)
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.mp.Append(nil, &ev)
				if err != nil {
					t.Fatalf("%q: %v", s, err)
				}
				checkTranscoded(t, want, got)
			}
		}
	}
}

func TestMsgpackEncodingOption(t *testing.T) {
	for _, name := range []string{"native", "debezium"} {
		r, err := New(name, Options{Encoding: "json"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.(*msgpackRenderer); ok {
			t.Errorf("%s json: got the msgpack renderer", name)
		}
		if _, err := New(name, Options{Encoding: "avro"}); err == nil || !strings.Contains(err.Error(), `encoding: "avro"`) {
			t.Errorf("%s avro: %v", name, err)
		}
	}
	_, err := New("cloudevents", Options{Encoding: "msgpack"})
	if err == nil || err.Error() != `encoding: "msgpack": the cloudevents envelope is JSON only (msgpack: native, debezium)` {
		t.Errorf("cloudevents msgpack: %v", err)
	}
}

// Numbers by the rule of transcoder, and strings as encoding/json reads
// them.
func TestMsgpackValues(t *testing.T) {
	tests := []struct{ json, dump string }{
		{`0`, `0`}, {`-0`, `0`}, {`127`, `127`}, {`128`, `128`}, {`-32`, `-32`}, {`-33`, `-33`},
		{`18446744073709551615`, `18446744073709551615`},
		{`18446744073709551616`, `"18446744073709551616"`}, // 2^64 prints as 18446744073709552000
		{`18446744073709552000`, `float64(1.8446744073709552e+19)`},
		{`-9223372036854775808`, `-9223372036854775808`},
		{`-9223372036854775809`, `"-9223372036854775809"`},
		{`1234567890.50`, `float64(1.2345678905e+09)`},
		{`0.1`, `float64(0.1)`}, {`-0.0`, `float64(-0)`}, {`1e3`, `float64(1000)`}, {`2.0`, `float64(2)`},
		{`3.4028235E38`, `float64(3.4028235e+38)`},
		{`12345678901234567890.1234567890`, `"12345678901234567890.1234567890"`},
		{`9007199254740993`, `9007199254740993`},
		{`9007199254740993.0`, `"9007199254740993.0"`},
		{`1e400`, `"1e400"`}, {`1e-400`, `"1e-400"`}, {`0e999999999999`, `float64(0)`},
		{`5e-324`, `float64(5e-324)`}, {`4.9406564584124654e-324`, `"4.9406564584124654e-324"`},
		{`"a\"\\\/\b\f\n\r\t\u00e9\ud83c\udf89"`, strconv.Quote("a\"\\/\b\f\n\r\té🎉")},
		{`"\ud83c x \udf89 \ud83c\u0041"`, strconv.Quote("\uFFFD x \uFFFD \uFFFDA")},
		{"\"\xff\xe2\x82\"", strconv.Quote("\uFFFD\uFFFD\uFFFD")},
		{` { "a" : [ ] , "b" : { } , "c" : [ true , false , null ] } `, `{"a":[],"b":{},"c":[true,false,null]}`},
	}
	var tc transcoder
	for _, tt := range tests {
		b, err := tc.append(nil, []byte(tt.json))
		if err != nil {
			t.Errorf("%s: %v", tt.json, err)
			continue
		}
		if got := msgpackDump(t, b); got != tt.dump {
			t.Errorf("%s: got %s, want %s", tt.json, got, tt.dump)
		}
		checkTranscoded(t, []byte(tt.json), b)
	}
}

// Containers get the header their size needs, around each size limit.
func TestMsgpackContainerSizes(t *testing.T) {
	var tc transcoder
	for _, n := range []int{15, 16, 17, 65535, 65536} {
		var arr, obj strings.Builder
		arr.WriteString(`[[`)
		obj.WriteString(`[{`)
		for i := range n {
			if i > 0 {
				arr.WriteByte(',')
				obj.WriteByte(',')
			}
			fmt.Fprintf(&arr, `%d`, i)
			fmt.Fprintf(&obj, `"k%d":%d`, i, i)
		}
		arr.WriteString(`],"x"]`)
		obj.WriteString(`},"x"]`)
		for _, js := range []string{arr.String(), obj.String()} {
			b, err := tc.append([]byte("keep"), []byte(js))
			if err != nil {
				t.Fatal(err)
			}
			checkTranscoded(t, []byte(js), b[len("keep"):])
		}
	}
}

func TestMsgpackInvalid(t *testing.T) {
	var tc transcoder
	for _, s := range []string{``, ` `, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `01`, `-`, `1.`, `1e`, `.5`, `tru`, `nul`,
		`"abc`, "\"a\x01\"", `"\x"`, `"\u12"`, `[1 2]`, `1 2`, `]`, `[}`, `{]`, `"\`} {
		b, err := tc.append([]byte("keep"), []byte(s))
		if err == nil {
			t.Errorf("%q: no error", s)
		}
		if string(b) != "keep" {
			t.Errorf("%q: dst became %q", s, b)
		}
	}
}

// FuzzMsgpackTranscode: any valid JSON transcodes, and vmihailenco/msgpack
// decodes it to what encoding/json decodes the JSON to, in the same order,
// numbers by the rule of transcoder.
func FuzzMsgpackTranscode(f *testing.F) {
	for _, gc := range goldenCases {
		ev := gc.ev
		ev.Source = source
		if ev.Tx == nil {
			ev.Tx = tx
		}
		b, err := NewNative().Append(nil, &ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`-0.0e-0`, `1e400`, `[18446744073709551616,-9223372036854775809]`, `"\ud800\udc00\udc00"`, "\"\xed\xa0\x80\"",
		`12345678901234567890.1234567890`, `0.000000000000000000000000001e27`} {
		f.Add([]byte(s))
	}
	var tc transcoder
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := tc.append([]byte("keep"), data)
		if !json.Valid(data) {
			if err != nil && string(b) != "keep" {
				t.Fatalf("dst became %q", b)
			}
			return
		}
		if err != nil {
			if bytes.Count(data, []byte("[")) > 9000 || bytes.Count(data, []byte("{")) > 9000 {
				return
			}
			t.Fatalf("%v: %q", err, data)
		}
		checkTranscoded(t, data, b[len("keep"):])
	})
}

// checkTranscoded checks that mp, the transcoding of js, decodes with
// vmihailenco/msgpack to what json.Unmarshal (UseNumber) makes of js, and
// in the same order.
func checkTranscoded(t testing.TB, js, mp []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var jv any
	if err := d.Decode(&jv); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	mv, err := msgpack.NewDecoder(bytes.NewReader(mp)).DecodeInterface()
	if err != nil {
		t.Fatalf("decode msgpack: %v\n%s", err, js)
	}
	if path, ok := sameValue(jv, mv); !ok {
		t.Fatalf("differs at %s:\njson    %s\nmsgpack %s", path, js, msgpackDump(t, mp))
	}
	if jd, md := jsonDump(t, js), msgpackDump(t, mp); jd != md {
		t.Fatalf("order or values differ:\njson    %s\nmsgpack %s", jd, md)
	}
}

// sameValue compares a value of json.Unmarshal with one of msgpack's
// DecodeInterface.
func sameValue(jv, mv any) (string, bool) {
	switch j := jv.(type) {
	case map[string]any:
		m, ok := mv.(map[string]any)
		if !ok || len(m) != len(j) {
			return "", false
		}
		for k, v := range j {
			if p, ok := sameValue(v, m[k]); !ok {
				return strconv.Quote(k) + "." + p, false
			}
		}
		return "", true
	case []any:
		m, ok := mv.([]any)
		if !ok || len(m) != len(j) {
			return "", false
		}
		for i, v := range j {
			if p, ok := sameValue(v, m[i]); !ok {
				return strconv.Itoa(i) + "." + p, false
			}
		}
		return "", true
	case json.Number:
		return string(j), numberDump(string(j)) == scalarDump(mv)
	}
	return "", jv == mv
}

// numberDump says how the rule of transcoder renders the JSON number s,
// found without its code: big.Rat compares decimal values.
func numberDump(s string) string {
	if !strings.ContainsAny(s, ".eE") {
		if n, ok := new(big.Int).SetString(s, 10); ok && (n.IsInt64() || n.IsUint64()) {
			return n.String()
		}
	}
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	e, _ := strconv.Atoi(exp)
	if zero := strings.Trim(mant, "-0.") == ""; zero {
		f, _ := strconv.ParseFloat(s, 64)
		return scalarDump(f)
	} else if e > 10000 || e < -10000 || exp != "" && e == 0 && strings.Trim(exp, "+-0") != "" {
		// Beyond float64's range by far (or beyond int's): big.Rat would
		// take forever.
		return strconv.Quote(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err == nil {
		want, _ := new(big.Rat).SetString(s)
		back, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
		if want.Cmp(back) == 0 {
			return scalarDump(f)
		}
	}
	return strconv.Quote(s)
}

func scalarDump(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case float64:
		return "float64(" + strconv.FormatFloat(v, 'g', -1, 64) + ")"
	case float32:
		return "float32!"
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("unexpected %T", v)
}

// jsonDump renders js in the form of msgpackDump, in its order.
func jsonDump(t testing.TB, js []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var b strings.Builder
	var walk func()
	walk = func() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch v := tok.(type) {
		case json.Delim:
			b.WriteByte(byte(v))
			for i := 0; d.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if v == '{' {
					k, _ := d.Token()
					b.WriteString(strconv.Quote(k.(string)) + ":")
				}
				walk()
			}
			end, _ := d.Token()
			b.WriteByte(byte(end.(json.Delim)))
		case json.Number:
			b.WriteString(numberDump(string(v)))
		default:
			b.WriteString(scalarDump(v))
		}
	}
	walk()
	return b.String()
}

// msgpackDump renders a MessagePack value as JSON in its order, floats as
// float64(...), with vmihailenco/msgpack's decoder.
func msgpackDump(t testing.TB, mp []byte) string {
	t.Helper()
	d := msgpack.NewDecoder(bytes.NewReader(mp))
	var b strings.Builder
	var walk func()
	walk = func() {
		c, err := d.PeekCode()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			n, _ := d.DecodeMapLen()
			b.WriteByte('{')
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				if c, _ := d.PeekCode(); !msgpcode.IsString(c) {
					t.Fatalf("key of code %#x", c)
				}
				walk()
				b.WriteByte(':')
				walk()
			}
			b.WriteByte('}')
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, _ := d.DecodeArrayLen()
			b.WriteByte('[')
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				walk()
			}
			b.WriteByte(']')
		default:
			v, err := d.DecodeInterface()
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(scalarDump(v))
		}
	}
	walk()
	if _, err := d.PeekCode(); err == nil {
		t.Fatalf("bytes after the value: % x", mp)
	}
	return b.String()
}

// BenchmarkMsgpack renders BenchmarkNativeInsert's insert in native JSON
// and msgpack, and the transcoding alone; prescan is what counting the
// elements of every container in a first pass would add.
func BenchmarkMsgpack(b *testing.B) {
	ev := benchInsert()
	js, err := NewNative().Append(nil, &ev)
	if err != nil {
		b.Fatal(err)
	}
	var tc transcoder
	mp, err := tc.append(nil, js)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("native/json", func(b *testing.B) { benchRender(b, NewNative(), &ev, false) })
	b.Run("native/json+header", func(b *testing.B) { benchRender(b, NewNative(), &ev, true) })
	b.Run("native/json+header+content-type", func(b *testing.B) { benchRender(b, contentTyped{NewNative()}, &ev, true) })
	b.Run("native/msgpack", func(b *testing.B) { benchRender(b, newMsgpack(b, "native", nil), &ev, false) })
	b.Run("native/msgpack+header", func(b *testing.B) { benchRender(b, newMsgpack(b, "native", nil), &ev, true) })
	b.Run("debezium/json", func(b *testing.B) { benchRender(b, newTestDebezium(b, nil), &ev, false) })
	b.Run("debezium/msgpack", func(b *testing.B) { benchRender(b, newMsgpack(b, "debezium", nil), &ev, false) })
	b.Run("transcode", func(b *testing.B) {
		var tc transcoder
		out := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			out, _ = tc.append(out[:0], js)
		}
		b.SetBytes(int64(len(js)))
	})
	b.Run("prescan", func(b *testing.B) {
		counts := make([]int, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			counts = prescan(counts[:0], js)
		}
		b.SetBytes(int64(len(js)))
	})
	b.Run("vmihailenco-encoder", func(b *testing.B) {
		// The same document through msgpack.Encoder's helpers, given its
		// values already parsed: the emitting alone.
		toks := tokens(b, mp)
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			for _, tk := range toks {
				switch tk.kind {
				case 'm':
					enc.EncodeMapLen(tk.n)
				case 'a':
					enc.EncodeArrayLen(tk.n)
				case 's':
					enc.EncodeString(tk.s)
				case 'i':
					enc.EncodeInt(int64(tk.n))
				case 'f':
					enc.EncodeFloat64(tk.f)
				case 'b':
					enc.EncodeBool(tk.n != 0)
				case 'n':
					enc.EncodeNil()
				}
			}
		}
	})
	b.Run("append-helpers", func(b *testing.B) {
		toks := tokens(b, mp)
		out := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			out = out[:0]
			for _, tk := range toks {
				switch tk.kind {
				case 'm':
					out = append(out, 0x80|byte(tk.n))
				case 'a':
					out = append(out, 0x90|byte(tk.n))
				case 's':
					out = append(appendStrHeader(out, len(tk.s)), tk.s...)
				case 'i':
					out = appendInt(out, int64(tk.n))
				case 'f':
					out = binary64(out, tk.f)
				case 'b':
					out = append(out, 0xc2|byte(tk.n))
				case 'n':
					out = append(out, 0xc0)
				}
			}
		}
	})
}

func binary64(b []byte, f float64) []byte {
	u := math.Float64bits(f)
	return append(b, 0xcb, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

var msgID = []string{"app.7312345678901234567.1:16b3748:12"}

func benchRender(b *testing.B, r Renderer, ev *Event, header bool) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = r.Append(buf[:0], ev); err != nil {
			b.Fatal(err)
		}
		if header {
			// As the relay does: its two headers share the map.
			h := HeaderOf(r, ev)
			h["Nats-Msg-Id"] = msgID
			h["Nats-Expected-Stream"] = msgID
		}
	}
	b.ReportMetric(float64(len(buf)), "body-bytes")
}

var jsonContentType = []string{"application/json"}

// contentTyped is native JSON with a Content-Type header, for measuring
// what adding one would cost.
type contentTyped struct{ *Native }

func (c contentTyped) AddHeader(h Header, e *Event) int {
	return h.put("Content-Type", jsonContentType)
}

// prescan counts the elements of each container of the valid JSON js, in
// the order they open: the first pass of a two-pass transcoder.
func prescan(counts []int, js []byte) []int {
	var open []int // indexes into counts
	for i := 0; i < len(js); i++ {
		switch js[i] {
		case '"':
			for i++; js[i] != '"'; i++ {
				if js[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			open = append(open, len(counts))
			counts = append(counts, 0)
			if j := skipSpace(js, i+1); js[j] != '}' && js[j] != ']' {
				counts[len(counts)-1] = 1
			}
		case ',':
			counts[open[len(open)-1]]++
		case '}', ']':
			open = open[:len(open)-1]
		}
	}
	return counts
}

type token struct {
	kind byte
	n    int
	s    string
	f    float64
}

// tokens lists the values of the MessagePack document mp in order,
// containers with their sizes, for the emitting benchmarks.
func tokens(t testing.TB, mp []byte) []token {
	d := msgpack.NewDecoder(bytes.NewReader(mp))
	var toks []token
	var walk func()
	walk = func() {
		c, err := d.PeekCode()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			n, _ := d.DecodeMapLen()
			toks = append(toks, token{kind: 'm', n: n})
			for range 2 * n {
				walk()
			}
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, _ := d.DecodeArrayLen()
			toks = append(toks, token{kind: 'a', n: n})
			for range n {
				walk()
			}
		default:
			v, _ := d.DecodeInterface()
			switch v := v.(type) {
			case string:
				toks = append(toks, token{kind: 's', s: v})
			case float64:
				toks = append(toks, token{kind: 'f', f: v})
			case bool:
				tk := token{kind: 'b'}
				if v {
					tk.n = 1
				}
				toks = append(toks, tk)
			case nil:
				toks = append(toks, token{kind: 'n'})
			default:
				n, _ := strconv.Atoi(fmt.Sprint(v))
				toks = append(toks, token{kind: 'i', n: n})
			}
		}
	}
	walk()
	return toks
}
