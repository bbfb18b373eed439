package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/redact"
)

// runStatus is `pgjet-collector status`: one screen on the slot, the
// lag, the raw stream and the durables reading it, from outside the
// process. Exit 0, or 1 when Postgres or NATS cannot be read.
func runStatus(ctx context.Context, cfg config) int {
	w := &statusWriter{}
	fmt.Printf("pgjet-collector status: source %s, slot %s, raw stream %s, at %s\n", cfg.source, cfg.slot, cfg.rawStream, time.Now().UTC().Format(time.RFC3339))
	pg := statusPostgres(ctx, cfg, w)
	statusNATS(ctx, cfg, w, pg)
	w.line("last_error", "not visible from outside the collector: it logs every error and exits non-zero on a fatal one (see its log or journal); signs shown above: the slot's active pid and walsender state, lag_bytes, the durables' redelivered counts")
	if w.failed {
		return 1
	}
	return 0
}

type statusWriter struct{ failed bool }

func (w *statusWriter) line(key, format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%-12s %s\n", key, fmt.Sprintf(format, args...))
}

func (w *statusWriter) fail(key, format string, args ...any) {
	w.failed = true
	w.line(key, "ERROR "+format, args...)
}

// pgStatus is what the lag in seconds needs from Postgres.
type pgStatus struct {
	now        time.Time // Postgres's clock
	lagBytes   *int64
	lastCommit *time.Time // pg_last_committed_xact, with track_commit_timestamp
	trackTS    bool
}

func statusPostgres(ctx context.Context, cfg config, w *statusWriter) *pgStatus {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, cfg.dsn)
	cancel()
	if err != nil {
		w.fail("postgres", "cannot connect to %s: %v", redact.DSN(cfg.dsn), session.ConnError(err))
		return nil
	}
	defer conn.Close(context.Background())
	srv, err := readServer(ctx, conn)
	if err != nil {
		w.fail("postgres", "%v", err)
		return nil
	}
	st := &pgStatus{trackTS: srv.trackCommitTS}
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&st.now); err != nil {
		w.fail("postgres", "%v", err)
		return nil
	}
	if st.trackTS {
		_ = conn.QueryRow(ctx, "SELECT timestamp FROM pg_last_committed_xact()").Scan(&st.lastCommit)
	}
	w.line("postgres", "PostgreSQL %s, database %s, wal_level %s, track_commit_timestamp %s", srv.version, srv.database, srv.walLevel, map[bool]string{true: "on", false: "off"}[srv.trackCommitTS])
	s, err := readSlot(ctx, conn, cfg.slot, srv.current)
	switch {
	case err != nil:
		w.fail("slot", "%v", err)
		return st
	case s == nil:
		w.line("slot", "%s does not exist (current WAL %s)", cfg.slot, srv.current)
		return st
	}
	state := "inactive: no collector connected"
	if s.active {
		state = "active, " + s.holder()
		if s.replyTime != nil {
			state += ", last reply " + opcheck.Ago(*s.replyTime)
		}
	}
	safe := "unlimited"
	if s.safeWAL != nil {
		safe = opcheck.Bytes(*s.safeWAL)
	}
	w.line("slot", "%s: %s; wal_status %s, safe_wal_size %s", cfg.slot, state, s.walStatus, safe)
	statusInvalidated(ctx, cfg, conn, w)
	st.lagBytes = s.lag
	w.line("lsn", "confirmed_flush %s current %s lag_bytes %d (WAL kept since restart_lsn %s: %s)", s.confirmed, srv.current, deref(s.lag), s.restart, opcheck.Bytes(deref(s.retained)))
	return st
}

