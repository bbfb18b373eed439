// Package slab hands out the small strings and one-value string slices a
// rendered message's headers are made of, carved from shared buffers: one
// allocation per few kilobytes of header values instead of one per event.
//
// What it hands out is never written again, so a message may hold it for as
// long as it likes: a full buffer is replaced, not reused, and the garbage
// collector frees it once nothing refers to any part of it. Not safe for
// concurrent use.
package slab

import "strings"

// chunk is the size of a buffer of Strings; a value over a quarter of it
// gets an allocation of its own rather than wasting what is left.
const chunk = 4 << 10

// Strings carves strings from shared buffers.
type Strings struct {
	// b's String is a view of its buffer, whose written bytes are never
	// written again: every string carved from it stays as it was.
	b strings.Builder
}

// Of returns p as a string.
func (s *Strings) Of(p []byte) string {
	if len(p) > s.b.Cap()-s.b.Len() {
		if len(p) > chunk/4 {
			return string(p)
		}
		s.b.Reset()
		s.b.Grow(chunk)
	}
	n := s.b.Len()
	s.b.Write(p)
	return s.b.String()[n:]
}

// values is the length of a Values slab.
const values = 256

// Values carves one-value slices, a header's value, from shared slabs.
type Values struct {
	v []string
}

// Of returns a slice holding v alone, with no room to append to: an append
// to it makes a copy.
func (s *Values) Of(v string) []string {
	if len(s.v) == cap(s.v) {
		s.v = make([]string, 0, values)
	}
	s.v = append(s.v, v)
	n := len(s.v)
	return s.v[n-1 : n : n]
}
