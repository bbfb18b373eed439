package pgsetup

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// The invalidation is found whatever the version says it with.
func TestParseSlotRow(t *testing.T) {
	for _, tc := range []struct {
		name, row, want string
	}{
		{"valid, 15", `{"plugin":"pgoutput","slot_type":"logical","database":"app","active":false,"wal_status":"reserved","confirmed_flush_lsn":"0/16B3748"}`, ""},
		{"lost, 15", `{"plugin":"pgoutput","slot_type":"logical","database":"app","active":false,"wal_status":"lost","confirmed_flush_lsn":"0/16B3748"}`, "wal_removed"},
		{"conflicting standby, 16", `{"plugin":"pgoutput","slot_type":"logical","wal_status":"reserved","conflicting":true,"confirmed_flush_lsn":"0/16B3748"}`, "conflict"},
		{"idle timeout, 18", `{"plugin":"pgoutput","slot_type":"logical","wal_status":"lost","conflicting":false,"invalidation_reason":"idle_timeout","confirmed_flush_lsn":"0/16B3748"}`, "idle_timeout"},
		{"valid, 17", `{"plugin":"pgoutput","slot_type":"logical","wal_status":"extended","conflicting":false,"invalidation_reason":null,"confirmed_flush_lsn":"0/16B3748"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSlotRow([]byte(tc.row), "0/5000000")
			if err != nil {
				t.Fatal(err)
			}
			if s.Invalidation != tc.want || s.Invalidated() != (tc.want != "") {
				t.Errorf("invalidation %q, want %q", s.Invalidation, tc.want)
			}
			if s.ConfirmedFlush != 0x16B3748 || s.CurrentWAL != 0x5000000 || !s.Exists {
				t.Errorf("%+v", s)
			}
		})
	}
}

// The error names the reason in words, the lost range and the way out.
func TestSlotInvalidatedError(t *testing.T) {
	msg := (&SlotInvalidatedError{Slot: "pgjet", Reason: "wal_removed", From: 0x16B3748, Current: 0x5000000}).Error()
	for _, want := range []string{`slot "pgjet" was invalidated (wal_removed`, "max_slot_wal_keep_size", "after 0/16B3748", "0/5000000", "--recreate-slot", "backfill", "--auto-recreate-slot"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	for _, reason := range []string{"wal_removed", "idle_timeout", "rows_removed", "wal_level_insufficient", "conflict", "something new"} {
		if InvalidationCause(reason) == "" {
			t.Errorf("no words for %s", reason)
		}
	}
}

// The walsender's "publication does not exist" becomes the explained error,
// with where decoding stopped; other errors pass through.
func TestExplainStreamError(t *testing.T) {
	pgErr := &pgconn.PgError{Code: "42704", Message: `publication "pgjet" does not exist`,
		Where: `slot "pgjet", output plugin "pgoutput", in the change callback, associated LSN 0/1A2B3C8`}
	err := ExplainStreamError(pgErr, "pgjet", "pgjet")
	var gone *PublicationGoneError
	if !errors.As(err, &gone) || gone.At != "0/1A2B3C8" {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{"at 0/1A2B3C8", "dropped", "pg_drop_replication_slot('pgjet')", "--recreate-slot", "backfill"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	other := &pgconn.PgError{Code: "42704", Message: `type "x" does not exist`}
	if got := ExplainStreamError(other, "pgjet", "pgjet"); got != error(other) {
		t.Errorf("other error changed: %v", got)
	}
	if ExplainStreamError(nil, "s", "p") != nil {
		t.Error("nil became an error")
	}
}

// PostgreSQL 18 warns where 15-17 fail; the warning ends the session the
// same way, and no other notice does.
func TestPublicationSkipped(t *testing.T) {
	where := `slot "pgjet", output plugin "pgoutput", in the change callback, associated LSN 0/17DC9D8`
	tests := []struct {
		name   string
		notice *pgconn.Notice
		gone   bool
	}{
		{"postgres 18 skips", &pgconn.Notice{Code: "55000", Message: `skipped loading publication "pgjet"`, Detail: "The publication does not exist at this point in the WAL.", Where: where}, true},
		{"other 55000 warning", &pgconn.Notice{Code: "55000", Message: `replication slot "pgjet" is waiting for standby`}, false},
		{"other message", &pgconn.Notice{Code: "01000", Message: `skipped loading publication "pgjet"`}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := PublicationSkipped(tt.notice, "pgjet", "pgjet")
			var gone *PublicationGoneError
			if got := errors.As(err, &gone); got != tt.gone {
				t.Fatalf("gone = %v (%v), want %v", got, err, tt.gone)
			}
			if tt.gone && (gone.At != "0/17DC9D8" || !strings.Contains(err.Error(), "--recreate-slot")) {
				t.Errorf("%v", err)
			}
		})
	}
}
