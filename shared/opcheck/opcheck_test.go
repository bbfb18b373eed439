package opcheck

import (
	"strings"
	"testing"
)

func TestReportExitCodes(t *testing.T) {
	var b strings.Builder
	r := NewReport(&b)
	r.OK("wal_level is %s", "logical")
	r.Warn("slot missing", "the collector creates it")
	if code := r.Done(); code != ExitOK {
		t.Errorf("warnings only: exit %d, want %d", code, ExitOK)
	}
	r.Fail("wal_level is replica", "set wal_level = logical")
	if code := r.Done(); code != ExitFail {
		t.Errorf("with a FAIL: exit %d, want %d", code, ExitFail)
	}
	for _, want := range []string{"OK   wal_level is logical\n", "WARN slot missing: the collector creates it\n", "FAIL wal_level is replica: set wal_level = logical\n", "1 OK, 1 WARN, 1 FAIL\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestConcrete(t *testing.T) {
	for in, want := range map[string]string{"postgres.*.*.*": "postgres.pgjet_check.pgjet_check.pgjet_check", "a.>": "a.pgjet_check", "x.y": "x.y"} {
		if got := Concrete(in); got != want {
			t.Errorf("Concrete(%q) = %q, want %q", in, got, want)
		}
	}
}
