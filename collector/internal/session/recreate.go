package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// GapDropped is a Gap's Reason (and Cause) when someone dropped the slot.
const GapDropped = "dropped"

// Gap is a range of changes the raw stream will never hold: the slot was
// created again after Postgres invalidated it or someone dropped it.
type Gap struct {
	Slot string
	// Cause says what happened to the slot, e.g. "invalidated
	// (wal_removed)" or "dropped"; Reason is "dropped" or the
	// invalidation reason (wal_removed, idle_timeout, ...).
	Cause, Reason string
	// The changes committed after From are missing, up to To, where the
	// new slot starts.
	From, To uint64
	// NoticeSeq is the raw stream sequence of the gap notice consumers see
	// (0 when an earlier attempt stored it).
	NoticeSeq uint64
}

// Bytes is the WAL the gap spans.
func (g Gap) Bytes() uint64 {
	if g.To <= g.From {
		return 0
	}
	return g.To - g.From
}

// recreateSlot creates the slot again when it was invalidated, or dropped
// while the raw stream holds records of it, and the configuration allows
// it (--recreate-slot before the first session streamed; for an
// invalidated slot, --auto-recreate-slot's budget). It returns the gap
// accepted, or nil when the slot needs none of this; an invalidated slot
// it may not replace is a *pgsetup.SlotInvalidatedError.
//
// Order: the gap notice is stored in the raw stream before the slot is
// dropped, so that no crash can leave a re-created slot streaming after a
// gap nobody was told of. A crash after the notice and before the drop is
// recognized on restart (the same invalidated slot, the same start of the
// gap) and not told twice; a crash between the drop and the creation
// leaves a missing slot, which needs --recreate-slot again.
//
// stored says the raw stream holds records of this source's writer (see
// resume.Plan.SameWriter): without them a missing slot is a fresh start,
// which EnsureSlot handles.
func (s *session) recreateSlot(ctx context.Context, pgc *pgx.Conn, repl *pgconn.PgConn, src wire.Source, stored bool) (*Gap, error) {
	cfg, log := s.cfg, s.log
	st, err := pgsetup.ReadSlot(ctx, pgc, cfg.Slot)
	if err != nil {
		return nil, err
	}
	if st.Exists && !st.Invalidated() {
		return nil, nil
	}
	last, lastSeq, err := rawstream.LastMessage(ctx, s.js, cfg.RawStream, cfg.Source)
	if err != nil {
		return nil, err
	}
	stored = stored && last != nil
	byFlag := cfg.RecreateSlot && !s.streamed
	g := &Gap{Slot: cfg.Slot, To: st.CurrentWAL}
	switch {
	case st.Invalidated():
		s.probe.SlotInvalidated(st.Invalidation, st.ConfirmedFlush)
		invalid := &pgsetup.SlotInvalidatedError{Slot: cfg.Slot, Reason: st.Invalidation, From: st.ConfirmedFlush, Current: st.CurrentWAL}
		auto := s.autoRecreated < cfg.AutoRecreateSlot
		if !byFlag && !auto {
			return nil, invalid
		}
		if !byFlag {
			s.autoRecreated++
			log.Error(fmt.Sprintf("%v; re-creating it (--auto-recreate-slot, %d of %d)", invalid, s.autoRecreated, cfg.AutoRecreateSlot))
		} else {
			log.Error(fmt.Sprintf("%v; re-creating it (--recreate-slot)", invalid))
		}
		g.Cause, g.Reason, g.From = "invalidated ("+st.Invalidation+")", st.Invalidation, st.ConfirmedFlush
	case stored && byFlag:
		g.Cause, g.Reason = GapDropped, GapDropped
	default:
		return nil, nil
	}
	told, already := toldAlready(st, last)
	switch {
	case already:
		from, _ := pglogrepl.ParseLSN(told.FromLSN)
		g.From = uint64(from)
	case stored:
		// Records stored past the slot's confirmed position (read,
		// published, never confirmed) are not missing: the gap starts
		// after them.
		if pos, ok := last.Last(); ok && pos.CommitLSN > g.From {
			g.From = pos.CommitLSN
			// A transaction of reads ends at no commit (EndLSN 0): the gap
			// starts after its position.
			if t := &last.Txs[len(last.Txs)-1]; t.Final && t.EndLSN != 0 {
				g.From = t.EndLSN
			}
		}
	}

	n := wire.Notice{
		Kind: wire.NoticeGap,
		Message: fmt.Sprintf("changes committed after %s and before the next record of this source are missing: replication slot %s was %s and created again at %s",
			pglogrepl.LSN(g.From), cfg.Slot, g.Cause, pglogrepl.LSN(g.To)),
		SourceID: src.ID(),
		FromLSN:  pglogrepl.LSN(g.From).String(),
		ToLSN:    pglogrepl.LSN(g.To).String(),
	}
	if already {
		log.Info("the gap notice is in the raw stream already (an earlier attempt stopped before the slot was created again)", "from_lsn", told.FromLSN)
	} else {
		// An initial snapshot a stopped collector left open is closed
		// first, at its own position: closed after the notice, it would
		// be behind it, where routers skip it as going backwards.
		if pos, open := openInitialReads(last); stored && open {
			if lastSeq, err = rawstream.PublishAlone(ctx, s.js, cfg.RawStream, src, closingFragment(pos), lastSeq, cfg.AckTimeout, log); err != nil {
				return nil, fmt.Errorf("close the interrupted initial snapshot's reads before the gap notice: %w", err)
			}
		}
		tx, err := wire.NoticeTx(n, g.To)
		if err != nil {
			return nil, err
		}
		if g.NoticeSeq, err = rawstream.PublishAlone(ctx, s.js, cfg.RawStream, src, tx, lastSeq, cfg.AckTimeout, log); err != nil {
			return nil, fmt.Errorf("store the gap notice before re-creating slot %s: %w", cfg.Slot, err)
		}
	}
	// Asked for before the slot is replaced, so that a crash after the
	// replacement cannot leave the gap without its backfill (a collector
	// that starts again finds a valid slot and no gap to act on).
	if err := s.backfillGap(ctx, pgc, *g); err != nil {
		return nil, err
	}
	if st.Exists {
		if err := dropSlot(ctx, pgc, cfg.Slot); err != nil {
			return nil, err
		}
	}
	slot, err := pgsetup.EnsureSlot(ctx, pgc, repl, cfg.Slot, nil, pgsetup.CreateOptions{}, log)
	if err != nil {
		return nil, err
	}
	g.To = slot.ConfirmedFlush
	log.Warn(fmt.Sprintf("replication slot %s created again: the changes committed from %s to %s (%d bytes of WAL) are missing from the raw stream; consumers see a %s%s notice (raw seq %d); a backfill of the published tables reads their rows again (requested, unless snapshot.mode is never: then run pgjet-collector backfill); rows deleted in the gap send nothing: consumers that must hold exactly the tables clear them at the notice",
		cfg.Slot, pglogrepl.LSN(g.From), pglogrepl.LSN(g.To), g.Bytes(), wire.NoticePrefix, wire.NoticeGap, g.NoticeSeq),
		"from_lsn", pglogrepl.LSN(g.From), "to_lsn", pglogrepl.LSN(g.To), "gap_bytes", g.Bytes(), "cause", g.Cause)
	s.probe.Gap(*g)
	return g, nil
}

