package value

import (
	"errors"
	"fmt"
	"slices"
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
	hash         uint32 // the key's Java HashMap hash
	seq          int    // position in the text
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
	javaHashMapOrder(pairs)
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
		p.seq = len(pairs)
		pairs = append(pairs, p)
	}
	return pairs, nil
}

// javaHashMapOrder sorts pairs as a java.util.HashMap holding them, filled
// in this order, iterates them: by bucket (the key's spread String.hashCode
// masked by the table size), then in insertion order within a bucket. The
// table starts at 16 buckets and doubles whenever it holds more than 3/4
// of its size, or a bucket more than 8 entries while it has fewer than 64
// buckets. (A bucket of more than 8 entries in a larger table becomes a
// tree, whose order is not followed here: that takes keys crafted to
// collide.)
func javaHashMapOrder(pairs []hstorePair) {
	if len(pairs) < 2 {
		return
	}
	for i := range pairs {
		p := &pairs[i]
		key := p.key
		if p.keyEsc {
			key = unescapeHstore(key)
		}
		h := javaStringHash(key)
		p.hash = h ^ h>>16
	}
	n := uint32(16)
	var counts []int
	bucketCounts := func(upto int) {
		counts = slices.Grow(counts[:0], int(n))[:n]
		clear(counts)
		for j := range upto {
			counts[pairs[j].hash&(n-1)]++
		}
	}
	bucketCounts(0)
	for i := range pairs {
		bucket := pairs[i].hash & (n - 1)
		counts[bucket]++
		if counts[bucket] > 8 && n < 64 { // treeifyBin resizes small tables
			n *= 2
			bucketCounts(i + 1)
		}
		if uint32(i+1) > n/4*3 {
			n *= 2
			bucketCounts(i + 1)
		}
	}
	slices.SortFunc(pairs, func(a, b hstorePair) int {
		if ba, bb := a.hash&(n-1), b.hash&(n-1); ba != bb {
			return int(ba) - int(bb)
		}
		return a.seq - b.seq
	})
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
