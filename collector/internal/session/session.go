// Package session runs the collector: it connects to NATS (or starts the
// embedded server), makes sure of the raw stream, and runs replication
// sessions, one after the other, until stopped.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/embedded"
	"github.com/pgjet/pgjet/collector/internal/heartbeat"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the collector's sessions.
type Config struct {
	DSN         string
	Slot        string
	Publication string
	// Tables to create the publication with, or add to it.
	Tables []string
	// Source is the source name in subjects and ids.
	Source string

	// NATS is the connection to an external server, used unless Embedded
	// is set: then the collector runs that server and connects to it.
	NATS     natsconn.Config
	Embedded *embedded.Config

	RawStream   string
	RawMaxAge   time.Duration
	RawDupes    time.Duration
	RawReplicas int

	AckTimeout time.Duration
	Linger     time.Duration
	MaxQueue   int
	MaxMessage int
	MaxChanges int

	// Standby: wait while another collector holds the slot.
	Standby bool
	// RecreateSlot: at start, create the slot even though the raw stream
	// has records of this source, or replace an invalidated one, storing a
	// gap notice first (see recreateSlot).
	RecreateSlot bool
	// AutoRecreateSlot is how many times this process may replace an
	// invalidated slot by itself, as RecreateSlot does (0: never; then
	// the collector stops, or waits with WaitWhenStuck).
	AutoRecreateSlot int
	// WaitWhenStuck: on a state only an operator can end (the slot
	// invalidated or dropped, the publication gone), stay up, not ready,
	// instead of returning the error (set when something reads /readyz).
	WaitWhenStuck bool

	// Snapshot: the initial snapshot and backfills.
	Snapshot SnapshotConfig
	// ReplicationTimeout bounds a walsender's silence before the session
	// is made again (see replication.SilentError); 0: the server's
	// wal_sender_timeout.
	ReplicationTimeout time.Duration
	// Heartbeat, when its interval is set, writes heartbeats (see package
	// heartbeat), counted in HeartbeatStats (nil: not counted).
	Heartbeat      heartbeat.Config
	HeartbeatStats *heartbeat.Stats
	// Failover: make the slot a failover slot (PostgreSQL 17+).
	Failover bool
	// TakeOver: write the source even though its last raw record comes
	// from another slot or database, or a timeline this server does not
	// descend from (resume.Decide's takeOver).
	TakeOver bool

	// Probe is told what metrics and readiness report; nil: nothing.
	Probe Probe
	// Totals are the process's figures, added to by each session's
	// publisher; nil: the session's own.
	Totals *rawstream.Totals
	// PublishLatency, when set, observes each raw publish's seconds.
	PublishLatency rawstream.Observer
	// Tracer, when set, traces transactions and raw messages
	// (rawstream.PublisherConfig.Tracer).
	Tracer trace.Tracer
	Log    *slog.Logger
}

// Probe is what the collector's metrics and readiness learn from the
// sessions as they come and go.
type Probe interface {
	// NATS: the connection the sessions use.
	NATS(*nats.Conn)
	// NotReady: why the collector is not streaming.
	NotReady(reason string)
	// Streaming: a session reads the slot with pub and stream.
	Streaming(pub *rawstream.Publisher, reader *replication.Reader)
	// Reconnected: a session starts again after one ended.
	Reconnected()
	// SlotInvalidated: the slot was found invalidated for reason; the
	// changes committed after from are lost to the stream.
	SlotInvalidated(reason string, from uint64)
	// Gap: the slot was created again, accepting g.
	Gap(g Gap)
	// Phantoms: stored records a failover made phantoms (reported once per
	// session that finds them).
	Phantoms(*resume.Phantoms)
}

type noProbe struct{}

func (noProbe) NATS(*nats.Conn)                                     {}
func (noProbe) NotReady(string)                                     {}
func (noProbe) Streaming(*rawstream.Publisher, *replication.Reader) {}
func (noProbe) Reconnected()                                        {}
func (noProbe) SlotInvalidated(string, uint64)                      {}
func (noProbe) Gap(Gap)                                             {}
func (noProbe) Phantoms(*resume.Phantoms)                           {}

