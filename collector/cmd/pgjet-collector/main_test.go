package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	base := []string{"--dsn", "postgres://u@h/db", "--nats", "nats://127.0.0.1:4222"}
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.linger != 10*time.Millisecond || c.source != "pgjet" || c.maxMessage != 4<<20 {
				t.Errorf("linger %v, source %q, max message %d", c.linger, c.source, c.maxMessage)
			}
		}},
		{name: "no linger", args: []string{"--linger", "0"}, check: func(t *testing.T, c config) {
			if c.linger != 0 {
				t.Errorf("linger %v, want 0", c.linger)
			}
		}},
		{name: "negative linger", args: []string{"--linger", "-1ms"}, wantErr: "bad --linger"},
		{name: "linger beyond a second", args: []string{"--linger", "2s"}, wantErr: "bad --linger"},
		{name: "bad source", args: []string{"--source", "a.b"}, wantErr: "bad --source"},
		// The pipeline file's rule (wire.CheckSlotName), not a failure at the first connection.
		{name: "bad slot", args: []string{"--slot", "My-Slot"}, wantErr: `bad --slot "My-Slot": PostgreSQL allows lower-case letters, digits and '_', at most 63`},
		{name: "nats and embedded", args: []string{"--embedded", "/tmp/x"}, wantErr: "exclude each other"},
		{name: "failover and take-over", args: []string{"--failover", "--take-over-source"}, check: func(t *testing.T, c config) {
			if !c.failover || !c.takeOver {
				t.Errorf("failover %v, take over %v", c.failover, c.takeOver)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(append(append([]string{}, base...), c.args...))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}
