// Package natstest runs real in-process JetStream servers for tests.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Run starts a JetStream server on a free port with file storage in a temp
// dir, and shuts it down when the test ends.
func Run(t testing.TB) *server.Server {
	t.Helper()
	return RunDir(t, t.TempDir())
}

// RunDir is Run with a given store dir, so a test can restart a server on the
// same data.
func RunDir(t testing.TB, dir string) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