func statusNATS(ctx context.Context, cfg config, w *statusWriter, pg *pgStatus) {
	p, url, err := connectProbe(ctx, cfg)
	if err != nil {
		w.fail("nats", "cannot connect to %s: %v", redact.DSN(url), err)
		return
	}
	defer p.NC.Close()
	last, o, err := readLast(ctx, p, cfg.rawStream, cfg.source)
	switch {
	case o != opcheck.Answered:
		w.fail("stored", "%s", opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+cfg.rawStream))
	case err != nil:
		w.fail("stored", "%v", err)
	case last == nil:
		w.line("stored", "no raw record of source %s", cfg.source)
	default:
		w.line("stored", "last raw record of source %s: seq %d, commit %s at %s (stored %s)", cfg.source, last.seq, pglogrepl.LSN(last.commitLSN),
			last.commitTime.Format(time.RFC3339Nano), opcheck.Ago(last.stored))
	}
	if pg != nil {
		w.line("lag_seconds", "%s", lagSeconds(pg, last))
	}

	info, missing, o, err := p.StreamInfo(ctx, cfg.rawStream)
	switch {
	case o != opcheck.Answered:
		w.fail("raw_stream", "%s", opcheck.Permission(o, "$JS.API.STREAM.INFO."+cfg.rawStream))
		return
	case err != nil:
		w.fail("raw_stream", "%v", err)
		return
	case missing:
		w.line("raw_stream", "%s does not exist", cfg.rawStream)
		return
	}
	st := info.State
	w.line("raw_stream", "%s: first_seq %d (stored %s) last_seq %d (stored %s), %d records, %s; %s", cfg.rawStream,
		st.FirstSeq, opcheck.Ago(st.FirstTime), st.LastSeq, opcheck.Ago(st.LastTime), st.Msgs, opcheck.Bytes(int64(st.Bytes)), opcheck.Storage(info.Config))
	var list struct {
		Consumers []*jetstream.ConsumerInfo `json:"consumers"`
		Total     int                       `json:"total"`
	}
	apiErr, o, err := p.API(ctx, "CONSUMER.LIST."+cfg.rawStream, map[string]int{"offset": 0}, &list)
	switch {
	case o != opcheck.Answered:
		w.fail("durables", "%s", opcheck.Permission(o, "$JS.API.CONSUMER.LIST."+cfg.rawStream))
	case err != nil || apiErr != nil:
		w.fail("durables", "%v", errors.Join(err, asErr(apiErr)))
	case len(list.Consumers) == 0:
		w.line("durables", "none: no router has read the raw stream yet")
	}
	for _, ci := range list.Consumers {
		w.line("durable", "%s", opcheck.DurableLine(ci, st.FirstSeq))
	}
	if list.Total > len(list.Consumers) {
		w.line("durable", "... and %d more", list.Total-len(list.Consumers))
	}
	statusSnapshots(ctx, cfg, w, p)
}

// statusSnapshots shows the source's snapshots and backfills: every one
// not ended, and the last one that did.
func statusSnapshots(ctx context.Context, cfg config, w *statusWriter, p *opcheck.Probe) {
	js, err := jetstream.New(p.NC)
	if err != nil {
		w.fail("snapshots", "%v", err)
		return
	}
	store, err := snapshot.OpenStore(ctx, js, cfg.snap.bucket, cfg.source, false, 1)
	if err != nil {
		w.line("snapshots", "none (%v)", err)
		return
	}
	jobs, err := store.List(ctx)
	if err != nil {
		w.fail("snapshots", "%v", err)
		return
	}
	var shown []*snapshot.Job
	var lastEnded *snapshot.Job
	for _, j := range jobs {
		if !j.Final() {
			shown = append(shown, j)
		} else if lastEnded == nil || j.Finished != nil && lastEnded.Finished != nil && j.Finished.After(*lastEnded.Finished) {
			lastEnded = j
		}
	}
	if lastEnded != nil {
		shown = append([]*snapshot.Job{lastEnded}, shown...)
	}
	if len(shown) == 0 {
		w.line("snapshots", "none for source %s (bucket %s)", cfg.source, cfg.snap.bucket)
		return
	}
	w.line("snapshots", "%d of %d job(s) in bucket %s: the running ones and the last ended (all: pgjet-collector backfill status)", len(shown), len(jobs), cfg.snap.bucket)
	for _, j := range shown {
		for _, l := range j.Lines(time.Now(), false) {
			w.line("snapshot", "%s", strings.TrimLeft(l, " "))
		}
	}
}

// lagSeconds says how far behind in time the raw stream is, and exactly
// what that figure measures.
func lagSeconds(pg *pgStatus, last *lastRecord) string {
	switch {
	case pg.lagBytes != nil && *pg.lagBytes == 0:
		return "0 (lag_bytes 0: the slot has confirmed everything Postgres wrote)"
	case last == nil:
		return "unknown (no raw record of the source to compare with)"
	case pg.trackTS && pg.lastCommit != nil:
		d := max(pg.lastCommit.Sub(last.commitTime), 0)
		return fmt.Sprintf("%.3f (Postgres's last commit, at %s by pg_last_committed_xact, minus the last stored transaction's commit time; an upper bound: that commit may touch no published table; the last stored one committed %s before Postgres's now)",
			d.Seconds(), pg.lastCommit.UTC().Format(time.RFC3339Nano), opcheck.Dur(pg.now.Sub(last.commitTime)))
	}
	return fmt.Sprintf("unknown without track_commit_timestamp = on; the last stored transaction committed %s before Postgres's now (an upper bound while lag_bytes > 0)",
		opcheck.Dur(pg.now.Sub(last.commitTime)))
}
