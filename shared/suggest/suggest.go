// Package suggest finds the name a mistyped one was probably meant to be,
// for the "did you mean" of errors and warnings.
package suggest

import "iter"

// Closest returns the name among names nearest to word by Levenshtein
// distance, and that distance; among names as near, the first in byte
// order. With no names it returns "" and -1. Whether the nearest is near
// enough to suggest is the caller's to judge.
func Closest(word string, names iter.Seq[string]) (string, int) {
	best, bestDist := "", -1
	for n := range names {
		if d := Distance(word, n); bestDist < 0 || d < bestDist || d == bestDist && n < best {
			best, bestDist = n, d
		}
	}
	return best, bestDist
}

// Distance is the Levenshtein distance of a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
