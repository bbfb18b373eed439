package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/backfill"
	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// SnapshotConfig configures initial snapshots and backfills.
type SnapshotConfig struct {
	// Mode: snapshot.ModeInitial (a slot created now takes an initial
	// snapshot; the default), ModeNever, or ModeInitialOnly (take one
	// through a temporary slot, then stop).
	Mode string
	// Tables of the initial snapshot; empty: every published table.
	Tables []string
	// ChunkRows bounds the rows read and held at a time per reader.
	ChunkRows int
	// Parallel tables are read at once by an initial snapshot.
	Parallel int
	// Bucket is the key-value bucket of their progress.
	Bucket string
	// Auto backfills tables added to the publication, looking every
	// AutoEvery (0: 10 s).
	Auto      bool
	AutoEvery time.Duration
	// SQLRequests takes backfill requests written with SQL
	// (pg_logical_emit_message with prefix pgjet.backfill).
	SQLRequests bool
	// Stats are the process's figures; nil: the session's own.
	Stats *snapshot.Stats
}

// errSnapshotOnly ends the collector after an initial_only snapshot.
var errSnapshotOnly = errors.New("initial_only snapshot taken")

// snapshotPlan is what a session knows of snapshots before its slot is
// ensured.
type snapshotPlan struct {
	store    *snapshot.Store
	settings snapshot.Settings
	// tables, when set, are read from the snapshot the slot exports as it
	// is created now.
	tables []*snapshot.Table
	// interrupted is the position of an initial snapshot a stopped
	// collector did not finish (0: none): its transaction of reads is
	// closed before the slot streams, and a backfill goes on from where it
	// got.
	interrupted uint64
	// lastSeq is the raw stream's last sequence when the session started:
	// the initial snapshot's own publisher stores after it.
	lastSeq uint64
}

// prepareSnapshot opens the progress bucket, reads the session settings
// text output depends on (on repl, before anything else runs there), and
// decides about the initial snapshot: an initial_only one is taken here
// (errSnapshotOnly), a slot that is created now (creating: it is missing
// and may be created) will export one, whose tables are described now,
// before the slot exists, so that a table that cannot be snapshotted stops
// the collector before anything is created. recreated: the slot was just
// created again after a gap (see backfillGap).
func (s *session) prepareSnapshot(ctx context.Context, pgc *pgx.Conn, repl *pgconn.PgConn, src wire.Source, creating, recreated bool, lastSeq uint64) (*snapshotPlan, error) {
	cfg := s.cfg.Snapshot
	settings, err := snapshot.ReadSettings(ctx, repl)
	if err != nil {
		return nil, fmt.Errorf("read session settings: %w", err)
	}
	store, err := snapshot.OpenStore(ctx, s.js, cfg.Bucket, s.cfg.Source, true, s.cfg.RawReplicas)
	if err != nil {
		return nil, err
	}
	plan := &snapshotPlan{store: store, settings: settings, lastSeq: lastSeq}
	if cfg.Mode == snapshot.ModeInitialOnly {
		if err := s.initialOnly(ctx, pgc, repl, plan, src); err != nil {
			return nil, err
		}
		return nil, errSnapshotOnly
	}
	var exists bool
	if err := pgc.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", s.cfg.Slot).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up replication slot %s: %w", s.cfg.Slot, err)
	}
	job, jobRev, err := store.Get(ctx, snapshot.InitialID)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, err
	}
	if exists {
		switch {
		case job != nil && job.Slot == s.cfg.Slot && !job.Final():
			plan.interrupted = job.Position
			s.log.Info("the initial snapshot was interrupted: it goes on as a backfill from its last stored chunk once the slot streams",
				"slot", s.cfg.Slot, "job", job.ID)
		case cfg.Mode == snapshot.ModeInitial && recreated:
			// Created again after a gap: a backfill reads the rows again
			// (backfillGap).
		case cfg.Mode == snapshot.ModeInitial && (job == nil || job.Slot != s.cfg.Slot):
			s.log.Warn("replication slot "+s.cfg.Slot+" exists and took no initial snapshot: rows written before it was created are not in the raw stream; to send them run pgjet-collector backfill --table schema.table (or snapshot.mode: never to silence this)",
				"slot", s.cfg.Slot)
		}
		return plan, nil
	}
	if cfg.Mode != snapshot.ModeInitial || !creating {
		return plan, nil
	}
	if plan.tables, err = s.describe(ctx, pgc, cfg.Tables); err != nil {
		return nil, err
	}
	// Written before the slot exists: if the collector stops before the
	// snapshot is done, the next one finds the job and goes on with it.
	j := snapshot.NewJob(snapshot.InitialID, s.cfg.Source, snapshot.KindInitial, "initial", tableNames(plan.tables), nil)
	j.Slot, j.ChunkRows = s.cfg.Slot, cfg.ChunkRows
	if job == nil {
		_, err = store.Create(ctx, j)
	} else {
		_, err = store.Update(ctx, j, jobRev)
	}
	if err != nil {
		return nil, s.snapshotTaken(ctx, store, fmt.Errorf("record the initial snapshot: %w", err))
	}
	return plan, nil
}

