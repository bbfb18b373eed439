package value

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// hstoreMapSchema is the Connect schema of hstore.handling.mode map, up to
// its "optional" flag: string keys, optional string values.
const hstoreMapSchema = `{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":`

// hstorePair is one key and value of an hstore, as slices of its text;
// null for a NULL value. Escapes are still in them (escaped).
type hstorePair struct {
	key, val     []byte
	keyEsc, null bool
	valEsc       bool
}

// appendHstore renders hstore text ("a"=>"1", "b"=>NULL) per
// hstore.handling.mode: json, Debezium's default, is a string holding the
// map as a JSON object; map is the object itself (a Connect map). The
// JDBC driver reads the text into a java.util.HashMap (HStoreConverter)
// and Debezium writes it in that map's iteration order, so the keys come
// in that order here too.
func (e *Debezium) appendHstore(b []byte, s []byte) ([]byte, error) {
	pairs, err := parseHstore(s, e.pairs[:0])
	e.pairs = pairs
	if err != nil {
		return b, fmt.Errorf("invalid hstore text %q: %w", shorten(s), err)
	}
	e.sortHstore(pairs)
	if e.opt.HStore == HStoreMap {
		return appendHstoreObject(b, pairs), nil
	}
	e.hstoreDoc = appendHstoreObject(e.hstoreDoc[:0], pairs)
	return AppendString(b, e.hstoreDoc), nil
}

// appendHstorePlaceholder renders an unchanged TOAST hstore as Debezium
// does: a map from the placeholder to itself.
func (e *Debezium) appendHstorePlaceholder(b []byte) []byte {
	p := []hstorePair{{key: e.ph, val: e.ph}}
	if e.opt.HStore == HStoreMap {
		return appendHstoreObject(b, p)
	}
	return AppendString(b, appendHstoreObject(nil, p))
}

func appendHstoreObject(b []byte, pairs []hstorePair) []byte {
	b = append(b, '{')
	for i := range pairs {
		p := &pairs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendHstoreString(b, p.key, p.keyEsc)
		b = append(b, ':')
		if p.null {
			b = append(b, "null"...)
		} else {
			b = appendHstoreString(b, p.val, p.valEsc)
		}
	}
	return append(b, '}')
}

// appendHstoreString appends s as a JSON string, first undoing hstore's
// backslash escapes when it has some.
func appendHstoreString(b []byte, s []byte, escaped bool) []byte {
	if !escaped {
		return AppendString(b, s)
	}
	return AppendString(b, unescapeHstore(s))
}

func unescapeHstore(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		out = append(out, s[i])
	}
	return out
}

// parseHstore parses hstore's output: "key"=>"value" pairs separated by
// ", ", keys and values quoted with '"' and '\' escaped by a backslash,
// a NULL value unquoted.
func parseHstore(s []byte, pairs []hstorePair) ([]hstorePair, error) {
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
	}
	quoted := func() ([]byte, bool, error) {
		if i >= len(s) || s[i] != '"' {
			return nil, false, errors.New(`expected '"'`)
		}
		i++
		start, esc := i, false
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				esc = true
				i++
			case '"':
				q := s[start:i]
				i++
				return q, esc, nil
			}
		}
		return nil, false, errors.New("unterminated string")
	}
	for skipSpace(); i < len(s); skipSpace() {
		var p hstorePair
		var err error
		if p.key, p.keyEsc, err = quoted(); err != nil {
			return pairs, err
		}
		if i+2 > len(s) || s[i] != '=' || s[i+1] != '>' {
			return pairs, errors.New("expected =>")
		}
		i += 2
		if i+4 <= len(s) && string(s[i:i+4]) == "NULL" {
			p.null = true
			i += 4
		} else if p.val, p.valEsc, err = quoted(); err != nil {
			return pairs, err
		}
		if i < len(s) && s[i] != ',' {
			return pairs, errors.New("expected ','")
		}
		pairs = append(pairs, p)
	}
	return pairs, nil
}

// sortHstore puts pairs in the order of the java.util.HashMap the JDBC
// driver reads them into (new HashMap<>(), filled in text order): by the
// keys' String.hashCode (javaHashMapOrder).
func (e *Debezium) sortHstore(pairs []hstorePair) {
	if len(pairs) < 2 {
		return
	}
	hashes := make([]int32, len(pairs))
	keys := make([][]byte, len(pairs))
	for i := range pairs {
		p := &pairs[i]
		keys[i] = p.key
		if p.keyEsc {
			keys[i] = unescapeHstore(p.key)
		}
		h := javaStringHash(keys[i])
		hashes[i] = int32(h ^ h>>16)
	}
	order := javaHashMapOrder(hashes, 0, func(a, b int) int { return javaStringCompare(keys[a], keys[b]) })
	sorted := append(e.pairsTmp[:0], pairs...)
	for i, k := range order {
		pairs[i] = sorted[k]
	}
	e.pairsTmp = sorted
}

// javaStringCompare is Java's String.compareTo of UTF-8 a and b: by UTF-16
// code units.
func javaStringCompare(a, b []byte) int {
	ua, ub := utf16.Encode([]rune(string(a))), utf16.Encode([]rune(string(b)))
	return slices.Compare(ua, ub)
}

// javaStringHash is Java's String.hashCode of s, UTF-8 read as Java's
// decoder does (invalid bytes as U+FFFD), over UTF-16 code units.
func javaStringHash(s []byte) uint32 {
	var h uint32
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + uint32(0xD800+(r>>10))
			h = 31*h + uint32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + uint32(r)
	}
	return h
}
