package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// Config configures an Engine.
type Config struct {
	// DSN of the engine's own connection: it writes the watermarks and
	// reads the chunks.
	DSN string
	// Primary, when DSN is a standby, is the DSN of its primary, where the
	// watermarks are written (a standby cannot write). Chunks are still
	// read on the standby, whose stream the tracker follows: a transaction
	// decoded before the tracker watched the table is replayed there, so
	// visible to the chunk's snapshot, and any decoded later is judged by
	// its visibility; the standby need not catch up with the low watermark
	// (a standby applying late, recovery_min_apply_delay, slows nothing).
	// Without Primary, a backfill from a standby is refused.
	Primary     string
	Publication string
	// Settings are the replication connection's (snapshot.Settings).
	Settings  snapshot.Settings
	ChunkRows int
	Store     *snapshot.Store
	Tracker   *Tracker
	Stats     *snapshot.Stats
	// Resolve describes user-defined types, as the decoder does.
	Resolve func(ctx context.Context, conn *pgx.Conn, oid uint32) (pgtypes.Type, error)
	// Auto: a table added to the publication is backfilled (a job by
	// "auto"), also one added while the collector was stopped.
	Auto bool
	// AutoEvery is how often the publication is looked at for Auto.
	AutoEvery time.Duration
	Log       *slog.Logger
}

// Engine runs the backfills of one source while its changes stream: the
// jobs in the bucket that are requested, and those a stopped collector left
// running (they resume from their last stored chunk), one at a time, the
// oldest first.
type Engine struct {
	cfg  Config
	conn *pgx.Conn
	// wconn writes the watermarks: conn, or the primary's when conn is a
	// standby's (standby set).
	wconn   *pgx.Conn
	standby bool
	// refuse, when set, fails every job: a standby without a primary.
	refuse error
	log    *slog.Logger
	// run names this run's chunks: watermarks of an earlier run that the
	// stream replays match nothing.
	run string

	mu      sync.Mutex
	current *snapshot.Progress
}

// New returns an Engine; Run runs it.
func New(cfg Config) *Engine {
	if cfg.AutoEvery <= 0 {
		cfg.AutoEvery = 10 * time.Second
	}
	return &Engine{cfg: cfg, log: cfg.Log, run: fmt.Sprintf("%x", time.Now().UnixNano())}
}

// Current returns the running job's progress, nil when none runs.
func (e *Engine) Current() *snapshot.Progress {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current
}

// Run runs jobs until ctx ends (nil) or an error that stops the session.
func (e *Engine) Run(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.cfg.DSN)
	if err != nil {
		return fmt.Errorf("backfill: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := e.cfg.Settings.Apply(ctx, conn); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	e.conn, e.wconn = conn, conn
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&e.standby); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if e.standby {
		if e.cfg.Primary == "" {
			e.refuse = errors.New("the collector decodes from a standby, which cannot write a backfill's watermarks: give --heartbeat-dsn (spec.source.config.heartbeat.dsn) naming the primary")
		} else {
			w, err := pgx.Connect(ctx, e.cfg.Primary)
			if err != nil {
				return fmt.Errorf("backfill: connect to the primary: %w", err)
			}
			defer w.Close(context.Background())
			e.wconn = w
		}
	}
	if err := e.cfg.Store.Forget(ctx, time.Now().Add(-forgetAfter)); err != nil && ctx.Err() == nil {
		e.log.Warn("could not forget old snapshot jobs", "err", err)
	}

	w, err := e.cfg.Store.Watch(ctx)
	if err != nil {
		return fmt.Errorf("backfill: watch jobs: %w", err)
	}
	defer w.Stop()
	jobs := map[string]*snapshot.Job{}
	auto := time.NewTicker(e.cfg.AutoEvery)
	defer auto.Stop()
	if e.cfg.Auto {
		e.autoRequest(ctx)
	}
	for {
		// Everything the watcher has, then the next job.
		for drained := false; !drained; {
			select {
			case entry, ok := <-w.Updates():
				if !ok {
					return watchEnded(ctx)
				}
				if entry == nil {
					continue // the current values are all in
				}
				j, err := snapshot.JobOf(entry)
				if err != nil {
					e.log.Warn("unreadable job entry in the snapshot bucket; ignored", "key", entry.Key(), "err", err)
					continue
				}
				if j == nil {
					delete(jobs, strings.TrimPrefix(entry.Key(), e.cfg.Store.Source()+".job."))
					continue
				}
				jobs[j.ID] = j
			default:
				drained = true
			}
		}
		if j := next(jobs); j != nil {
			if err := e.runJob(ctx, j); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			delete(jobs, j.ID) // its entry comes again through the watcher
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case entry, ok := <-w.Updates():
			if !ok {
				return watchEnded(ctx)
			}
			if entry != nil {
				if j, err := snapshot.JobOf(entry); err == nil && j != nil {
					jobs[j.ID] = j
				}
			}
		case <-auto.C:
			if e.cfg.Auto {
				e.autoRequest(ctx)
			}
		}
	}
}