// snapshotTaken is err, a failed write of the initial snapshot's job, or,
// when the job names another slot now, the one-writer refusal: another
// collector of the same source id wrote it meanwhile.
func (s *session) snapshotTaken(ctx context.Context, store *snapshot.Store, err error) error {
	job, _, gerr := store.Get(ctx, snapshot.InitialID)
	if gerr != nil || job.Slot == s.cfg.Slot {
		return err
	}
	return fmt.Errorf("source %q is written by another collector: slot %q takes its initial snapshot, this collector reads slot %q; a source id has exactly one writer: give this collector its own --source (e.g. --source %s_%s), or, if it replaces the other one (slot renamed, database restored or upgraded into a new cluster), start it once with %s",
		s.cfg.Source, job.Slot, s.cfg.Slot, s.cfg.Source, s.cfg.Slot, resume.TakeOverFlag)
}

// describe loads the tables to snapshot (all published when names is
// empty).
func (s *session) describe(ctx context.Context, pgc *pgx.Conn, names []string) ([]*snapshot.Table, error) {
	// A table without a key is read in one scan of the exported snapshot.
	tables, err := snapshot.Describe(ctx, pgc, s.cfg.Publication, names, func(ctx context.Context, oid uint32) (pgtypes.Type, error) {
		return pgtypes.Resolve(ctx, pgc, oid)
	}, true)
	if err != nil {
		return nil, fmt.Errorf("initial snapshot: %w", err)
	}
	return tables, nil
}

func tableNames(tables []*snapshot.Table) []string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	return names
}

// initialSnapshot takes the initial snapshot of a slot created now with
// its exported snapshot, before the slot streams: the reads go at the
// slot's consistent point - 1, before every change it streams. Once every
// reader has imported the snapshot, beforeStart runs (nil: nothing) and
// replication starts on repl, so that no other collector takes the slot
// meanwhile; what the server sends waits unread until the reads are
// stored. held reports whether replication was started.
func (s *session) initialSnapshot(ctx context.Context, plan *snapshotPlan, slot pgsetup.Slot, repl *pgconn.PgConn, src wire.Source, beforeStart func(context.Context) error, every time.Duration) (held bool, err error) {
	if plan.tables == nil || !slot.Created || slot.Snapshot == "" {
		return false, nil
	}
	s.probe.NotReady("taking the initial snapshot")
	var stopKeepalive func()
	defer func() {
		if stopKeepalive != nil {
			stopKeepalive()
		}
	}()
	hold := func(ctx context.Context) error {
		if beforeStart != nil {
			if err := beforeStart(ctx); err != nil {
				return err
			}
		}
		if err := replication.Start(ctx, repl, s.cfg.Slot, s.cfg.Publication); err != nil {
			return err
		}
		held = true
		stopKeepalive = keepalive(repl, slot.ConfirmedFlush, every)
		return nil
	}
	if err := s.readInitial(ctx, plan, slot.Snapshot, slot.ConsistentPoint, s.cfg.Slot, src, hold); err != nil {
		return held, err
	}
	return held, nil
}

