package wire

import (
	"encoding/json"
	"testing"
)

func TestLSNText(t *testing.T) {
	for s, want := range map[string]LSN{"0/0": 0, "0/16B3748": 0x16B3748, "1/0": 1 << 32, "16/B374D848": 0x16_B374D848, "FFFFFFFF/FFFFFFFF": 1<<64 - 1} {
		got, err := ParseLSN(s)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %x, %v", s, got, err)
		}
		if got.String() != s {
			t.Errorf("%x.String() = %q, want %q", uint64(want), got.String(), s)
		}
	}
	if got, err := ParseLSN(" 16/b374d848 "); err != nil || got != 0x16_B374D848 {
		t.Errorf("lower case with spaces: %x, %v", got, err)
	}
	for _, s := range []string{"", "0", "x/1", "1/2/3", "100000000/0", "/1", "1/"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) accepted", s)
		}
	}
	b, err := json.Marshal(struct{ L LSN }{0x16_B374D848})
	if err != nil || string(b) != `{"L":"16/B374D848"}` {
		t.Errorf("JSON %s, %v", b, err)
	}
	var v struct{ L LSN }
	if err := json.Unmarshal(b, &v); err != nil || v.L != 0x16_B374D848 {
		t.Errorf("JSON back: %x, %v", v.L, err)
	}
}

func TestSourceOfSubject(t *testing.T) {
	for subj, want := range map[string]string{RawSubject("app"): "app", RawSubject("a-b_1"): "a-b_1"} {
		if got, ok := SourceOfSubject(subj); !ok || got != want {
			t.Errorf("SourceOfSubject(%q) = %q, %v", subj, got, ok)
		}
	}
	for _, subj := range []string{"pgjet.raw.", "pgjet.raw.a.b", RawFilter, "pgjet.raw.*", "other.app", "pgjet.rawx"} {
		if got, ok := SourceOfSubject(subj); ok {
			t.Errorf("SourceOfSubject(%q) = %q, want none", subj, got)
		}
	}
}

func TestCheckSlotName(t *testing.T) {
	for _, ok := range []string{"pgjet", "a_1", "x23456789012345678901234567890123456789012345678901234567890123"[:63]} {
		if err := CheckSlotName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Pgjet", "a-b", "a.b", "x234567890123456789012345678901234567890123456789012345678901234"} {
		if err := CheckSlotName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
