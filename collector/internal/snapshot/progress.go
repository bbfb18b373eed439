package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgjet/pgjet/shared/crashpoint"
	"github.com/pgjet/pgjet/shared/wire"
)

// Stats are the process's snapshot figures since it started, which the
// progress log and /metrics both read.
type Stats struct {
	// Rows and Chunks stored in the raw stream, by kind (initial, backfill).
	InitialRows, BackfillRows     atomic.Uint64
	InitialChunks, BackfillChunks atomic.Uint64
	// Rows a backfill read but dropped because their key changed while
	// the chunk was read (the changes carry them).
	Dropped atomic.Uint64
	// Tables of the running job by state.
	TablesPending, TablesRunning, TablesDone atomic.Int64
	// LagMicros: how far the stream is behind the snapshot, in
	// microseconds: for an initial snapshot, since its consistent point
	// (the changes after it wait); for a backfill, from writing a chunk's
	// high watermark to the stream emitting the chunk.
	LagMicros atomic.Int64
}

// AddRows counts rows and one chunk of kind stored.
func (s *Stats) AddRows(kind string, rows int64) {
	if s == nil {
		return
	}
	if kind == KindInitial {
		s.InitialRows.Add(uint64(rows))
		s.InitialChunks.Add(1)
	} else {
		s.BackfillRows.Add(uint64(rows))
		s.BackfillChunks.Add(1)
	}
}

// SetLag records the stream's lag behind the snapshot.
func (s *Stats) SetLag(d time.Duration) {
	if s != nil {
		s.LagMicros.Store(d.Microseconds())
	}
}

// Progress is a running job: the collector's copy of its entry, updated as
// the raw stream stores its chunks and written back to the bucket as soon
// as it changed (one write at a time: changes made during a write go with
// the next one), so that a resumed job re-reads as little as possible.
type Progress struct {
	store *Store
	stats *Stats
	log   *slog.Logger

	// changed wakes Run to write the entry.
	changed chan struct{}

	// flushing is held through a whole Flush, so that a Flush returns
	// only once what was dirty when it began is written: Run's periodic
	// Flush could take the dirty flag of Finish's state and then fail
	// (its context ended as the snapshot returned), while Finish, finding
	// nothing dirty, returned as if written. Seen: a finished initial
	// snapshot left running in the bucket, taken up again as a backfill.
	flushing sync.Mutex

	mu    sync.Mutex
	job   *Job
	rev   uint64
	dirty bool
	// lastLog is when each table's progress line was logged last.
	lastLog map[string]time.Time
}

// NewProgress starts keeping job, whose entry is at revision rev.
func NewProgress(store *Store, job *Job, rev uint64, stats *Stats, log *slog.Logger) *Progress {
	p := &Progress{store: store, job: job, rev: rev, stats: stats, log: log, lastLog: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	p.countTables()
	return p
}

// Job returns a copy of the job as it stands.
func (p *Progress) Job() Job {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := *p.job
	j.Tables = append([]TableProgress(nil), p.job.Tables...)
	return j
}

// Cancelled reports whether a requester asked the job to stop.
func (p *Progress) Cancelled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.job.Cancel
}

// StartTable marks table running, with its row estimate.
func (p *Progress) StartTable(table string, estimate int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.job.Table(table)
	if t == nil {
		return
	}
	now := time.Now().UTC()
	t.State, t.Estimate, t.Started, t.Resumed = StateRunning, estimate, &now, t.Rows
	p.markDirty()
	p.countTables()
}

// Stored records rows of table stored in the raw stream, the last with key
// lastKey: a resumed job goes on after it. Called as the publisher's acks
// come.
func (p *Progress) Stored(table string, lastKey []wire.Value, rows int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.job.Table(table)
	if t == nil {
		return
	}
	if lastKey != nil {
		// A new slice, never the old one refilled: Flush writes copies
		// of the job whose tables share it (a data race, and a key
		// written half old, half new could resume a job past rows it
		// never stored).
		key := make([]string, len(lastKey))
		for i, v := range lastKey {
			key[i] = string(v.Data)
		}
		t.LastKey = key
	}
	t.Rows += rows
	t.Chunks++
	p.markDirty()
	p.stats.AddRows(p.job.Kind, rows)
	crashpoint.Hit("snapshot-chunk-stored")
	now := time.Now()
	if now.Sub(p.lastLog[table]) >= logEvery {
		p.lastLog[table] = now
		rate, left := t.Rate(now)
		args := []any{"job", p.job.ID, "table", table, "rows", t.Rows, "rows_per_s", math.Round(rate)}
		if t.Estimate > 0 {
			args = append(args, "estimate", t.Estimate, "eta", left.Round(time.Second))
		}
		p.log.Info("snapshot progress", args...)
	}
}

