// Command pgjet-collector reads a PostgreSQL logical replication slot
// (pgoutput) and writes the decoded transactions to a raw JetStream stream,
// confirming the slot only after JetStream acknowledged them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/embedded"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

type config struct {
	memLimit     memlimit.Size
	dsn          string
	slot         string
	publication  string
	tables       []string
	source       string
	natsURL      string
	auth         *natsconn.Auth
	embedded     string
	listen       string
	emb          *embeddedFlags
	rawStream    string
	rawMaxAge    time.Duration
	rawDupes     time.Duration
	rawReplicas  int
	ackTimeout   time.Duration
	linger       time.Duration
	maxQueue     int
	maxMessage   int
	standby      bool
	recreateSlot bool
	logLevel     slog.Level
	logJSON      bool
	metrics      string // --metrics HOST:PORT; "": off
	maxChanges   int
	// natsBase is the raw stream's connection from a pipeline file, which
	// --nats and the authentication flags override.
	natsBase natsconn.Config
	// file is the pipeline file (--config); compat: a deltaforge/v1 file,
	// read as a pgjet one.
	file      string
	compat    bool
	checkOnly bool
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("pgjet-collector", flag.ContinueOnError)
	fs.StringVar(&c.file, "config", "", "pipeline file (YAML): the source, raw_stream and batch sections; flags override it")
	fs.BoolVar(&c.checkOnly, "check-config", false, "validate the flags and the pipeline file and exit, without connecting")
	fs.StringVar(&c.dsn, "dsn", "", "PostgreSQL connection string (URL or key=value); required")
	fs.StringVar(&c.slot, "slot", "pgjet", "logical replication slot, created with pgoutput when missing")
	fs.StringVar(&c.publication, "publication", "pgjet", "publication to stream")
	tables := fs.String("tables", "", "comma-separated schema.table list: create the publication with them, or add them to it")
	fs.StringVar(&c.source, "source", "", "source name in subjects and ids (default: the slot name)")
	fs.StringVar(&c.natsURL, "nats", "", "NATS server URL(s), comma-separated")
	c.auth = natsconn.AddFlags(fs)
	fs.StringVar(&c.embedded, "embedded", "", "run an embedded JetStream server storing data in this directory (instead of --nats)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:4222", "listen address of the embedded server, for routers")
	c.emb = addEmbeddedFlags(fs)
	fs.StringVar(&c.rawStream, "raw-stream", wire.DefaultRawStream, "raw JetStream stream, created when missing")
	fs.DurationVar(&c.rawMaxAge, "raw-max-age", 7*24*time.Hour, "max age of raw records when the stream is created")
	fs.DurationVar(&c.rawDupes, "raw-duplicate-window", time.Hour, "duplicate window of the raw stream when created")
	fs.IntVar(&c.rawReplicas, "raw-replicas", 1, "replicas of the raw stream when created (3 on a cluster)")
	fs.DurationVar(&c.linger, "linger", 10*time.Millisecond, "least time between the starts of two raw publishes unless a full message waits: more transactions per message, less CPU for NATS and routers (0: publish as soon as the previous ack is in)")
	fs.DurationVar(&c.ackTimeout, "ack-timeout", 10*time.Second, "how long to wait for one JetStream publish ack before retrying")
	fs.IntVar(&c.maxQueue, "max-queue-bytes", 8<<20, "bytes of decoded changes that may wait for JetStream before reading pauses")
	fs.IntVar(&c.maxMessage, "max-message-bytes", 4<<20, "largest raw message (capped below the server's max payload)")
	fs.IntVar(&c.maxChanges, "max-message-changes", 0, "most changes in one raw message, unless one transaction fragment holds more (0: no bound; a pipeline file's batch.max_events)")
	fs.BoolVar(&c.standby, "standby", false, "wait while another collector holds the slot, and take over when it is released")
	fs.BoolVar(&c.recreateSlot, "recreate-slot", false, "create the slot even though the raw stream has records of this source (after the slot was dropped; changes in between are missing)")
	c.memLimit = -1
	fs.Var(&c.memLimit, "memory-limit", "soft memory limit of the Go runtime, e.g. 256MiB (GOMEMLIMIT wins; 0: none); auto: 128MiB, none with --embedded")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json (one JSON object per line)")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on HOST:PORT, e.g. 127.0.0.1:9464 (a pipeline file's spec.metrics.listen; default: off)")
	// Errors are reported by main in one line; the usage text only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprint(os.Stdout, "Usage: pgjet-collector --config PIPELINE.yaml [--check-config] [flags that override it]\n"+
			"       pgjet-collector --dsn DSN --slot NAME --publication NAME [--tables s.t,...] (--nats URL | --embedded DIR [--listen HOST:PORT])\n"+
			natsconn.Usage("                       ")+
			"Every flag can also be set as PGJET_<NAME> in the environment (e.g. PGJET_DSN).\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	given, err := flagenv.ParseSet(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
		}
		return c, err
	}
	if c.file != "" {
		if err := c.applyFile(given, tables); err != nil {
			return c, err
		}
	}
	if *tables != "" {
		for _, t := range strings.Split(*tables, ",") {
			if t = strings.TrimSpace(t); t != "" {
				c.tables = append(c.tables, t)
			}
		}
	}
	if c.source == "" {
		c.source = c.slot
	}
	if c.memLimit < 0 {
		// The embedded server sizes its own caches (hundreds of MB on bulk
		// loads): a limit below them would only make the GC churn.
		c.memLimit = 128 << 20
		if c.embedded != "" {
			c.memLimit = 0
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", *level)
	}
	if c.logJSON, err = parseLogFormat(*logFormat); err != nil {
		return c, err
	}
	if c.metrics != "" {
		if err := metrics.CheckAddr(c.metrics); err != nil {
			return c, fmt.Errorf("bad --metrics: %w", err)
		}
	}
	switch {
	case c.dsn == "":
		return c, errors.New("--dsn is required (e.g. --dsn postgres://user@host:5432/db)")
	case c.natsURL == "" && c.embedded == "":
		return c, errors.New("give --nats URL to use a NATS server, or --embedded DIR to run one in this process")
	case c.natsURL != "" && c.embedded != "":
		return c, errors.New("--nats and --embedded exclude each other: choose one")
	case wire.CheckName(c.source) != nil:
		return c, fmt.Errorf("bad --source: %w", wire.CheckName(c.source))
	case c.slot == "" || c.publication == "":
		return c, errors.New("--slot and --publication must not be empty")
	case c.linger < 0 || c.linger > time.Second:
		return c, fmt.Errorf("bad --linger %v: use 0 to 1s (e.g. 10ms)", c.linger)
	case wire.CheckName(c.rawStream) != nil:
		return c, fmt.Errorf("bad --raw-stream: %w", wire.CheckName(c.rawStream))
	case c.maxChanges < 0:
		return c, fmt.Errorf("bad --max-message-changes %d: use 0 (no bound) or more", c.maxChanges)
	}
	if err := c.auth.Check(); err != nil {
		return c, err
	}
	if given := c.auth.Given(); c.embedded != "" && len(given) > 0 {
		return c, fmt.Errorf("%s: only with --nats (the embedded server takes no credentials)", strings.Join(given, ", "))
	}
	if err := c.emb.check(c.embedded, c.listen, given); err != nil {
		return c, err
	}
	return c, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(checkMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "status" {
		os.Exit(statusMain(os.Args[2:]))
	}
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector: %v\n", err)
		os.Exit(2)
	}
	if cfg.checkOnly {
		where := redact.DSN(cfg.natsURL)
		if cfg.embedded != "" {
			where = "embedded server storing in " + cfg.embedded + ", listening on " + cfg.listen
		}
		fmt.Printf("ok: slot %s, publication %s, source %s, raw stream %s on %s\n", cfg.slot, cfg.publication, cfg.source, cfg.rawStream, where)
		return
	}
	log := newLogger(cfg.logJSON, cfg.logLevel)
	if cfg.compat {
		log.Info("reading a deltaforge/v1 pipeline file as a pgjet/v1 pipeline", "file", cfg.file)
	}
	if limit := memlimit.Set(int64(cfg.memLimit)); limit > 0 {
		log.Debug("soft memory limit", "bytes", limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector: %v\n", err)
		os.Exit(1)
	}
	log.Info("stopped")
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	pr := newProbe()
	if cfg.metrics != "" {
		// Before connecting, so that /healthz answers and /readyz says why
		// not while connecting takes its time.
		srv, err := serveMetrics(cfg.metrics, pr)
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
		pollCtx, stopPoll := context.WithCancel(ctx)
		defer stopPoll()
		go pr.pollSlotLag(pollCtx, cfg.dsn, cfg.slot, 2*time.Second, log)
	}
	nc, shutdownNATS, err := connectNATS(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer shutdownNATS()
	pr.nc.Store(nc)
	pr.ready.NotReady("connecting to PostgreSQL")
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.ackTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	info, err := rawstream.Ensure(ctx, js, rawstream.StreamConfig{Name: cfg.rawStream, MaxAge: cfg.rawMaxAge, Duplicates: cfg.rawDupes, Replicas: cfg.rawReplicas})
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabled) {
			return errors.New("JetStream is not enabled on the NATS server: start nats-server with JetStream (-js, or jetstream {} in its config)")
		}
		return err
	}
	if cfg.embedded == "" && info.Config.Replicas < 2 {
		log.Warn("raw stream has a single replica on an external server: an acknowledged record survives an OS crash only if that server runs with sync_interval: always (see deploy/nats/single.conf); on a 3-node cluster use --raw-replicas 3, its nodes with sync_interval: always too (see deploy/nats/cluster-a.conf)",
			"stream", cfg.rawStream)
	}

	s := &session{cfg: cfg, nc: nc, js: js, log: log, probe: pr}
	backoff := time.Second
	standingBy := false
	for {
		began := time.Now()
		err := s.run(ctx)
		if ctx.Err() != nil {
			return err
		}
		var busy *pgsetup.SlotBusyError
		switch {
		case errors.As(err, &busy) && cfg.standby:
			pr.ready.NotReady("standing by: slot " + cfg.slot + " is in use by another collector")
			if !standingBy {
				log.Info("standing by: the slot is in use by another collector; taking over when it is released", "slot", cfg.slot, "holder_pid", busy.PID)
				standingBy = true
			}
			if sleep(ctx, 2*time.Second) != nil {
				return nil
			}
			continue
		case !s.streamed || !transient(err):
			// Before the first session streamed, every error is the user's
			// to fix (bad DSN, server down): say so instead of looping.
			return err
		}
		standingBy = false
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		log.Warn("replication session ended; reconnecting", "in", backoff, "err", err)
		pr.ready.NotReady(fmt.Sprintf("replication session ended (%v); reconnecting", err))
		pr.pgReconnects.Add(1)
		if sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// session is one replication connection from connect to its end; the
// process runs sessions until stopped, so that a Postgres restart or a
// network cut does not need a supervisor.
type session struct {
	cfg      config
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	probe    *probe
	streamed bool // some session reached streaming
}

func (s *session) run(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	pgc, err := pgx.Connect(ctx, cfg.dsn)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL at %s (is it running, and is --dsn right?): %w", redact.DSN(cfg.dsn), connError(err))
	}
	defer pgc.Close(context.Background())
	if err := pgsetup.CheckServer(ctx, pgc); err != nil {
		return err
	}
	if err := pgsetup.EnsurePublication(ctx, pgc, pgsetup.Config{Slot: cfg.slot, Publication: cfg.publication, Tables: cfg.tables}, log); err != nil {
		return err
	}

	repl, err := connectReplication(ctx, cfg.dsn)
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

	// A slot that is gone while the raw stream has records of this
	// database must not be recreated silently: that would skip changes.
	last, ok, err := s.lastStored(ctx, sysID)
	if err != nil {
		return err
	}
	var missing *pgsetup.SlotMissingError
	if ok && !cfg.recreateSlot {
		missing = &pgsetup.SlotMissingError{Slot: cfg.slot, Source: cfg.source, Last: pglogrepl.LSN(last.CommitLSN).String()}
	}
	slot, err := pgsetup.EnsureSlot(ctx, pgc, repl, cfg.slot, missing, log)
	if err != nil {
		return err
	}
	if err := replication.Start(ctx, repl, cfg.slot, cfg.publication); err != nil {
		return err
	}
	// The slot is ours now: no other collector writes this source, so the
	// last stored record is final. Read it again, after the takeover.
	last, ok, err = s.lastStored(ctx, sysID)
	if err != nil {
		return err
	}

	src := wire.Source{Name: cfg.source, SystemID: sysID, Timeline: sys.Timeline, Database: sys.DBName, Slot: cfg.slot}
	// Raw messages of a few MB already amortize an fsync well; larger ones
	// only cost memory. Headroom below max payload covers headers.
	maxMsg := min(int(s.nc.MaxPayload())-64<<10, cfg.maxMessage)
	cp := checkpoint.New(slot.ConfirmedFlush)
	pub := rawstream.NewPublisher(s.js, rawstream.PublisherConfig{
		Subject:           wire.RawSubject(cfg.source),
		Source:            src,
		MaxMessageBytes:   maxMsg,
		MaxMessageChanges: cfg.maxChanges,
		MaxQueueBytes:     cfg.maxQueue,
		AckTimeout:        cfg.ackTimeout,
		Linger:            cfg.linger,
		Checkpoint:        cp,
		Totals:            &s.probe.totals,
		PublishLatency:    s.probe.observer(),
		Log:               log,
	})
	var stream *replication.Stream
	dec := pgoutput.New(func(ctx context.Context, f *pgoutput.Fragment) error { return stream.Emit(ctx, f) },
		func(ctx context.Context, oid uint32) (wire.TypeInfo, error) {
			return pgsetup.ResolveType(ctx, pgc, oid)
		},
		min(maxMsg, cfg.maxMessage/2))
	stream = replication.New(repl, dec, pub, cp, log)
	if ok {
		dec.SkipThrough(last)
		log.Info("resuming after the last stored record", "commit_lsn", pglogrepl.LSN(last.CommitLSN), "change", last.Change, "piece_byte", last.Piece, "final", last.Final)
	} else {
		log.Info("no earlier records of this source in the raw stream")
	}
	log.Info("streaming", "slot", cfg.slot, "publication", cfg.publication, "confirmed_flush", pglogrepl.LSN(slot.ConfirmedFlush),
		"raw_subject", wire.RawSubject(cfg.source), "system_id", sysID, "timeline", sys.Timeline)
	s.streamed = true
	s.probe.streaming(pub, stream)

	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	pubErr := make(chan error, 1)
	go func() { pubErr <- pub.Run(pubCtx) }()
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	go func() {
		// A publisher that fails for good ends the session.
		if err := <-pubErr; err != nil {
			pubErr <- err
			stopStream()
		}
	}()
	go logStats(streamCtx, pub, log)

	runErr := stream.Run(streamCtx)
	s.probe.ready.NotReady("replication session ended")
	select {
	case err := <-pubErr:
		return err
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
	if err := stream.SendStatus(drainCtx); err != nil && runErr == nil && ctx.Err() == nil {
		runErr = err
	}
	changes, msgs := pub.Stats()
	log.Info("session ended", "changes", changes, "raw_messages", msgs, "confirmed", pglogrepl.LSN(pub.Confirmed()))
	return runErr
}

// lastStored is the position of the last raw record of this source from
// this database.
func (s *session) lastStored(ctx context.Context, sysID uint64) (wire.Position, bool, error) {
	last, stored, ok, err := rawstream.LastPosition(ctx, s.js, s.cfg.rawStream, s.cfg.source)
	if err != nil || !ok {
		return last, false, err
	}
	if stored.SystemID != sysID {
		// A different database under the same source name: its positions
		// say nothing about this one's.
		s.log.Warn("raw stream's last record of this source comes from another database (system id differs): not skipping by position",
			"stored_system_id", stored.SystemID, "system_id", sysID)
		return last, false, nil
	}
	return last, true, nil
}

// transient errors end a session but not the process: the server restarted
// or the network failed. Everything else needs the user.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57: operator intervention (shutdown,
		// crash recovery, "cannot connect now").
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57")
	}
	// NATS unreachable or slow while a session (re)starts: the client
	// reconnects by itself.
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "conn closed")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func connectNATS(ctx context.Context, cfg config, log *slog.Logger) (*nats.Conn, func(), error) {
	if cfg.embedded == "" {
		nc, err := natsconn.Connect(ctx, cfg.natsConfig(log))
		if err != nil {
			return nil, nil, err
		}
		return nc, func() { nc.Drain() }, nil
	}
	srv, err := embedded.Start(cfg.emb.cfg, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("embedded JetStream server ready", "listen", "nats://"+cfg.listen, "store", cfg.embedded,
		"authentication", cfg.emb.cfg.Authenticated(), "tls", cfg.emb.cfg.TLSCert != "", "domain", cfg.emb.cfg.Domain, "leaf", redact.DSN(strings.Join(cfg.emb.cfg.LeafURLs, ",")))
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

// connectReplication opens a replication connection. Text values are
// rendered in fixed formats regardless of server defaults, so routers can
// parse them.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("bad --dsn: %w", connError(err))
	}
	for k, v := range map[string]string{
		"replication":        "database",
		"application_name":   "pgjet-collector",
		"DateStyle":          "ISO, MDY",
		"TimeZone":           "UTC",
		"IntervalStyle":      "postgres",
		"extra_float_digits": "3",
		"bytea_output":       "hex",
	} {
		pc.RuntimeParams[k] = v
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("replication connection to %s: %w", redact.DSN(dsn), connError(err))
	}
	return conn, nil
}

