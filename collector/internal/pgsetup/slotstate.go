package pgsetup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotState is a slot's row of pg_replication_slots, read the same way on
// every version: the columns that tell an invalidated slot came one per
// release (wal_status 13, conflicting 16, invalidation_reason 17).
type SlotState struct {
	Exists   bool
	Plugin   string
	Kind     string // slot_type: logical, physical
	Database string
	Active   bool
	PID      int32 // of the process holding it, 0: none
	// WALStatus is reserved, extended, unreserved or lost ("" before 13).
	WALStatus string
	// Invalidation is why Postgres invalidated the slot, "" while it is
	// valid: invalidation_reason (17+: wal_removed, rows_removed,
	// wal_level_insufficient, 18: idle_timeout), else wal_removed for
	// wal_status lost, else conflict for a 16 standby's conflicting slot.
	Invalidation   string
	ConfirmedFlush uint64
	// CurrentWAL is the server's WAL position when the row was read.
	CurrentWAL uint64
}

// Invalidated reports whether Postgres invalidated the slot: it can no
// longer stream anything.
func (s SlotState) Invalidated() bool { return s.Invalidation != "" }

// ReadSlot reads the slot named slot (Exists false when there is none).
func ReadSlot(ctx context.Context, conn *pgx.Conn, slot string) (SlotState, error) {
	var row []byte
	var current string
	err := conn.QueryRow(ctx, `SELECT (SELECT to_jsonb(s) FROM pg_replication_slots s WHERE slot_name = $1),
		(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`, slot).Scan(&row, &current)
	if err != nil {
		return SlotState{}, fmt.Errorf("look up replication slot %s: %w", slot, err)
	}
	if row == nil {
		s, err := parseSlotRow([]byte(`{}`), current)
		s.Exists = false
		return s, err
	}
	return parseSlotRow(row, current)
}

