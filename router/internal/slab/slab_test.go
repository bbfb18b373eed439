package slab

import (
	"strings"
	"testing"
)

// What a slab handed out stays as it was while more is carved, across
// buffers, and a large value gets a buffer of its own.
func TestCarvedStaysPut(t *testing.T) {
	var s Strings
	var v Values
	var want []string
	var got []string
	var slices [][]string
	buf := []byte{}
	for i := range 3000 {
		buf = append(buf[:0], strings.Repeat(string(rune('a'+i%26)), 1+i%40)...)
		if i%500 == 0 {
			buf = append(buf, strings.Repeat("x", 2*chunk)...)
		}
		want = append(want, string(buf))
		str := s.Of(buf)
		got = append(got, str)
		slices = append(slices, v.Of(str))
		buf[0] = '!' // the caller's buffer is its own
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d: %q, want %q", i, got[i], want[i])
		}
		if len(slices[i]) != 1 || cap(slices[i]) != 1 || slices[i][0] != want[i] {
			t.Fatalf("value %d: %q (cap %d), want [%q]", i, slices[i], cap(slices[i]), want[i])
		}
	}
}

func TestAllocations(t *testing.T) {
	var s Strings
	var v Values
	p := []byte("ce-pgjetindex-value-0123456789")
	s.Of(p)
	v.Of("x")
	n := testing.AllocsPerRun(1000, func() { v.Of(s.Of(p)) })
	if n > 0.1 {
		t.Errorf("%.2f allocations per value, want about %.2f", n, 1.0/values+float64(len(p))/chunk)
	}
}