// logEvery is the interval of each table's progress line.
const logEvery = 10 * time.Second

// EndTable marks table done, or failed with err.
func (p *Progress) EndTable(table string, err error) {
	p.mu.Lock()
	t := p.job.Table(table)
	if t == nil {
		p.mu.Unlock()
		return
	}
	now := time.Now().UTC()
	t.State, t.Finished = StateDone, &now
	if err != nil {
		t.State, t.Error = StateFailed, err.Error()
	}
	p.markDirty()
	p.countTables()
	rows, took := t.Rows, time.Duration(0)
	if t.Started != nil {
		took = now.Sub(*t.Started)
	}
	p.mu.Unlock()
	if err == nil {
		p.log.Info("snapshot of table done", "job", p.job.ID, "table", table, "rows", rows, "took", took.Round(time.Millisecond))
	}
}

// countTables sets the table gauges from the job (p.mu held).
func (p *Progress) countTables() {
	if p.stats == nil {
		return
	}
	var pending, running, done int64
	for _, t := range p.job.Tables {
		switch t.State {
		case StatePending:
			pending++
		case StateRunning:
			running++
		default:
			done++
		}
	}
	if p.job.Final() {
		pending, running = 0, 0
	}
	p.stats.TablesPending.Store(pending)
	p.stats.TablesRunning.Store(running)
	p.stats.TablesDone.Store(done)
}

// markDirty notes a change to write (p.mu held).
func (p *Progress) markDirty() {
	p.dirty = true
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Finish ends the job in state (done, cancelled, failed with err) and
// writes it.
func (p *Progress) Finish(ctx context.Context, state string, err error) error {
	p.mu.Lock()
	now := time.Now().UTC()
	p.job.State, p.job.Finished = state, &now
	if err != nil {
		p.job.Error = err.Error()
	}
	p.markDirty()
	p.countTables()
	p.mu.Unlock()
	return p.Flush(ctx)
}

// Flush writes the job if it changed. A requester's write in between (a
// cancel) is kept: its Cancel is taken over and the write tried again.
func (p *Progress) Flush(ctx context.Context) error {
	p.flushing.Lock()
	defer p.flushing.Unlock()
	for {
		p.mu.Lock()
		if !p.dirty {
			p.mu.Unlock()
			return nil
		}
		j := *p.job
		j.Tables = append([]TableProgress(nil), p.job.Tables...)
		rev := p.rev
		p.dirty = false
		p.mu.Unlock()

		nrev, err := p.store.Update(ctx, &j, rev)
		if err == nil {
			p.mu.Lock()
			p.rev = nrev
			p.mu.Unlock()
			return nil
		}
		p.mu.Lock()
		p.markDirty()
		p.mu.Unlock()
		if !conflict(err) {
			return fmt.Errorf("write progress of job %s: %w", j.ID, err)
		}
		stored, srev, err := p.store.Get(ctx, j.ID)
		if err != nil {
			return fmt.Errorf("read job %s: %w", j.ID, err)
		}
		p.mu.Lock()
		if stored.Cancel && !p.job.Cancel {
			p.log.Info("job cancelled by request: stopping after the current chunk", "job", j.ID)
		}
		p.job.Cancel = p.job.Cancel || stored.Cancel
		p.rev = srev
		p.mu.Unlock()
	}
}

// Run writes the entry whenever it changed until ctx ends, and reads it
// every second so that a cancel is seen while nothing is stored (a chunk
// waiting for its watermark).
func (p *Progress) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.changed:
			if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("writing snapshot progress failed; retrying", "err", err)
			}
			continue
		case <-t.C:
		}
		if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("writing snapshot progress failed; retrying", "err", err)
			continue
		}
		if stored, _, err := p.store.Get(ctx, p.job.ID); err == nil && stored.Cancel {
			p.mu.Lock()
			if !p.job.Cancel {
				p.log.Info("job cancelled by request: stopping after the current chunk", "job", p.job.ID)
			}
			p.job.Cancel = true
			p.mu.Unlock()
		}
	}
}