// readInitial runs an initial snapshot of plan's tables from the exported
// snapshot at consistent point cp, through a publisher of its own, and
// waits until every read is stored.
func (s *session) readInitial(ctx context.Context, plan *snapshotPlan, exported string, cp uint64, slotName string, src wire.Source, imported func(context.Context) error) error {
	cfg, log := s.cfg.Snapshot, s.log
	store := plan.store
	job, rev, err := store.Get(ctx, snapshot.InitialID)
	if err != nil {
		return fmt.Errorf("read the initial snapshot's job: %w", err)
	}
	if slotName != "" && job.Slot != slotName {
		return s.snapshotTaken(ctx, store, fmt.Errorf("the initial snapshot's job names slot %q", job.Slot))
	}
	now := time.Now().UTC()
	job.State, job.Started, job.Position, job.Slot = snapshot.StateRunning, &now, cp-1, slotName
	if rev, err = store.Update(ctx, job, rev); err != nil {
		if slotName != "" {
			return s.snapshotTaken(ctx, store, fmt.Errorf("record the initial snapshot: %w", err))
		}
		return fmt.Errorf("record the initial snapshot: %w", err)
	}
	stats := cfg.Stats
	p := snapshot.NewProgress(store, job, rev, stats, log)
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go p.Run(pctx)
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go func() {
		// The changes after the consistent point wait for the snapshot.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			stats.SetLag(time.Since(now))
			select {
			case <-lagCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	// A publisher of its own: reads confirm nothing to Postgres.
	maxMsg := s.maxMessage()
	pub := s.publisher(src, checkpoint.New(0), plan.lastSeq)
	pubErr, stopPub := s.runPublisher(pub)
	defer stopPub()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Another writer's record on the subject (the one-writer refusal) ends
	// the snapshot.
	cancelOn(pubErr, cancel)
	emit := func(ctx context.Context, f *pgoutput.Fragment) error {
		for {
			err := pub.Add(ctx, f, time.Second)
			if !errors.Is(err, rawstream.ErrQueueFull) {
				return err
			}
		}
	}
	log.Info("initial snapshot", "tables", len(plan.tables), "parallel", cfg.Parallel, "chunk_rows", cfg.ChunkRows,
		"consistent_point", pglogrepl.LSN(cp))
	began := time.Now()
	err = snapshot.RunInitial(runCtx, snapshot.InitialConfig{
		DSN: s.cfg.DSN, Snapshot: exported, Position: cp - 1, Tables: plan.tables,
		ChunkRows: cfg.ChunkRows, Parallel: cfg.Parallel, Emit: emit, MaxFragment: min(maxMsg, s.cfg.MaxMessage/2),
		Settings: plan.settings, Progress: p, Imported: imported, Log: log,
	})
	if err == nil {
		err = pub.Drain(runCtx)
	}
	select {
	case perr := <-pubErr:
		if perr != nil {
			err = perr
		}
	default:
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var writer *resume.WriterError
		if errors.As(err, &writer) {
			return err
		}
		return fmt.Errorf("initial snapshot: %w", err)
	}
	stats.SetLag(0)
	j := p.Job()
	var rows int64
	for _, t := range j.Tables {
		rows += t.Rows
	}
	took := time.Since(began)
	log.Info("initial snapshot done", "tables", len(j.Tables), "rows", rows, "took", took.Round(time.Millisecond),
		"rows_per_s", int64(float64(rows)/max(took.Seconds(), 1e-3)))
	return p.Finish(ctx, snapshot.StateDone, nil)
}

// keepalive sends the slot's position to the server every interval
// (replication.StatusIntervalFor the walsender's wal_sender_timeout) while
// the stream is not read, so that the walsender does not time the
// connection out; the returned function stops it.
func keepalive(repl *pgconn.PgConn, confirmed uint64, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		lsn := pglogrepl.LSN(confirmed)
		for {
			// Explicit flush position: never the received one.
			_ = pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
				WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn})
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// initialOnly takes a snapshot of the tables through a temporary slot and
// returns: initial_only streams nothing. After a crash it starts over.
func (s *session) initialOnly(ctx context.Context, pgc *pgx.Conn, repl *pgconn.PgConn, plan *snapshotPlan, src wire.Source) error {
	var err error
	if plan.tables, err = s.describe(ctx, pgc, s.cfg.Snapshot.Tables); err != nil {
		return err
	}
	j := snapshot.NewJob(snapshot.InitialID, s.cfg.Source, snapshot.KindInitial, "initial", tableNames(plan.tables), nil)
	j.ChunkRows = s.cfg.Snapshot.ChunkRows
	if _, err := plan.store.Put(ctx, j); err != nil {
		return fmt.Errorf("record the initial snapshot: %w", err)
	}
	name := fmt.Sprintf("pgjet_initial_only_%d", repl.PID())
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: pgsetup.ExportSnapshotAction(ctx, pgc)})
	if err != nil {
		return fmt.Errorf("create a temporary replication slot for the snapshot: %w", err)
	}
	cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("temporary slot's consistent point %q: %w", res.ConsistentPoint, err)
	}
	if err := s.readInitial(ctx, plan, res.SnapshotName, uint64(cp), "", src, nil); err != nil {
		return err
	}
	s.log.Info("snapshot.mode initial_only: the snapshot is stored; stopping")
	return nil
}