// toldAlready finds the gap notice an earlier attempt stored for this very
// invalidation before it stopped: the slot is still the invalidated one,
// the notice is the source's last record, and the slot's confirmed
// position is not past the WAL position the notice was written at (a
// slot created after a notice starts past it).
func toldAlready(st pgsetup.SlotState, last *wire.Message) (wire.Notice, bool) {
	n, ok := rawstream.LastNotice(last)
	if !ok || n.Kind != wire.NoticeGap || !st.Exists || !st.Invalidated() {
		return n, false
	}
	to, err := pglogrepl.ParseLSN(n.ToLSN)
	return n, err == nil && st.ConfirmedFlush <= uint64(to)
}

// dropSlot drops the (invalidated) slot, waiting for a walsender that
// still holds it to let go.
func dropSlot(ctx context.Context, pgc *pgx.Conn, slot string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := pgc.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		var pgErr *pgconn.PgError
		if err == nil || errors.As(err, &pgErr) && pgErr.Code == pgsetup.SQLStateUndefinedObject {
			return nil
		}
		if !errors.As(err, &pgErr) || pgErr.Code != pgsetup.SQLStateObjectInUse || time.Now().After(deadline) {
			return fmt.Errorf("drop invalidated replication slot %s: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// needsOperator reports whether err is a state of the slot or the
// publication that no retry can leave: an operator must act.
func needsOperator(err error) bool {
	var invalid *pgsetup.SlotInvalidatedError
	var gone *pgsetup.PublicationGoneError
	var missing *pgsetup.SlotMissingError
	return errors.As(err, &invalid) || errors.As(err, &gone) || errors.As(err, &missing)
}

// waitForOperator keeps a collector that cannot go on running, not
// ready, so that /readyz and the metrics say why: the line is logged now
// and every 10 minutes until ctx ends, which returns err.
func (s *session) waitForOperator(ctx context.Context, err error) error {
	s.probe.NotReady(err.Error())
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		s.log.Error("waiting for an operator (the collector stays up, not ready, while --metrics serves): " + err.Error())
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}
