package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestSourceLiveness(t *testing.T) {
	tests := []struct {
		name, config string
		want         Heartbeat
		timeout      time.Duration
		problems     []string
	}{
		{name: "none", config: `{dsn: "postgres://h/db"}`},
		{name: "heartbeat", config: `{dsn: "postgres://h/db", replication_timeout: 90s, heartbeat: {interval: 30s, dsn: "postgres://u:s3cret@primary/db", query: "UPDATE hb SET at = now()"}}`,
			want: Heartbeat{Interval: 30 * time.Second, DSN: "postgres://u:s3cret@primary/db", Query: "UPDATE hb SET at = now()"}, timeout: 90 * time.Second},
		{name: "no interval", config: `{dsn: "postgres://h/db", heartbeat: {query: "SELECT 1"}}`,
			problems: []string{"spec.source.config.heartbeat.interval: is required"}},
		{name: "bad values", config: `{dsn: "postgres://h/db", replication_timeout: 10, heartbeat: {interval: soon, every: 1s}}`,
			problems: []string{"spec.source.config.replication_timeout: must be a duration", "spec.source.config.heartbeat.interval: \"soon\" is not a duration",
				"spec.source.config.heartbeat.every: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(doc("", natsA), `{dsn: "postgres://u:s3cret@h/db"}`, tt.config, 1)
			f, e := parse(t, text, env())
			expect(t, e, tt.problems...)
			if tt.problems != nil {
				return
			}
			if f.Source.Heartbeat != tt.want || f.Source.ReplicationTimeout != tt.timeout {
				t.Errorf("heartbeat %+v timeout %v, want %+v %v", f.Source.Heartbeat, f.Source.ReplicationTimeout, tt.want, tt.timeout)
			}
		})
	}
}