// closeInterrupted closes the transaction of reads of an initial snapshot
// interrupted after last (the raw stream's last record of the source). The
// rest of the snapshot comes as a backfill.
func closeInterrupted(ctx context.Context, pub *rawstream.Publisher, plan *snapshotPlan, last wire.Position) error {
	if plan == nil || plan.interrupted == 0 || last.CommitLSN != plan.interrupted || last.Final {
		return nil
	}
	return pub.Add(ctx, &pgoutput.Fragment{Tx: closingFragment(last), Size: 128}, time.Minute)
}

// closingFragment ends the transaction of reads an initial snapshot left
// open at last: a final fragment with no change, as a split transaction's
// last one. A row it stopped in the middle of storing in pieces is left
// behind (routers drop it: relay.abandoned); the backfill that goes on
// with the snapshot reads it again.
func closingFragment(last wire.Position) wire.Tx {
	next := last.Change
	if last.Piece != 0 {
		next++
	}
	return wire.Tx{CommitLSN: last.CommitLSN, Fragment: last.Fragment + 1, FirstChange: next, Final: true,
		CommitTime: time.Now().UnixMicro(), Snapshot: &wire.Snapshot{Kind: wire.SnapshotInitial, ID: snapshot.InitialID}}
}

// openInitialReads reports where the initial snapshot's transaction of
// reads that last (the raw stream's last record of the source) leaves
// open ends: a collector stopped while reading it.
func openInitialReads(last *wire.Message) (wire.Position, bool) {
	if last == nil || len(last.Txs) == 0 {
		return wire.Position{}, false
	}
	t := &last.Txs[len(last.Txs)-1]
	if t.Final || t.Snapshot == nil || t.Snapshot.Kind != wire.SnapshotInitial {
		return wire.Position{}, false
	}
	return last.Last()
}

// startBackfills makes the decoder's stream followed for backfills and
// runs their engine until ctx ends; errs gets its error. The function it
// returns stops the engine and waits until it has.
func (s *session) startBackfills(ctx context.Context, plan *snapshotPlan, dec *pgoutput.Decoder, errs chan<- error) (wait func()) {
	cfg := s.cfg.Snapshot
	tracker := backfill.NewTracker(dec.Emit, dec.MaxFragment(), cfg.Stats, s.log)
	if cfg.SQLRequests {
		tracker.OnRequest(backfill.SQLRequests(plan.store, s.log.Warn))
	}
	dec.Observe(tracker)
	eng := backfill.New(backfill.Config{
		DSN: s.cfg.DSN, Primary: s.cfg.Heartbeat.DSN, Publication: s.cfg.Publication, Settings: plan.settings, ChunkRows: cfg.ChunkRows,
		Store: plan.store, Tracker: tracker, Stats: cfg.Stats, Auto: cfg.Auto, AutoEvery: cfg.AutoEvery, Log: s.log,
		Resolve: pgtypes.Resolve,
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eng.Run(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, backfill.ErrWatchEnded) {
				err = &restartError{err: err} // a new session watches again
			}
			errs <- err
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// backfillGap requests a backfill of the published tables for the gap g,
// so that their rows come back to what the gap left out once the slot
// created again streams (a table's rows at the backfill's chunks, then its
// changes): what the initial snapshot does for a new slot. The job is
// named after the gap: asked again for the same gap, it is not asked
// twice. With snapshot.mode never it is the operator's to ask for.
func (s *session) backfillGap(ctx context.Context, pgc *pgx.Conn, g Gap) error {
	cfg := s.cfg.Snapshot
	if cfg.Mode == snapshot.ModeNever {
		s.log.Warn("snapshot.mode is never: no backfill after the gap; run pgjet-collector backfill --table schema.table for each published table to restore its rows")
		return nil
	}
	store, err := snapshot.OpenStore(ctx, s.js, cfg.Bucket, s.cfg.Source, true, s.cfg.RawReplicas)
	if err != nil {
		return err
	}
	j, created, err := backfill.RequestAfterGap(ctx, store, pgc, s.cfg.Publication, g.From)
	switch {
	case err != nil:
		return fmt.Errorf("request the backfill after the gap: %w", err)
	case j == nil:
		s.log.Info("the publication has no tables: nothing to backfill after the gap")
	case created:
		s.log.Info("backfill of the published tables requested to read their rows again after the gap (it runs once the slot streams)", "job", j.ID, "tables", len(j.Tables))
	default:
		s.log.Info("the backfill after this gap was requested already", "job", j.ID, "state", j.State)
	}
	return nil
}
