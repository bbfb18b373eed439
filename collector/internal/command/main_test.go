package command

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
		{name: "quoted tables", args: []string{"--tables", `public.a, "my.schema"."t,1" ,b`}, check: func(t *testing.T, c config) {
			if strings.Join(c.tables, "|") != `public.a|"my.schema"."t,1"|b` {
				t.Errorf("tables %q", c.tables)
			}
		}},
		{name: "a dot in an unquoted name", args: []string{"--tables", "my.schema.t"}, wantErr: `bad --tables: bad table "my.schema.t": 3 dot-separated parts; a schema or table whose name holds a dot is written in double quotes`},
		{name: "unclosed quote", args: []string{"--tables", `"my.schema.t`}, wantErr: "bad --tables"},
		{name: "negative auto recreate", args: []string{"--auto-recreate-slot", "-1"}, wantErr: "bad --auto-recreate-slot"},
		{name: "heartbeat", args: []string{"--heartbeat", "30s", "--heartbeat-dsn", "postgres://u@primary/db", "--replication-timeout", "90s"}, check: func(t *testing.T, c config) {
			sc := c.sessionConfig(nil, newProbe())
			if sc.Heartbeat.Interval != 30*time.Second || sc.Heartbeat.DSN != "postgres://u@primary/db" || sc.ReplicationTimeout != 90*time.Second || sc.HeartbeatStats == nil {
				t.Errorf("session config %+v", sc)
			}
		}},
		{name: "heartbeat too often", args: []string{"--heartbeat", "1ms"}, wantErr: "bad --heartbeat"},
		{name: "heartbeat query without interval", args: []string{"--heartbeat-query", "SELECT 1"}, wantErr: "need --heartbeat INTERVAL"},
		{name: "replication timeout too short", args: []string{"--replication-timeout", "10ms"}, wantErr: "bad --replication-timeout"},
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

// Every flag is under a heading of --help, and the headings name no flag
// that does not exist.
func TestHelpGroupsEveryFlag(t *testing.T) {
	var c config
	fs, _, _, _ := c.flagSet()
	if got := page.Ungrouped(fs); len(got) > 0 {
		t.Errorf("flags in no group of --help: %v (add them to page in help.go)", got)
	}
	if got := page.Unknown(fs); len(got) > 0 {
		t.Errorf("--help groups name flags that do not exist: %v", got)
	}
}
