package deploy

import (
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
)

// TestNATSConfigs parses every NATS server config under deploy/ with nats-server's own
// parser (conf, with its pedantic checks) and option processing (server), as
// `nats-server -t` would, and requires each JetStream server to fsync every write
// (sync_interval: always): the collector lets Postgres recycle WAL once JetStream
// acknowledges a write.
func TestNATSConfigs(t *testing.T) {
	repo := root(t)
	files, _ := filepath.Glob(filepath.Join(repo, "deploy", "nats", "*.conf"))
	more, _ := filepath.Glob(filepath.Join(repo, "deploy", "container", "*.conf"))
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(repo, f)
		t.Run(rel, func(t *testing.T) {
			if _, err := conf.ParseFileWithChecks(f); err != nil {
				t.Fatalf("conf: %v", err)
			}
			opts, err := server.ProcessConfigFile(f)
			if err != nil {
				t.Fatalf("server: %v", err)
			}
			if opts.JetStream && !opts.SyncAlways {
				t.Errorf("jetstream without sync_interval: always")
			}
		})
	}
}
