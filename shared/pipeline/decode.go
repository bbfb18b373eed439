package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgjet/pgjet/shared/suggest"
	"github.com/pgjet/pgjet/shared/wire"
	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML tree by hand rather than unmarshalling into
// structs: that is what gives every problem its path, lets unknown keys be
// reported where they are, and keeps going after the first problem.
type decoder struct {
	lookup func(string) (string, bool)
	errs   *Errors
	// at locates every key and list item seen; has holds those with a
	// non-null value (File.Has).
	at  map[string]pos
	has map[string]bool
	// budget bounds the nodes toAny visits, against alias bombs.
	budget int
	// flags holds the value nodes overrides made, with the flag of each.
	flags map[*yaml.Node]string
}

func (d *decoder) add(path, format string, args ...any) { d.errs.Add(path, format, args...) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's YAML type for "must be X, not Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "true/false"
	case "!!null":
		return "empty"
	case "!!timestamp":
		return "a timestamp"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

// mapReader reads one mapping: get marks the keys the schema knows, rest
// reports the others.
type mapReader struct {
	d     *decoder
	path  string
	vals  map[string]*yaml.Node
	order []string
	asked map[string]bool
	// ok: the node is a mapping. Keys required inside are reported only
	// then, so that one wrong type is one problem.
	ok bool
}

// mapping reads n (nil or null: an empty mapping, no problem).
func (d *decoder) mapping(n *yaml.Node, path string) *mapReader {
	m := &mapReader{d: d, path: path, vals: map[string]*yaml.Node{}, asked: map[string]bool{}}
	if isNull(n) {
		return m
	}
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.add(path, "must be a mapping (key: value), not %s", describe(n))
		return m
	}
	m.ok = true
	m.fill(n, true)
	return m
}

// fill adds n's keys. Keys merged in with "<<: *anchor" come second and
// lose to keys given explicitly, as YAML specifies.
func (m *mapReader) fill(n *yaml.Node, explicit bool) {
	var merges []*yaml.Node
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			m.d.add(m.path, "line %d: a key must be a word, not %s", k.Line, describe(k))
			continue
		}
		key := k.Value
		p := join(m.path, key)
		if _, dup := m.vals[key]; dup {
			if explicit {
				m.d.add(p, "is given twice (first on line %d): remove one", first[key])
			}
			continue
		}
		first[key] = k.Line
		m.vals[key] = v
		m.order = append(m.order, key)
		if _, ok := m.d.at[p]; !ok {
			m.d.at[p] = pos{k.Line, k.Column}
		}
		if !isNull(v) {
			m.d.has[p] = true
		}
	}
	for _, src := range merges {
		src = resolve(src)
		switch src.Kind {
		case yaml.MappingNode:
			m.fill(src, false)
		case yaml.SequenceNode:
			for _, s := range src.Content {
				if s = resolve(s); s.Kind == yaml.MappingNode {
					m.fill(s, false)
				} else {
					m.d.add(m.path, "line %d: << merges mappings, not %s", s.Line, describe(s))
				}
			}
		default:
			m.d.add(m.path, "line %d: << merges mappings, not %s", src.Line, describe(src))
		}
	}
}

// get returns key's value (nil when absent or null) and its path.
func (m *mapReader) get(key string) (*yaml.Node, string) {
	m.asked[key] = true
	p := join(m.path, key)
	v := m.vals[key]
	if isNull(v) {
		return nil, p
	}
	return resolve(v), p
}

// skip marks keys as known without reading them.
func (m *mapReader) skip(keys ...string) {
	for _, k := range keys {
		m.asked[k] = true
	}
}

// rest reports the keys not asked for. other, if not nil, may explain a
// key that belongs elsewhere ("format applies to stdout sinks").
func (m *mapReader) rest(other func(key string) string) {
	for _, k := range m.order {
		if m.asked[k] {
			continue
		}
		msg := ""
		if other != nil {
			msg = other(k)
		}
		if msg == "" {
			msg = "unknown key"
			if s := m.suggest(k); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
		}
		m.d.add(join(m.path, k), "%s", msg)
	}
}

