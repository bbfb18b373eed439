package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// NATS is a nats-server process (bin/nats-server) with JetStream on a file
// store that fsyncs every write, as pgjet's durability guarantee requires.
type NATS struct {
	t     testing.TB
	dir   string
	conf  string
	extra string // config lines appended to the generated ones
	port  int
	proc  *Proc

	// Cluster nodes (StartCluster) run a repository config file with
	// command-line overrides instead of a generated config.
	args    []string
	name    string // server_name, as the server reports it
	cluster *Cluster
}

// StartNATS starts a server on a free port of 127.0.0.1 with its JetStream
// store in dir (a new temp dir when dir is ""). Restart reuses both, so
// streams survive a kill -9 exactly as they would in production.
func StartNATS(t testing.TB, dir string) *NATS {
	t.Helper()
	return StartNATSWith(t, dir, "")
}

// StartNATSWith is StartNATS with extraConf appended to the server's
// configuration, e.g. an authorization or tls block.
func StartNATSWith(t testing.TB, dir, extraConf string) *NATS {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	n := &NATS{t: t, dir: dir, conf: filepath.Join(t.TempDir(), "nats.conf"), extra: extraConf}
	var err error
	// The free port can be taken before the server binds it: try another.
	for attempt := 0; attempt < 4; attempt++ {
		if n.port, err = pgtest.FreePort(); err != nil {
			t.Fatal(err)
		}
		if err = n.start(); err == nil {
			return n
		}
	}
	t.Fatalf("nats-server did not start: %v", err)
	return nil
}

// MaxPayload is the max_payload of the servers StartNATS runs.
const MaxPayload = 8 << 20

func (n *NATS) start() error {
	if n.cluster != nil || n.args != nil {
		return n.startNode()
	}
	conf := fmt.Sprintf(`# written by harness.StartNATS
server_name: pgjet-e2e
listen: 127.0.0.1:%d
# Events of rows of several MB need a max_payload above the 1 MB default:
# operators raise it for such tables, as the embedded server does.
max_payload: %d
jetstream {
  store_dir: %q
  # Acknowledged means on disk: a kill -9 of the server must not lose acked messages.
  sync_interval: always
}
%s
`, n.port, MaxPayload, n.dir, n.extra)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	n.proc = StartProcess(n.t, "nats-server", []string{"-c", n.conf}, nil)
	// Printed once JetStream has recovered its streams and clients are accepted.
	if !n.proc.WaitForLog("Server is ready", 60*time.Second) {
		n.proc.Kill()
		return fmt.Errorf("not ready on port %d:\n%s", n.port, lastLines(n.proc.Log(), 20))
	}
	return nil
}

// URL is the client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Port is the client port.
func (n *NATS) Port() int { return n.port }

// Dir is the JetStream store directory.
func (n *NATS) Dir() string { return n.dir }

// Proc is the current server process (a new one after each Restart).
func (n *NATS) Proc() *Proc { return n.proc }

// Kill kills the server with SIGKILL.
func (n *NATS) Kill() { n.proc.Kill() }

// Stop stops the server gracefully (SIGTERM).
func (n *NATS) Stop() error { return n.proc.Stop() }

// Restart starts the server again on the same port and store, stopping it
// first if it still runs. Call it from the test's goroutine: it fails the test
// when the server does not come back.
func (n *NATS) Restart() {
	n.t.Helper()
	if !n.proc.Exited() {
		if err := n.proc.Stop(); err != nil {
			n.t.Logf("stopping nats-server before restart: %v", err)
		}
	}
	if err := n.start(); err != nil {
		n.t.Fatalf("restart nats-server: %v", err)
	}
}

// Connect opens a client connection that keeps reconnecting through kills and
// restarts, closed when the test ends. opts add e.g. credentials. A node of a
// cluster connects to the whole cluster: any node that is up.
func (n *NATS) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	url := n.URL()
	if n.cluster != nil {
		url = n.cluster.URLs()
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