// ErrWatchEnded: the watch of the jobs ended while Run did not (a
// connection closed for good): watching again is the caller's to do.
var ErrWatchEnded = errors.New("backfill: the watch of the snapshot bucket ended")

// ErrInterrupted: the engine's work was cut by something that passes, not
// by the job: its connection to Postgres failed (the server restarting or
// failing over, the backend terminated), or a standby cancelled a chunk's
// read for a conflict with recovery. The job is not failed for it: it
// stays running and goes on from its last stored chunk when the engine
// runs again, which is the caller's to do (the session starts again, as
// after a crash).
var ErrInterrupted = errors.New("backfill: interrupted")

// interrupted reports whether err cut the engine's work, not the job's
// (ErrInterrupted): a closed connection, or an error passing (passes).
func (e *Engine) interrupted(err error) bool {
	return e.conn.IsClosed() || e.wconn.IsClosed() || passes(err)
}

// passes reports whether err is a Postgres error that a new attempt does
// not meet again: a connection exception (08), an operator intervention
// (57: shutdown, termination, "cannot connect now") except a cancelled
// statement (57014, statement_timeout: it would fail again), or a
// serialization failure (40001: how a standby cancels a query for a
// conflict with recovery) or deadlock (40P01).
func passes(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch c := pgErr.Code; {
	case c == queryCanceled:
		return false
	case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "57"), c == "40001", c == "40P01":
		return true
	}
	return false
}

// queryCanceled is SQLSTATE query_canceled.
const queryCanceled = "57014"

// watchEnded is Run's end when the watch of the jobs closed its channel:
// it does when ctx ends (the watch was made with it), and a closed channel
// is always ready, so it must end the loop, not be read again.
func watchEnded(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return ErrWatchEnded
}

// forgetAfter: ended jobs are kept this long for status.
const forgetAfter = 7 * 24 * time.Hour

// next picks the job to run: one a stopped collector left running first,
// then the oldest requested one.
func next(jobs map[string]*snapshot.Job) *snapshot.Job {
	var best *snapshot.Job
	for _, j := range jobs {
		if j.State != snapshot.StateRunning && j.State != snapshot.StateRequested {
			continue
		}
		if j.Kind == snapshot.KindInitial && j.Slot == "" {
			continue // initial_only: not continued by streaming
		}
		switch {
		case best == nil,
			j.State == snapshot.StateRunning && best.State != snapshot.StateRunning,
			j.State == best.State && j.Created.Before(best.Created):
			best = j
		}
	}
	return best
}

// errCancelled ends a job that a requester cancelled.
var errCancelled = errors.New("cancelled")