func (m *mapReader) suggest(k string) string {
	best, d := suggest.Closest(strings.ToLower(k), maps.Keys(m.asked))
	if best == "" || d > 2 || d > len(k)/3+1 {
		return ""
	}
	return best
}

// list returns n's items (nil or null: none).
func (d *decoder) list(n *yaml.Node, path string) []*yaml.Node {
	if isNull(n) {
		return nil
	}
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.add(path, "must be a list (- item lines, or [a, b]), not %s", describe(n))
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		p := index(path, i)
		d.at[p] = pos{it.Line, it.Column}
		if !isNull(it) {
			d.has[p] = true
		}
		items[i] = resolve(it)
	}
	return items
}

// scalar is one expanded scalar value.
type scalar struct {
	node *yaml.Node
	text string
	env  bool // came (in part) from the environment: never show it
	// flag is the flag that gave the value (Overrides): taken as written.
	flag string
}

// typed reports whether s's YAML type says what it is: values from the
// environment and from flags are text, read as the key's type.
func (s scalar) typed() bool { return !s.env && s.flag == "" }

// show quotes the value for a message, unless it may be a secret.
func (s scalar) show() string {
	if s.env {
		return "the value from the environment"
	}
	return strconv.Quote(s.text)
}

// scalar expands n, which must be a scalar; want names the expected type.
func (d *decoder) scalar(n *yaml.Node, path, want string) (scalar, bool) {
	if n == nil {
		return scalar{}, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.add(path, "must be %s, not %s", want, describe(n))
		return scalar{}, false
	}
	if flag := d.flags[n]; flag != "" {
		return scalar{node: n, text: n.Value, flag: flag}, true
	}
	x, err := expand(n.Value, d.lookup)
	if err != nil {
		d.add(path, "%v", err)
		return scalar{}, false
	}
	for _, name := range x.missing {
		d.add(path, "%s", missingMessage(name))
	}
	if len(x.missing) > 0 {
		return scalar{}, false
	}
	return scalar{node: n, text: x.value, env: x.env}, true
}

// str reads any scalar as text, as written: "slot: 123" is the slot "123".
func (d *decoder) str(n *yaml.Node, path string) (scalar, bool) {
	return d.scalar(n, path, "a string")
}

// text is str for keys whose value is only stored.
func (d *decoder) text(m *mapReader, key string, dst *string) {
	n, p := m.get(key)
	if s, ok := d.str(n, p); ok {
		*dst = s.text
	}
}

// required reports a missing key.
func (d *decoder) required(m *mapReader, key, hint string) {
	if n, p := m.get(key); n == nil {
		d.add(p, "is required%s", hint)
	}
}

func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	s, ok := d.scalar(n, path, "an integer")
	if !ok {
		return 0, false
	}
	if !s.typed() {
		v, err := strconv.ParseInt(strings.TrimSpace(s.text), 10, 64)
		if err != nil {
			d.add(path, "must be an integer: %s is not", s.show())
			return 0, false
		}
		return v, true
	}
	var v int64
	if n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.add(path, "must be an integer, not %s", describe(n))
		return 0, false
	}
	return v, true
}

// intRange reads an integer in [lo, hi].
func (d *decoder) intRange(m *mapReader, key string, lo, hi int64, dst *int) {
	n, p := m.get(key)
	if n == nil {
		return
	}
	v, ok := d.integer(n, p)
	if !ok {
		return
	}
	if v < lo || v > hi {
		d.add(p, "%d is out of range: use %d to %d", v, lo, hi)
		return
	}
	*dst = int(v)
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch {
	case !s.typed() && (s.text == "true" || s.text == "false"):
		return s.text == "true", true
	case !s.typed():
		d.add(path, "must be true or false: %s is not", s.show())
		return false, false
	}
	var v bool
	if n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		d.add(path, "must be true or false, not %s", describe(n))
		return false, false
	}
	return v, true
}

