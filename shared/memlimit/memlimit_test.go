package memlimit

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"128MiB", 128 << 20, true}, {"1GiB", 1 << 30, true}, {"200MB", 200e6, true}, {"4096", 4096, true},
		{"0", 0, true}, {" 64 KiB ", 64 << 10, true}, {"12B", 12, true},
		{"", 0, false}, {"-1MiB", 0, false}, {"lots", 0, false}, {"1.5GiB", 0, false}, {"99999999999GiB", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSizeFlag(t *testing.T) {
	var s Size = -1
	if s.String() != "auto" {
		t.Errorf("unset size prints %q", s.String())
	}
	if err := s.Set("256MiB"); err != nil || s != 256<<20 || s.String() != "256MiB" {
		t.Errorf("Set 256MiB: %d %q %v", s, s.String(), err)
	}
	if err := s.Set("4097"); err != nil || s.String() != "4097" {
		t.Errorf("Set 4097: %q %v", s.String(), err)
	}
	if err := s.Set("much"); err == nil || s != 4097 {
		t.Errorf("Set much: %d %v", s, err)
	}
	if err := s.Set("auto"); err != nil || s != -1 {
		t.Errorf("Set auto: %d %v", s, err)
	}
}