// runJob runs j to its end. It returns an error only when the session must
// stop (the stream or the bucket failed); a job that cannot run is marked
// failed and the engine goes on.
func (e *Engine) runJob(ctx context.Context, j *snapshot.Job) error {
	store := e.cfg.Store
	j, rev, err := store.Get(ctx, j.ID)
	if err != nil {
		return fmt.Errorf("backfill: read job: %w", err)
	}
	if j.Final() {
		return nil
	}
	resumed := j.State == snapshot.StateRunning
	var names []string
	for _, t := range j.Tables {
		if t.State != snapshot.StateDone && t.State != snapshot.StateFailed {
			names = append(names, t.Table)
		}
	}
	// Each table on its own: one that cannot be backfilled (not published,
	// no key) fails alone, named, and the others go on.
	var tables []*snapshot.Table
	refused := map[string]error{}
	for _, name := range names {
		ts, err := snapshot.Describe(ctx, e.conn, e.cfg.Publication, []string{name}, func(ctx context.Context, oid uint32) (pgtypes.Type, error) {
			return e.cfg.Resolve(ctx, e.conn, oid)
		}, false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && e.interrupted(err) {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		if err != nil {
			refused[name] = err
			continue
		}
		tables = append(tables, ts...)
	}
	now := time.Now().UTC()
	if j.Started == nil {
		j.Started = &now
	}
	if resumed {
		j.Resumed++
	}
	j.State = snapshot.StateRunning
	if j.ChunkRows == 0 {
		j.ChunkRows = e.cfg.ChunkRows
	}
	if rev, err = store.Update(ctx, j, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return nil // changed meanwhile (cancelled?): the watcher brings it again
		}
		return fmt.Errorf("backfill: write job: %w", err)
	}
	if resumed {
		e.log.Info("resuming backfill from its last stored chunk", "job", j.ID, "tables", names, "by", j.By)
	} else {
		e.log.Info("backfill started", "job", j.ID, "tables", names, "sinks", j.Sinks, "by", j.By)
	}
	p := snapshot.NewProgress(store, j, rev, e.cfg.Stats, e.log)
	e.mu.Lock()
	e.current = p
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.current = nil
		e.mu.Unlock()
	}()
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go p.Run(pctx)

	var failed []string
	for _, name := range names {
		if e.refuse != nil {
			refused[name] = e.refuse
		}
		if err, ok := refused[name]; ok {
			if tp := j.Table(name); tp != nil && tp.Rows > 0 && snapshot.IsNoKey(err) {
				err = fmt.Errorf("%d rows were stored before the collector stopped, the rest cannot be read: %w", tp.Rows, err)
			}
			e.log.Error("backfill of a table refused", "job", j.ID, "table", name, "err", err)
			p.EndTable(name, err)
			failed = append(failed, name)
		}
	}
	for _, t := range tables {
		if e.refuse != nil {
			break
		}
		err := e.runTable(ctx, j, t, p)
		switch {
		case errors.Is(err, errCancelled):
			e.log.Info("backfill cancelled", "job", j.ID, "table", t.String())
			return p.Finish(context.Background(), snapshot.StateCancelled, nil)
		case err != nil && ctx.Err() != nil:
			return nil // stopped: resumes with the next session
		case err != nil && e.interrupted(err):
			e.log.Warn("backfill interrupted: it goes on from its last stored chunk", "job", j.ID, "table", t.String(), "err", err)
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		case err != nil:
			e.log.Error("backfill failed", "job", j.ID, "table", t.String(), "err", err)
			p.EndTable(t.String(), err)
			if ferr := p.Finish(context.Background(), snapshot.StateFailed, err); ferr != nil {
				return ferr
			}
			return nil
		}
	}
	job := p.Job()
	if len(failed) > 0 {
		err := fmt.Errorf("tables refused: %s (see each table's error)", strings.Join(failed, ", "))
		e.log.Error("backfill ended with tables refused", "job", j.ID, "refused", failed)
		return p.Finish(ctx, snapshot.StateFailed, err)
	}
	e.log.Info("backfill done", "job", j.ID, "tables", len(job.Tables), "took", time.Since(*job.Started).Round(time.Millisecond))
	return p.Finish(ctx, snapshot.StateDone, nil)
}

// maxRetries bounds how often one chunk is read again (a key the stream
// could not name changed while it was read) before the job fails.
const maxRetries = 20

