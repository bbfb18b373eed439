package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/shared/wire"
)

// resumePlan reads the source's last raw record (nil: none) and decides
// where this collector, reading src, resumes.
func (s *session) resumePlan(ctx context.Context, src wire.Source, history []resume.Switch) (*rawstream.Last, resume.Plan, error) {
	last, ok, err := rawstream.LastRecord(ctx, s.js, s.cfg.RawStream, s.cfg.Source)
	if err != nil {
		return nil, resume.Plan{}, err
	}
	if !ok {
		return nil, resume.Plan{}, nil
	}
	plan, err := resume.Decide(&resume.Stored{Source: last.Source, Last: last.Pos}, src, history, s.cfg.TakeOver)
	return &last, plan, err
}

// TimelineHistory is the history of the server's timeline tli, read on
// repl, a replication connection: nil on the first timeline, which has
// none.
func TimelineHistory(ctx context.Context, repl *pgconn.PgConn, tli int32) ([]resume.Switch, error) {
	if tli <= 1 {
		return nil, nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, repl, tli)
	if err != nil {
		return nil, fmt.Errorf("read the history of timeline %d (TIMELINE_HISTORY): %w", tli, err)
	}
	sw, err := resume.ParseHistory(h.Content)
	if err != nil {
		return nil, fmt.Errorf("history of timeline %d (%s): %w", tli, h.FileName, err)
	}
	return sw, nil
}

// reportPhantoms says, loudly and to consumers, that stored records are
// phantoms: an ERROR line, the probe's metric, and a notice queued before
// anything of the new timeline.
func (s *session) reportPhantoms(ctx context.Context, pub *rawstream.Publisher, p *resume.Phantoms) error {
	s.log.Error("failover: "+p.String(), "timeline", p.Timeline, "from_lsn", pglogrepl.LSN(p.Fork), "to_lsn", pglogrepl.LSN(p.Last),
		"source_id", p.SourceID, "new_timeline", p.NewTimeline, "notice", wire.NoticePrefix+wire.NoticePhantoms)
	s.probe.Phantoms(p)
	tx, err := wire.NoticeTx(p.Notice(), p.Fork)
	if err != nil {
		return err
	}
	// When it was found: its events' time, for consumers.
	tx.CommitTime = time.Now().UnixMicro()
	f := &pgoutput.Fragment{Tx: tx, Size: 256 + len(tx.Changes[0].Content)}
	return pub.Add(ctx, f, time.Minute)
}

// publishError is what a publisher's end means for the session: a record
// of another writer on the subject ends the collector (one writer per
// source), one of its own slot (an earlier session's late publish, a
// purge) only this session, which starts again after it.
func (s *session) publishError(err error) error {
	var moved *rawstream.SubjectMovedError
	if !errors.As(err, &moved) {
		return err
	}
	if m := moved.Last.Source; moved.Found && !resume.SameWriter(m, s.source) {
		return &resume.WriterError{Stored: m, This: s.source}
	}
	return &restartError{err: err}
}

// restartError ends a session that must start again from the slot, at
// once: nothing is wrong with Postgres or NATS.
type restartError struct{ err error }

func (e *restartError) Error() string { return e.err.Error() + "; resuming after it" }
func (e *restartError) Unwrap() error { return e.err }