// Run connects to NATS and runs replication sessions until ctx ends
// (returning nil, or the last session's error) or an error that needs the
// user: before the first session streamed, every error is one.
func Run(ctx context.Context, cfg Config) (err error) {
	defer func() {
		// Stopped while starting (connecting, checking the raw stream):
		// a shutdown, not a failure.
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
	}()
	log, pr := cfg.Log, cfg.Probe
	if pr == nil {
		pr = noProbe{}
		cfg.Probe = pr
	}
	nc, shutdownNATS, err := connectNATS(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer shutdownNATS()
	pr.NATS(nc)
	pr.NotReady("connecting to PostgreSQL")
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sc := rawstream.StreamConfig{Name: cfg.RawStream, MaxAge: cfg.RawMaxAge, Duplicates: cfg.RawDupes, Replicas: cfg.RawReplicas}
	info, err := rawstream.Ensure(ctx, js, sc)
	// Connected, but JetStream does not answer yet (a server still starting
	// it for the account, a cluster electing its meta leader): wait for
	// it a minute, saying so. A server without JetStream never answers:
	// then one clear line.
	giveUp := time.Now().Add(time.Minute)
	for wait := backoff.New(time.Second, 15*time.Second); err != nil && natsconn.Transient(err) && ctx.Err() == nil; {
		if time.Now().After(giveUp) {
			return fmt.Errorf("JetStream does not answer (%v): is it enabled on the NATS server (-js, or jetstream {} in its config) and for this account?", err)
		}
		d := wait.Next()
		log.Warn(fmt.Sprintf("JetStream does not answer yet, retrying in %s", d), "err", err)
		if wait.Sleep(ctx, d) != nil {
			break
		}
		info, err = rawstream.Ensure(ctx, js, sc)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabled) {
			return errors.New("JetStream is not enabled on the NATS server: start nats-server with JetStream (-js, or jetstream {} in its config)")
		}
		return err
	}
	if problem, fix := rawstream.DiscardsOld(info.Config); problem != "" {
		log.Warn(problem + ": " + fix)
	}
	if cfg.Embedded == nil && info.Config.Replicas < 2 {
		log.Warn("raw stream has a single replica on an external server: an acknowledged record survives an OS crash only if that server runs with sync_interval: always (see deploy/nats/single.conf); on a 3-node cluster use --raw-replicas 3, its nodes with sync_interval: always too (see deploy/nats/cluster-a.conf)",
			"stream", cfg.RawStream)
	}

	if err := startWatchers(ctx, cfg, log); err != nil {
		return err
	}
	if cfg.Snapshot.Stats == nil {
		cfg.Snapshot.Stats = new(snapshot.Stats)
	}
	if cfg.Snapshot.Bucket == "" {
		cfg.Snapshot.Bucket = snapshot.DefaultBucket
	}
	if cfg.Snapshot.ChunkRows <= 0 {
		cfg.Snapshot.ChunkRows = snapshot.DefaultChunkRows
	}
	if cfg.Snapshot.Parallel <= 0 {
		cfg.Snapshot.Parallel = snapshot.DefaultParallel
	}
	s := &session{cfg: cfg, nc: nc, js: js, log: log, probe: pr}
	wait := backoff.New(time.Second, 30*time.Second)
	// No server to connect to (a primary down, its standby not promoted
	// yet): try again often, so that a promotion is followed within
	// seconds, however long it took.
	reach := backoff.New(250*time.Millisecond, 2*time.Second)
	var said string
	var saidAt time.Time
	standingBy := false
	for {
		began := time.Now()
		err := s.run(ctx)
		if ctx.Err() != nil || errors.Is(err, errSnapshotOnly) {
			return nil
		}
		s.noteSilent(err)
		var busy *pgsetup.SlotBusyError
		switch {
		case errors.As(err, &busy) && cfg.Standby:
			pr.NotReady("standing by: slot " + cfg.Slot + " is in use by another collector")
			if !standingBy {
				log.Info("standing by: the slot is in use by another collector; taking over when it is released", "slot", cfg.Slot, "holder_pid", busy.PID)
				standingBy = true
			}
			if wait.Sleep(ctx, 2*time.Second) != nil {
				return nil
			}
			continue
		case needsOperator(err) && cfg.WaitWhenStuck:
			return s.waitForOperator(ctx, err)
		case !s.streamed || !transient(err):
			// Before the first session streamed, every error is the user's
			// to fix (bad DSN, server down): say so instead of looping.
			return err
		}
		standingBy = false
		if time.Since(began) > time.Minute {
			wait.Reset()
		}
		var in time.Duration
		var restart *restartError
		switch {
		case errors.As(err, &restart):
			in = 100 * time.Millisecond
		case unreachable(err):
			in = reach.Next()
		default:
			in = wait.Next()
			reach.Reset()
		}
		// While retrying often, the same error is said every 30 s.
		if msg := err.Error(); msg != said || time.Since(saidAt) > 30*time.Second {
			log.Warn("replication session ended; reconnecting", "in", in, "err", err)
			said, saidAt = msg, time.Now()
		}
		pr.NotReady(fmt.Sprintf("replication session ended (%v); reconnecting", err))
		pr.Reconnected()
		if wait.Sleep(ctx, in) != nil {
			return nil
		}
	}
}

