package pipeline

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Overrides are values given outside the file, by flags or PGJET_*
// variables. Each sets (or removes) one key of the file's structure before
// the structure is decoded, so that one decoder checks a file, a file with
// flags, and flags alone (applied to a file the command builds, such as
// the router's one-sink file) the same way, with the same bounds and
// defaults. A problem with an overridden value names the flag instead of
// the key: "bad --group "tx": use none or transaction".
//
// Override values are taken as written: no ${VAR} expansion (a password
// may hold a '$'), and a number, boolean or duration is read from its text
// the way the flag package reads it.
type Overrides struct {
	list []override
}

type override struct {
	path string // "spec.sinks[0].config.stream.name"
	flag string // "--stream": how problems name it
	// value is the new value; nil removes the key.
	value *yaml.Node
}

// Set gives path the value v, as flag gave it.
func (o *Overrides) Set(path, flag, v string) {
	o.list = append(o.list, override{path: path, flag: flag, value: &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}})
}

// SetList gives path a list of values, as flag gave them.
func (o *Overrides) SetList(path, flag string, vs []string) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, v := range vs {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
	}
	o.list = append(o.list, override{path: path, flag: flag, value: n})
}

// Remove deletes path's key, as flag asked (e.g. --nats replaces an
// embedded server).
func (o *Overrides) Remove(path, flag string) {
	o.list = append(o.list, override{path: path, flag: flag})
}

// Len is the number of overrides.
func (o *Overrides) Len() int {
	if o == nil {
		return 0
	}
	return len(o.list)
}

// shorthands are keys whose scalar value is short for a mapping with that
// value under one key ("stream: NAME" is "stream: {name: NAME}"): an
// override inside such a key expands the short form first.
var shorthands = map[string]string{"stream": "name"}

// apply makes the overrides in root, a document's mapping (nil: an empty
// one), and returns it, recording each value node's flag in nodes and each
// path's in paths.
func (o *Overrides) apply(root *yaml.Node, nodes map[*yaml.Node]string, paths map[string]string) (*yaml.Node, error) {
	if o.Len() == 0 {
		return root, nil
	}
	if root == nil || isNull(root) {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	for _, ov := range o.list {
		keys, err := splitPath(ov.path)
		if err != nil {
			return nil, err
		}
		if err := set(root, keys, ov.value); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", ov.flag, ov.path, err)
		}
		if ov.value != nil {
			nodes[ov.value] = ov.flag
			for _, it := range ov.value.Content {
				nodes[it] = ov.flag
			}
			paths[ov.path] = ov.flag
		}
	}
	return root, nil
}

// pathKey is one step of a path: a mapping key, or a list index (key "").
type pathKey struct {
	key   string
	index int
}

func splitPath(p string) ([]pathKey, error) {
	var keys []pathKey
	for _, part := range strings.Split(p, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name == "" {
			return nil, fmt.Errorf("bad override path %q", p)
		}
		keys = append(keys, pathKey{key: name})
		for rest != "" {
			i, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(i)
			if !ok || err != nil || n < 0 {
				return nil, fmt.Errorf("bad override path %q", p)
			}
			keys = append(keys, pathKey{index: n})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return keys, nil
}

// set puts v at keys under n (a mapping or a list), making the mappings on
// the way; v nil removes the last key.
func set(n *yaml.Node, keys []pathKey, v *yaml.Node) error {
	k := keys[0]
	last := len(keys) == 1
	if k.key == "" {
		if n.Kind != yaml.SequenceNode || k.index >= len(n.Content) {
			return fmt.Errorf("no list item %d", k.index)
		}
		if last {
			if v == nil {
				n.Content = append(n.Content[:k.index], n.Content[k.index+1:]...)
			} else {
				n.Content[k.index] = v
			}
			return nil
		}
		n.Content[k.index] = own(n.Content[k.index])
		return set(n.Content[k.index], keys[1:], v)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s is not in a mapping", k.key)
	}
	i := -1
	for j := 0; j+1 < len(n.Content); j += 2 {
		if resolve(n.Content[j]).Value == k.key {
			i = j // the last one given: the decoder reports duplicates anyway
		}
	}
	switch {
	case last && v == nil:
		if i >= 0 {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
		}
		return nil
	case last:
		if i < 0 {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.key}, v)
		} else {
			n.Content[i+1] = v
		}
		return nil
	case i < 0:
		if v == nil {
			return nil // nothing to remove
		}
		child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if keys[1].key == "" {
			return fmt.Errorf("no list %s", k.key)
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.key}, child)
		return set(child, keys[1:], v)
	}
	child := own(n.Content[i+1])
	switch {
	case child.Kind == yaml.ScalarNode && !isNull(child) && shorthands[k.key] != "":
		child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: shorthands[k.key]}, child}}
	case isNull(child) && keys[1].key != "":
		child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	n.Content[i+1] = child
	return set(child, keys[1:], v)
}

// own returns n ready to be changed: an alias, or an anchored node, is
// replaced by a copy, so that changing one use of an anchor does not change
// the others.
func own(n *yaml.Node) *yaml.Node {
	switch {
	case n.Kind == yaml.AliasNode:
		return deepCopy(resolve(n))
	case n.Anchor != "":
		return deepCopy(n)
	}
	return n
}

func deepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		if x.Kind == yaml.AliasNode {
			c.Content[i] = x // the anchor is elsewhere: keep pointing at it
		} else {
			c.Content[i] = deepCopy(x)
		}
	}
	return &c
}
