package value

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func parseInts(t *testing.T, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestJavaHashMapOrder: the order of every key set in
// testdata/javahashmap/orders.txt ("keys order" per line) is the one OpenJDK 17's
// HashMap<Short, Double> iterated, filled in key order after new
// HashMap<>(n): small and random sets, and sets of keys a multiple of 16 to
// 1024 apart, which fill one bucket past eight keys (tree buckets).
func TestJavaHashMapOrder(t *testing.T) {
	f, err := os.Open("testdata/javahashmap/orders.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	cases := 0
	for sc.Scan() {
		keys, order, _ := strings.Cut(sc.Text(), " ")
		ks := parseInts(t, keys)
		hashes := make([]int32, len(ks))
		for i, k := range ks {
			hashes[i] = int32(k) // a Short's hash: its value
		}
		var got []int
		for _, i := range javaHashMapOrder(hashes, len(ks), func(a, b int) int { return ks[a] - ks[b] }) {
			got = append(got, ks[i])
		}
		want := parseInts(t, order)
		if !slices.Equal(got, want) {
			t.Errorf("keys %s:\ngot  %v\nwant %v", keys, got, want)
		}
		cases++
	}
	if cases < 90 {
		t.Fatalf("%d cases read", cases)
	}
}