// session is one replication connection from connect to its end; the
// process runs sessions until stopped, so that a Postgres restart or a
// network cut does not need a supervisor.
type session struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	probe    Probe
	streamed bool // some session reached streaming
	// autoRecreated counts the slots this process replaced by itself.
	autoRecreated int
	// silentPID is the walsender of the last session, which went silent.
	silentPID uint32
	watching  bool // the publication watch runs
	// source is what the current session reads (set once it knows).
	source wire.Source
}

func (s *session) run(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	pgc, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL at %s (is it running, and is --dsn right?): %w", redact.DSN(cfg.DSN), ConnError(err))
	}
	defer pgc.Close(context.Background())
	if err := pgsetup.CheckServer(ctx, pgc); err != nil {
		return err
	}
	standby, err := pgsetup.CheckStandby(ctx, pgc)
	if err != nil {
		return err
	}
	if err := pgsetup.EnsurePublication(ctx, pgc, pgsetup.Config{Slot: cfg.Slot, Publication: cfg.Publication, Tables: cfg.Tables}, log); err != nil {
		if standby {
			return fmt.Errorf("%w (the server is a standby: create or alter the publication on the primary)", err)
		}
		return err
	}
	s.watchPublication(ctx, pgc)

	// Notices arrive on the reading goroutine, inside ReceiveMessage; the
	// stream asks for this fault right after.
	var skipped atomic.Pointer[error]
	repl, err := ConnectReplication(ctx, cfg.DSN, log, func(n *pgconn.Notice) {
		if err := pgsetup.PublicationSkipped(n, cfg.Slot, cfg.Publication); err != nil {
			skipped.CompareAndSwap(nil, &err)
		}
	})
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, repl)
	if err != nil {
		return fmt.Errorf("identify system: %w", err)
	}
	var sysID uint64
	if _, err := fmt.Sscan(sys.SystemID, &sysID); err != nil {
		return fmt.Errorf("identify system: system id %q: %w", sys.SystemID, err)
	}

	src := wire.Source{Name: cfg.Source, SystemID: sysID, Timeline: sys.Timeline, Database: sys.DBName, Slot: cfg.Slot}
	s.source = src
	history, err := TimelineHistory(ctx, repl, sys.Timeline)
	if err != nil {
		return err
	}
	// Whose records the raw stream holds of this source, before touching
	// the slot: a collector that is not the source's writer takes no slot.
	last, plan, err := s.resumePlan(ctx, src, history)
	if err != nil {
		return err
	}
	// An invalidated slot, or one dropped while the raw stream has records
	// of it, is created again only when allowed, and never silently.
	gap, err := s.recreateSlot(ctx, pgc, repl, src, last != nil && plan.SameWriter)
	if err != nil {
		return err
	}
	// A slot that is gone while the raw stream has records read from it
	// must not be recreated silently: that would skip changes.
	var missing *pgsetup.SlotMissingError
	if last != nil && plan.SameWriter {
		missing = &pgsetup.SlotMissingError{Slot: cfg.Slot, Source: cfg.Source, Last: pglogrepl.LSN(last.Pos.CommitLSN).String()}
	}
	if err := pgsetup.CheckFailover(ctx, pgc, cfg.Failover); err != nil {
		return err
	}
	var lastSeq uint64
	if last != nil {
		lastSeq = last.Seq
	}
	snap, err := s.prepareSnapshot(ctx, pgc, repl, src, missing == nil, gap != nil, lastSeq)
	if err != nil {
		return err
	}
	// The walsender's own timeout, read on its connection: how often to
	// report to it, and how long its silence may last. Before the slot: a
	// snapshot it exports lives only while that connection stays idle.
	senderTimeout, err := replication.SenderTimeout(ctx, repl)
	if err != nil {
		log.Warn("cannot read wal_sender_timeout: reporting every 10s, bounding the walsender's silence at 5m", "err", err)
	}
	slot, err := pgsetup.EnsureSlot(ctx, pgc, repl, cfg.Slot, missing, pgsetup.CreateOptions{ExportSnapshot: snap.tables != nil}, log)
	if err != nil {
		return s.releaseStale(ctx, pgc, err)
	}
	// On the replication connection, once an exported snapshot is imported.
	setFailover := func(ctx context.Context) error {
		if !cfg.Failover {
			return nil
		}
		return pgsetup.SetFailover(ctx, pgc, repl, cfg.Slot, log)
	}
	held, err := s.initialSnapshot(ctx, snap, slot, repl, src, setFailover, replication.StatusIntervalFor(senderTimeout))
	if err != nil {
		return err
	}
	if !held {
		if err := setFailover(ctx); err != nil {
			return err
		}
		if err := replication.Start(ctx, repl, cfg.Slot, cfg.Publication); err != nil {
			return err
		}
	}
	// The slot is ours now: no other session of it writes this source, so
	// the last stored record is final. Read it again, after the takeover.
	last, plan, err = s.resumePlan(ctx, src, history)
	if err != nil {
		return err
	}
	for _, w := range plan.Warnings {
		log.Warn(w)
	}
	lastSeq = 0
	if last != nil {
		lastSeq = last.Seq
	}
	maxMsg := s.maxMessage()
	cp := checkpoint.New(slot.ConfirmedFlush)
	pub := s.publisher(src, cp, lastSeq)
	var reader *replication.Reader
	dec := pgoutput.New(func(ctx context.Context, f *pgoutput.Fragment) error { return reader.Emit(ctx, f) },
		pgtypes.Catalog{Conn: pgc}, min(maxMsg, cfg.MaxMessage/2))
	reader = replication.New(repl, dec, pub, cp, log)
	reader.Fault = func() error {
		if err := skipped.Load(); err != nil {
			return *err
		}
		return nil
	}
	reader.StatusInterval = replication.StatusIntervalFor(senderTimeout)
	reader.Timeout = s.replicationTimeout(senderTimeout)
	switch {
	case plan.Phantoms != nil:
		dec.SkipThrough(plan.Skip)
		if err := s.reportPhantoms(ctx, pub, plan.Phantoms); err != nil {
			return err
		}
	case plan.SkipSet:
		dec.SkipThrough(plan.Skip)
		log.Info("resuming after the last stored record", "commit_lsn", pglogrepl.LSN(plan.Skip.CommitLSN), "change", plan.Skip.Change, "piece_byte", plan.Skip.Piece, "final", plan.Skip.Final)
	case last != nil:
		log.Info("resuming from the slot's position: the stored records' positions do not compare with this server's")
	default:
		log.Info("no earlier records of this source in the raw stream")
	}
	log.Info("streaming", "slot", cfg.Slot, "publication", cfg.Publication, "confirmed_flush", pglogrepl.LSN(slot.ConfirmedFlush),
		"raw_subject", wire.RawSubject(cfg.Source), "system_id", sysID, "timeline", sys.Timeline, "standby", standby)
	s.streamed, s.silentPID = true, 0
	s.probe.Streaming(pub, reader)

	pubErr, stopPub := s.runPublisher(pub)
	defer stopPub()
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	cancelOn(pubErr, stopStream) // a publisher that fails for good ends the session
	go logStats(streamCtx, pub, log)
	if last != nil {
		if err := closeInterrupted(ctx, pub, snap, last.Pos); err != nil {
			return err
		}
	}
	backfillErr := make(chan error, 1)
	backfillsStopped := s.startBackfills(streamCtx, snap, dec, backfillErr)
	defer backfillsStopped()
	cancelOn(backfillErr, stopStream) // so does a backfill engine that cannot go on

	runErr := pgsetup.ExplainStreamError(reader.Run(streamCtx), cfg.Slot, cfg.Publication)
	s.probe.NotReady("replication session ended")
	select {
	case err := <-pubErr:
		return err
	default:
	}
	select {
	case err := <-backfillErr:
		if runErr == nil && ctx.Err() == nil {
			runErr = err
		}
	default:
	}
	// Soft stop: let what was read reach JetStream and confirm it, so that a
	// restart resends as little as possible. The next session starts from
	// the stream's last record, so nothing may still be in flight then.
	drainCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pub.Drain(drainCtx); err != nil {
		log.Warn("stopping with records not yet acknowledged; they are resent and deduplicated on restart")
	}
	if err := reader.SendStatus(drainCtx); err != nil && runErr == nil && ctx.Err() == nil {
		runErr = err
	}
	changes, msgs := pub.Stats()
	log.Info("session ended", "changes", changes, "raw_messages", msgs, "confirmed", pglogrepl.LSN(pub.Confirmed()))
	return runErr
}

