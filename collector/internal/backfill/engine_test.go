package backfill

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// What interrupts a backfill and what fails it: an error a new attempt
// meets again fails the job (it would loop), one that passes leaves the job
// running, to go on from its last stored chunk.
func TestPasses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		passes bool
	}{
		{"backend terminated (57P01)", &pgconn.PgError{Code: "57P01"}, true},
		{"server shutting down (57P02)", &pgconn.PgError{Code: "57P02"}, true},
		{"connection failure (08006)", &pgconn.PgError{Code: "08006"}, true},
		{"a standby's conflict with recovery (40001)", fmt.Errorf("read chunk: %w", &pgconn.PgError{Code: "40001", Message: "canceling statement due to conflict with recovery"}), true},
		{"deadlock (40P01)", &pgconn.PgError{Code: "40P01"}, true},
		{"statement_timeout (57014)", &pgconn.PgError{Code: "57014"}, false},
		{"permission denied (42501)", &pgconn.PgError{Code: "42501"}, false},
		{"undefined table (42P01)", &pgconn.PgError{Code: "42P01"}, false},
		{"not a Postgres error", errors.New("decode: bad row"), false},
	} {
		if got := passes(tt.err); got != tt.passes {
			t.Errorf("%s: passes = %v, want %v", tt.name, got, tt.passes)
		}
	}
}
