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
	c.LSN = 0x1234
	for _, version := range []int{OldestVersion, Version} {
		enc, err := EncodeChange(&c, version)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := ChangeSize(&c, version); err != nil || n != uint64(len(enc)) {
			t.Fatalf("version %d: ChangeSize = %d, %v; want %d", version, n, err, len(enc))
		}
		cutChange(t, &c, version, enc)
	}
	stop := errors.New("stop")
	if err := CutChange(&c, Version, 0, 100, func(uint64, []byte) error { return stop }); err != stop {
		t.Fatalf("emit's error came back as %v", err)
	}
}

func cutChange(t *testing.T, c *Change, version int, enc []byte) {
	t.Helper()
	for _, tc := range []struct {
		from uint64
		size int
	}{{0, 1}, {0, 7}, {0, 1000}, {0, len(enc)}, {0, 10 * len(enc)}, {5, 7}, {uint64(len(enc) - 1), 100}, {999, 1000}} {
		var got []byte
		err := CutChange(c, version, tc.from, tc.size, func(off uint64, p []byte) error {
			if off != tc.from+uint64(len(got)) || len(p) > tc.size || len(p) == 0 {
				t.Fatalf("from %d size %d: piece of %d at %d after %d bytes", tc.from, tc.size, len(p), off, len(got))
			}
			got = append(got, p...)
			return nil
		})
		if err != nil || !bytes.Equal(got, enc[tc.from:]) {
			t.Fatalf("version %d from %d size %d: %v, %d bytes, want %d", version, tc.from, tc.size, err, len(got), len(enc)-int(tc.from))
		}
	}
}
