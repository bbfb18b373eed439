package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// No server to connect to (a primary down, its standby not yet promoted)
// is retried on the short cap; other errors keep the long backoff.
func TestUnreachable(t *testing.T) {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, connErr := pgconn.Connect(ctx, fmt.Sprintf("postgres://u@127.0.0.1:%d,127.0.0.1:%d/db?target_session_attrs=read-write&connect_timeout=2", port, port))
	if connErr == nil {
		t.Fatal("connected to a free port")
	}
	wrapped := fmt.Errorf("cannot connect to PostgreSQL at ...: %w", ConnError(connErr))
	for _, tt := range []struct {
		name                   string
		err                    error
		unreachable, transient bool
	}{
		{"no server at any host", wrapped, true, true},
		{"stream broken", fmt.Errorf("receive replication message: %w", pgconn.ErrConnClosed), false, true},
		{"a session restarted after another's record", &restartError{err: errors.New("raw subject moved")}, false, true},
		{"the user's to fix", errors.New("wal_level is replica"), false, false},
	} {
		if got := unreachable(tt.err); got != tt.unreachable {
			t.Errorf("%s: unreachable = %v, want %v", tt.name, got, tt.unreachable)
		}
		if got := transient(tt.err); got != tt.transient {
			t.Errorf("%s: transient = %v, want %v", tt.name, got, tt.transient)
		}
	}
}