// connError shortens pgconn's errors, which repeat the DSN (and so could
// leak a password), to their cause, keeping the cause for errors.As.
func connError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &shortError{msg: pgErr.Message, err: err}
	}
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		cause = ce.Unwrap()
	}
	// Several connection attempts (addresses, TLS modes) come back as
	// several lines, often the same: keep one line.
	var lines []string
	for _, l := range strings.Split(cause.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return &shortError{msg: strings.Join(lines, "; "), err: err}
}

type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// logStats logs the process's totals, and the rate and lags of the last
// interval from the difference of two readings (see package lag): /metrics
// reads the same totals.
func logStats(ctx context.Context, pub *rawstream.Publisher, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	tot := pub.Totals()
	lastChanges, _ := pub.Stats()
	lastRead, lastStored := tot.ReadLag.Snapshot(), tot.StoredLag.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changes, msgs := pub.Stats()
			readNow, storedNow := tot.ReadLag.Snapshot(), tot.StoredLag.Snapshot()
			read, stored := readNow.Since(lastRead), storedNow.Since(lastStored)
			lastRead, lastStored = readNow, storedNow
			if changes != lastChanges {
				// Lags from commit (Postgres's clock) to decoded and to stored
				// in the raw stream, over the last interval: the first is the
				// walsender's share, the difference the collector's.
				log.Info("progress", "changes", changes, "raw_messages", msgs, "changes_per_s", (changes-lastChanges)/10,
					"confirmed", pglogrepl.LSN(pub.Confirmed()),
					"read_lag_p50", read.P50, "read_lag_p99", read.P99, "read_lag_max", read.Max,
					"stored_lag_p50", stored.P50, "stored_lag_p99", stored.P99, "stored_lag_max", stored.Max)
				lastChanges = changes
			}
		}
	}
}
