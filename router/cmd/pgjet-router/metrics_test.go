package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsAndLogFormatFlags(t *testing.T) {
	for _, k := range []string{"PGJET_CONFIG", "PGJET_NATS", "PGJET_METRICS", "PGJET_LOG_FORMAT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, args := range [][]string{{"--log-format", "yaml"}, {"--metrics", "9465"}} {
		if _, err := parseConfig(append(args, "--nats", "nats://h")); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
	p := filepath.Join(t.TempDir(), "p.yaml")
	src := "apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: app}\nspec:\n  source: {type: postgres, config: {dsn: x}}\n" +
		"  metrics: {listen: ':9465'}\n  sinks:\n    - {type: nats, config: {id: a, url: 'nats://file:4222', stream: A}}\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{"--config", p})
	if err != nil || c.metrics != ":9465" || c.logJSON {
		t.Fatalf("from the file: %q %v", c.metrics, err)
	}
	t.Setenv("PGJET_METRICS", "127.0.0.1:9999")
	t.Setenv("PGJET_LOG_FORMAT", "json")
	if c, err = parseConfig([]string{"--config", p}); err != nil || c.metrics != "127.0.0.1:9999" || !c.logJSON {
		t.Fatalf("from the environment: %q %v %v", c.metrics, c.logJSON, err)
	}
}