func parseSlotRow(row []byte, current string) (SlotState, error) {
	var r struct {
		Plugin      *string `json:"plugin"`
		Kind        string  `json:"slot_type"`
		Database    *string `json:"database"`
		Active      bool    `json:"active"`
		PID         *int32  `json:"active_pid"`
		WALStatus   *string `json:"wal_status"`
		Confirmed   *string `json:"confirmed_flush_lsn"`
		Conflicting *bool   `json:"conflicting"`
		Reason      *string `json:"invalidation_reason"`
	}
	if err := json.Unmarshal(row, &r); err != nil {
		return SlotState{}, fmt.Errorf("read pg_replication_slots: %w", err)
	}
	s := SlotState{Exists: true, Kind: r.Kind, Active: r.Active}
	for _, v := range []struct {
		dst *string
		src *string
	}{{&s.Plugin, r.Plugin}, {&s.Database, r.Database}, {&s.WALStatus, r.WALStatus}} {
		if v.src != nil {
			*v.dst = *v.src
		}
	}
	if r.PID != nil {
		s.PID = *r.PID
	}
	switch {
	case r.Reason != nil && *r.Reason != "":
		s.Invalidation = *r.Reason
	case s.WALStatus == "lost":
		s.Invalidation = "wal_removed"
	case r.Conflicting != nil && *r.Conflicting:
		s.Invalidation = "conflict"
	}
	for _, v := range []struct {
		text string
		dst  *uint64
	}{{deref(r.Confirmed), &s.ConfirmedFlush}, {current, &s.CurrentWAL}} {
		if v.text == "" {
			continue
		}
		lsn, err := pglogrepl.ParseLSN(v.text)
		if err != nil {
			return SlotState{}, fmt.Errorf("read pg_replication_slots: LSN %q: %w", v.text, err)
		}
		*v.dst = uint64(lsn)
	}
	return s, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// InvalidationCause says in words why Postgres invalidates a slot for
// reason (SlotState.Invalidation).
func InvalidationCause(reason string) string {
	switch reason {
	case "wal_removed":
		return "it fell more than max_slot_wal_keep_size behind, and Postgres removed WAL it still needed"
	case "idle_timeout":
		return "it was inactive for longer than idle_replication_slot_timeout"
	case "rows_removed":
		return "catalog rows it needed were removed (on a standby: a conflict with recovery; is hot_standby_feedback on?)"
	case "wal_level_insufficient":
		return "wal_level on the primary is below logical"
	case "conflict":
		return "a conflict with recovery on this standby (catalog rows removed, or wal_level below logical on the primary)"
	}
	return "Postgres invalidated it (" + reason + ")"
}

// SlotInvalidatedError says the slot can no longer stream: what Postgres
// did, the changes it costs and the way out.
type SlotInvalidatedError struct {
	Slot   string
	Reason string // SlotState.Invalidation
	// From is the slot's confirmed position: the changes committed after
	// it are lost to the stream. Current is the WAL position when the
	// invalidation was found; the gap grows until the slot exists again.
	From, Current uint64
}

func (e *SlotInvalidatedError) Error() string {
	return fmt.Sprintf("replication slot %q was invalidated (%s: %s): the changes committed after %s, its confirmed position, "+
		"up to the slot's re-creation (WAL is at %s now) can no longer be streamed. To go on, accepting that gap: restart with "+
		"--recreate-slot (it drops the slot, writes a gap notice for consumers, creates the slot again and backfills the "+
		"published tables: pgjet-collector backfill); --auto-recreate-slot N lets the collector do this by itself",
		e.Slot, e.Reason, InvalidationCause(e.Reason), pglogrepl.LSN(e.From), pglogrepl.LSN(e.Current))
}

// PublicationGoneError says the slot cannot decode past a point because
// the publication did not exist there: it was dropped (and maybe created
// again) after the slot's position. Postgres reads a publication as it was
// when each change was made, so every restart fails at the same change.
type PublicationGoneError struct {
	Slot, Publication string
	// At is where decoding failed (Postgres's "associated LSN"), "" when
	// it did not say.
	At  string
	Err error
}

func (e *PublicationGoneError) Error() string {
	at := ""
	if e.At != "" {
		at = " at " + e.At
	}
	return fmt.Sprintf("slot %q cannot decode past a change%s: publication %q did not exist when it was made (Postgres: %v). "+
		"It was dropped, and perhaps created again, after the slot's position; Postgres reads a publication as it was at each "+
		"change, so every restart fails here. To go on: drop the slot (SELECT pg_drop_replication_slot('%s')), start the "+
		"collector with --recreate-slot (the changes committed since are missing: a gap notice tells consumers, and a backfill "+
		"of the published tables follows: pgjet-collector backfill)", e.Slot, at, e.Publication, e.Err, e.Slot)
}

func (e *PublicationGoneError) Unwrap() error { return e.Err }

// SQLSTATEs the collector tells apart.
const (
	// SQLStateObjectInUse (object_in_use): a slot held by another process.
	SQLStateObjectInUse = "55006"
	// SQLStateUndefinedObject (undefined_object): no such slot, or
	// pgoutput's "publication ... does not exist".
	SQLStateUndefinedObject = "42704"
)

// ExplainStreamError turns the walsender's error for a publication missing
// at a change into a PublicationGoneError; other errors come back as they
// are.
func ExplainStreamError(err error, slot, publication string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != SQLStateUndefinedObject || !publicationMissing(pgErr.Message) {
		return err
	}
	return &PublicationGoneError{Slot: slot, Publication: publication, At: associatedLSN(pgErr.Where), Err: errors.New(pgErr.Message)}
}

// SQLStateNotInPrerequisiteState (object_not_in_prerequisite_state) is the
// code of PostgreSQL 18's warning for a publication missing at a change.
const SQLStateNotInPrerequisiteState = "55000"

// PublicationSkipped turns PostgreSQL 18's notice for a publication missing
// at a change into a PublicationGoneError; nil for any other notice. Where
// 15-17 fail with an error, 18 warns "skipped loading publication", leaves
// the changes out and goes on: confirming past them would lose them
// silently, so the notice must end the session as the error does.
func PublicationSkipped(n *pgconn.Notice, slot, publication string) error {
	if n == nil || n.Code != SQLStateNotInPrerequisiteState || !strings.HasPrefix(n.Message, "skipped loading publication") {
		return nil
	}
	msg := n.Message
	if n.Detail != "" {
		msg += ": " + n.Detail
	}
	return &PublicationGoneError{Slot: slot, Publication: publication, At: associatedLSN(n.Where), Err: errors.New(msg)}
}

func publicationMissing(msg string) bool {
	return strings.HasPrefix(msg, "publication ") && strings.HasSuffix(msg, " does not exist")
}

// associatedLSN reads the LSN from the context Postgres gives a decoding
// error: `slot "s", output plugin "pgoutput", in the change callback,
// associated LSN 0/16B3748`.
func associatedLSN(where string) string {
	const key = "associated LSN "
	i := strings.Index(where, key)
	if i < 0 {
		return ""
	}
	rest := where[i+len(key):]
	if end := strings.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune("/0123456789ABCDEFabcdef", r) }); end >= 0 {
		rest = rest[:end]
	}
	return rest
}