// maxMessage bounds a raw message: a few MB already amortize an fsync
// well, larger ones only cost memory; headroom below the server's max
// payload covers headers.
func (s *session) maxMessage() int { return min(int(s.nc.MaxPayload())-64<<10, s.cfg.MaxMessage) }

// publisher returns a publisher of the source's raw records whose acks
// advance cp, expecting the subject to end at sequence lastSeq.
func (s *session) publisher(src wire.Source, cp *checkpoint.Checkpoint, lastSeq uint64) *rawstream.Publisher {
	cfg := s.cfg
	return rawstream.NewPublisher(s.js, rawstream.PublisherConfig{
		Stream:            cfg.RawStream,
		Subject:           wire.RawSubject(cfg.Source),
		Source:            src,
		LastSeq:           lastSeq,
		MaxMessageBytes:   s.maxMessage(),
		MaxMessageChanges: cfg.MaxChanges,
		MaxQueueBytes:     cfg.MaxQueue,
		AckTimeout:        cfg.AckTimeout,
		Linger:            cfg.Linger,
		Checkpoint:        cp,
		Totals:            cfg.Totals,
		PublishLatency:    cfg.PublishLatency,
		Tracer:            cfg.Tracer,
		Log:               s.log,
	})
}

func connectNATS(ctx context.Context, cfg Config, log *slog.Logger) (*nats.Conn, func(), error) {
	if cfg.Embedded == nil {
		nc := cfg.NATS
		if nc.Log == nil {
			nc.Log = log
		}
		if nc.Name == "" {
			nc.Name = "pgjet-collector"
		}
		conn, err := natsconn.Connect(ctx, nc)
		if err != nil {
			return nil, nil, err
		}
		return conn, func() { conn.Drain() }, nil
	}
	emb := *cfg.Embedded
	srv, err := embedded.Start(emb, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("embedded JetStream server ready", "listen", "nats://"+emb.Listen, "store", emb.Dir,
		"authentication", emb.Authenticated(), "tls", emb.TLSCert != "", "domain", emb.Domain, "leaf", redact.DSN(strings.Join(emb.LeafURLs, ",")))
	nc, err := natsconn.Connect(ctx, natsconn.Config{Name: "pgjet-collector", Log: log, Options: srv.ClientOptions()})
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	return nc, func() {
		nc.Drain()
		srv.Shutdown()
		srv.WaitForShutdown()
	}, nil
}

// runPublisher runs pub until stop is called; errs gets what it ended with
// (nil after stop, else its error for good).
func (s *session) runPublisher(pub *rawstream.Publisher) (errs chan error, stop func()) {
	ctx, stop := context.WithCancel(context.Background())
	errs = make(chan error, 1)
	go func() { errs <- s.publishError(pub.Run(ctx)) }()
	return errs, stop
}

// cancelOn calls cancel once errs delivers an error, and puts the error
// back for whoever reads errs when the work has ended.
func cancelOn(errs chan error, cancel context.CancelFunc) {
	go func() {
		if err := <-errs; err != nil {
			errs <- err
			cancel()
		}
	}()
}
