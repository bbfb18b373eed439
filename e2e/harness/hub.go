package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pgjet/pgjet/shared/pgtest"
)

// HubFile is the repository's hub config of the hub-and-leaf setup.
const HubFile = "deploy/nats/hub.conf"

// leafListenLine is the listen setting of the leafnodes block.
var leafListenLine = regexp.MustCompile(`(?s)(leafnodes\s*\{[^}]*?\n\s*listen:\s*)[^\n]*`)

// Hub is a nats-server process running deploy/nats/hub.conf as committed,
// so that the file cannot rot: the client port (-p) and the monitoring port
// (-m -1: any free one) are overridden on the command line. Two lines have no
// command-line override, so the hub runs a copy of the file in which they
// alone are replaced: store_dir (nats-server refuses -sd next to a file's
// store_dir) and the leafnodes block's listen (no flag sets it). server_name,
// the JetStream domain, sync_interval and the rest come from the file.
type Hub struct {
	*NATS
	leafPort int
}

// StartHub starts the hub with its store in a temp dir on free ports of
// 127.0.0.1. Restart keeps its ports and store.
func StartHub(t testing.TB) *Hub {
	t.Helper()
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var h *Hub
		if h, err = tryHub(t); err == nil {
			return h
		}
	}
	t.Fatalf("hub nats-server did not start: %v", err)
	return nil
}

func tryHub(t testing.TB) (*Hub, error) {
	t.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	leafPort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{NATS: &NATS{t: t, dir: t.TempDir(), port: port}, leafPort: leafPort}
	conf, err := withStoreDir(RepoFile(t, HubFile), h.dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(leafListenLine.FindAll(b, -1)); n != 1 {
		t.Fatalf("%s: %d leafnodes listen lines, want 1", HubFile, n)
	}
	b = leafListenLine.ReplaceAll(b, []byte(fmt.Sprintf("${1}127.0.0.1:%d", leafPort)))
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h.conf = conf
	h.args = []string{"-c", conf, "-p", fmt.Sprint(port), "-m", "-1"}
	if err := h.startNode(); err != nil {
		return nil, err
	}
	return h, nil
}

// LeafURL is the URL an edge dials to join the hub as a leaf node.
func (h *Hub) LeafURL() string { return fmt.Sprintf("nats-leaf://127.0.0.1:%d", h.leafPort) }

// Config is the name of the repository file the hub runs.
func (h *Hub) Config() string { return filepath.Base(HubFile) }
