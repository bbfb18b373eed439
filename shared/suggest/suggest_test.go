package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"slot", "publication", "nats", "snapshot"}
	for _, tt := range []struct {
		word string
		want string
		dist int
	}{
		{"slot", "slot", 0},
		{"slott", "slot", 1},
		{"publicatoin", "publication", 2},
		{"nast", "nats", 2},
		{"snapshots", "snapshot", 1},
		{"zzzz", "nats", 4}, // as far from every name: the first in byte order
	} {
		if got, d := Closest(tt.word, slices.Values(names)); got != tt.want || d != tt.dist {
			t.Errorf("Closest(%q) = %q, %d; want %q, %d", tt.word, got, d, tt.want, tt.dist)
		}
	}
	if got, d := Closest("x", slices.Values([]string(nil))); got != "" || d != -1 {
		t.Errorf("Closest among no names = %q, %d", got, d)
	}
}