// duration reads Go's syntax ("30s", "1h30m") or whole days ("7d").
func (d *decoder) duration(m *mapReader, key string, dst *time.Duration) {
	n, p := m.get(key)
	if n == nil {
		return
	}
	s, ok := d.scalar(n, p, "a duration")
	if !ok {
		return
	}
	if s.typed() && n.ShortTag() != "!!str" {
		d.add(p, "must be a duration with a unit, like 30s, 168h or 7d, not %s", describe(n))
		return
	}
	v, err := parseDuration(s.text)
	switch {
	case err != nil:
		d.add(p, "%s is not a duration: use e.g. 30s, 90m, 168h or 7d", s.show())
	case v <= 0:
		d.add(p, "must be positive")
	default:
		*dst = v
	}
}

// atLeast is duration with a lower bound.
func (d *decoder) atLeast(m *mapReader, key string, least time.Duration, dst *time.Duration) {
	v := time.Duration(0)
	d.duration(m, key, &v)
	n, p := m.get(key)
	switch {
	case v == 0:
	case v < least:
		shown := "the value from the environment"
		if s, ok := d.str(n, p); ok && !s.env {
			shown = s.text
		}
		d.errs.AddValue(p, "", shown, fmt.Sprintf("use at least %s", least))
	default:
		*dst = v
	}
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > 100*365 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// enum reads one of opts into dst.
func (d *decoder) enum(m *mapReader, key string, dst *string, opts ...string) {
	n, p := m.get(key)
	if n == nil {
		return
	}
	if v, ok := d.oneOf(n, p, opts...); ok {
		*dst = v
	}
}

func (d *decoder) oneOf(n *yaml.Node, path string, opts ...string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	for _, o := range opts {
		if s.text == o {
			return o, true
		}
	}
	d.errs.AddValue(path, "unknown value", s.show(), "use "+orList(opts))
	return "", false
}

func orList(opts []string) string {
	if len(opts) == 1 {
		return opts[0]
	}
	return strings.Join(opts[:len(opts)-1], ", ") + " or " + opts[len(opts)-1]
}

// name reads a stream, consumer or source name (wire.CheckName).
func (d *decoder) name(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	if err := wire.CheckName(s.text); err != nil {
		if s.env {
			d.add(path, "the value from the environment is not a valid name: use letters, digits, '_' and '-', at most 255 bytes")
		} else {
			d.add(path, "bad name %v", err)
		}
		return "", false
	}
	return s.text, true
}

// strList reads a list of strings.
func (d *decoder) strList(n *yaml.Node, path string) []string {
	var out []string
	for i, it := range d.list(n, path) {
		if s, ok := d.str(it, index(path, i)); ok {
			out = append(out, s.text)
		}
	}
	return out
}

// readFile reads a secret file. Messages name the file (unless its name
// came from the environment) and never its content.
func (d *decoder) readFile(s scalar, path string) ([]byte, bool) {
	b, err := os.ReadFile(s.text)
	if err != nil {
		d.add(path, "cannot read %s", fileErr(s, err))
		return nil, false
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		d.add(path, "file %s is empty", s.show())
		return nil, false
	}
	return b, true
}

// checkFile reports a file that cannot be opened now, rather than at the
// first connection attempt.
func (d *decoder) checkFile(s scalar, path string) {
	f, err := os.Open(s.text)
	if err != nil {
		d.add(path, "cannot read %s", fileErr(s, err))
		return
	}
	f.Close()
}

func fileErr(s scalar, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("file %s: %v", s.show(), pe.Err)
	}
	return fmt.Sprintf("file %s", s.show())
}

// toAny converts n to plain Go values for settings the router checks.
func (d *decoder) toAny(n *yaml.Node, path string) any {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.add(path, "too many values (aliases expanding?): the file is not read further here")
		}
		return nil
	}
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := d.mapping(n, path)
		out := make(map[string]any, len(m.order))
		for _, k := range m.order {
			v, p := m.get(k)
			out[k] = d.toAny(v, p)
		}
		return out
	case yaml.SequenceNode:
		items := d.list(n, path)
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = d.toAny(it, index(path, i))
		}
		return out
	}
	s, ok := d.scalar(n, path, "a value")
	if !ok {
		return nil
	}
	if !s.typed() || n.ShortTag() == "!!str" {
		return s.text
	}
	var v any
	if err := n.Decode(&v); err != nil {
		d.add(path, "bad %s", describe(n))
		return nil
	}
	return v
}