// runTable backfills t from its last stored key: chunk by chunk, each
// between watermarks, each emitted by the tracker at its high watermark.
// It returns once the last chunk is stored.
func (e *Engine) runTable(ctx context.Context, j *snapshot.Job, t *snapshot.Table, p *snapshot.Progress) error {
	tp := j.Table(t.String())
	if tp == nil {
		// A job written by hand, or before names were made canonical.
		return fmt.Errorf("job %s does not name table %s as the collector does: cancel it and request the backfill again", j.ID, t)
	}
	after := tp.After()
	p.StartTable(t.String(), t.Estimate)
	tr := e.cfg.Tracker
	// Watched before the first low watermark, for as long as chunks of it
	// are read: no change a chunk's snapshot misses goes unrecorded.
	tr.Watch(t)
	defer tr.Unwatch(t)
	table := t.String()
	allStored := make(chan struct{})
	retries := 0
	for n := tp.Chunks; ; n++ {
		if p.Cancelled() {
			return errCancelled
		}
		id := fmt.Sprintf("%s/%s/%d", j.ID, e.run, n)
		pc := &pendingChunk{id: id, job: j, done: make(chan chunkResult, 1)}
		tr.expect(pc)
		chunk, snap, err := e.readChunk(ctx, t, after, j.ChunkRows, id)
		if err != nil {
			tr.forget(id)
			return err
		}
		last, more := chunk.Last(), chunk.More
		if last == nil {
			last = after
		}
		pc.stored = func(rows int) {
			p.Stored(table, last, int64(rows))
			if !more {
				p.EndTable(table, nil)
				close(allStored)
			}
		}
		tr.read(pc, chunk, snap)
		if err := e.watermark(ctx, id, "high"); err != nil {
			tr.forget(id)
			return err
		}
		var res chunkResult
		select {
		case <-ctx.Done():
			tr.forget(id)
			return ctx.Err()
		case res = <-pc.done:
		}
		if res.err != nil {
			return res.err
		}
		if res.retry {
			retries++
			if retries > maxRetries {
				return fmt.Errorf("a chunk was read %d times, each time a key in it changed in a way the stream does not name (an unchanged TOAST value in a key column?)", retries)
			}
			continue
		}
		retries = 0
		if !more {
			break
		}
		after = last
	}
	select {
	case <-allStored:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readChunk writes id's low watermark and reads the chunk of t after key
// after, with the snapshot it was read under. A snapshot that misses a
// transaction whose commit is already recorded (it waits to become
// visible: a synchronous standby holds it) is not used: that transaction's
// changes may precede the low watermark in the stream, so the chunk is
// read again once it is visible.
func (e *Engine) readChunk(ctx context.Context, t *snapshot.Table, after []wire.Value, rows int, id string) (*snapshot.Chunk, *pgSnapshot, error) {
	if err := e.watermark(ctx, id, "low"); err != nil {
		return nil, nil, err
	}
	wait := backoff.New(10*time.Millisecond, time.Second)
	began := time.Now()
	warned := false
	for {
		chunk, snap, waiting, err := e.readOnce(ctx, t, after, rows)
		if err != nil || waiting == "" {
			return chunk, snap, err
		}
		if !warned && time.Since(began) > 5*time.Second {
			e.log.Warn("backfill waits for transactions that committed but are not visible yet (a synchronous standby not answering?)", "xids", waiting, "table", t.String())
			warned = true
		}
		if err := wait.Sleep(ctx, wait.Next()); err != nil {
			return nil, nil, err
		}
	}
}

// readOnce reads a chunk in a transaction of its own; waiting lists the
// transactions it must wait for instead, if any.
func (e *Engine) readOnce(ctx context.Context, t *snapshot.Table, after []wire.Value, rows int) (chunk *snapshot.Chunk, snap *pgSnapshot, waiting string, err error) {
	tx, err := e.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, "", fmt.Errorf("backfill: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	var text string
	var committed []string
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text,
			ARRAY(SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) x WHERE pg_xact_status(x) = 'committed')`).Scan(&text, &committed); err != nil {
		return nil, nil, "", fmt.Errorf("backfill: read snapshot: %w", err)
	}
	if len(committed) > 0 {
		return nil, nil, strings.Join(committed, ","), nil
	}
	if snap, err = parseSnapshot(text); err != nil {
		return nil, nil, "", err
	}
	if chunk, err = snapshot.ReadChunk(ctx, e.conn.PgConn(), t, after, rows); err != nil {
		return nil, nil, "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, "", fmt.Errorf("backfill: end chunk transaction: %w", err)
	}
	return chunk, snap, "", nil
}

// watermark writes a watermark of chunk id into the WAL, in a transaction
// of its own.
func (e *Engine) watermark(ctx context.Context, id, mark string) error {
	if _, err := e.wconn.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", WatermarkPrefix, id+" "+mark); err != nil {
		return fmt.Errorf("backfill: write %s watermark: %w", mark, err)
	}
	return nil
}

// autoRequest requests a backfill of the tables added to the publication
// since it last looked (also while the collector was stopped).
func (e *Engine) autoRequest(ctx context.Context) {
	tables, err := publishedTables(ctx, e.conn, e.cfg.Publication)
	if err != nil {
		e.log.Warn("auto backfill: list the publication's tables", "err", err)
		return
	}
	known, err := e.cfg.Store.Published(ctx)
	if err != nil {
		e.log.Warn("auto backfill: read the tables known", "err", err)
		return
	}
	if known != nil {
		var added []string
		for _, t := range tables {
			if !slices.Contains(known, t) {
				added = append(added, t)
			}
		}
		if len(added) > 0 {
			j, err := Request(ctx, e.cfg.Store, added, nil, "auto")
			if err != nil {
				e.log.Warn("auto backfill: request", "tables", added, "err", err)
				return
			}
			e.log.Info("tables added to the publication: backfill requested", "job", j.ID, "tables", added)
		}
	}
	if !slices.Equal(known, tables) {
		if err := e.cfg.Store.SetPublished(ctx, tables); err != nil {
			e.log.Warn("auto backfill: record the tables known", "err", err)
		}
	}
}
