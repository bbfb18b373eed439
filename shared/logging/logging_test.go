package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	for _, tt := range []struct {
		flag string
		json bool
		err  string
	}{{"text", false, ""}, {"json", true, ""}, {"xml", false, `bad --log-format "xml": use text or json`}} {
		j, err := ParseFormat(tt.flag)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseFormat(%q) = %v, want %q", tt.flag, err, tt.err)
			}
			continue
		}
		if err != nil || j != tt.json {
			t.Errorf("ParseFormat(%q) = %v, %v", tt.flag, j, err)
		}
		var buf bytes.Buffer
		New(&buf, j, slog.LevelInfo).Info("hello", "k", 1)
		New(&buf, j, slog.LevelInfo).Debug("hidden")
		out := strings.TrimSpace(buf.String())
		if strings.Contains(out, "hidden") || strings.Count(out, "\n") != 0 {
			t.Errorf("%s: %q", tt.flag, out)
		}
		if j != json.Valid([]byte(out)) {
			t.Errorf("%s: JSON %v for %q", tt.flag, json.Valid([]byte(out)), out)
		}
	}
}
