package wire

import (
	"bytes"
	"errors"
	"testing"
)

// CutChange gives the bytes of EncodeChange, cut at piece boundaries from
// any starting byte, and ChangeSize their length.
func TestCutChange(t *testing.T) {
	c := sample().Txs[0].Changes[1]
	c.New[0].Data = bytes.Repeat([]byte("abc"), 1000)
	enc, err := EncodeChange(&c)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ChangeSize(&c); err != nil || n != uint64(len(enc)) {
		t.Fatalf("ChangeSize = %d, %v; want %d", n, err, len(enc))
	}
	for _, tc := range []struct {
		from uint64
		size int
	}{{0, 1}, {0, 7}, {0, 1000}, {0, len(enc)}, {0, 10 * len(enc)}, {5, 7}, {uint64(len(enc) - 1), 100}, {999, 1000}} {
		var got []byte
		err := CutChange(&c, tc.from, tc.size, func(off uint64, p []byte) error {
			if off != tc.from+uint64(len(got)) || len(p) > tc.size || len(p) == 0 {
				t.Fatalf("from %d size %d: piece of %d at %d after %d bytes", tc.from, tc.size, len(p), off, len(got))
			}
			got = append(got, p...)
			return nil
		})
		if err != nil || !bytes.Equal(got, enc[tc.from:]) {
			t.Fatalf("from %d size %d: %v, %d bytes, want %d", tc.from, tc.size, err, len(got), len(enc)-int(tc.from))
		}
	}
	stop := errors.New("stop")
	if err := CutChange(&c, 0, 100, func(uint64, []byte) error { return stop }); err != stop {
		t.Fatalf("emit's error came back as %v", err)
	}
}
