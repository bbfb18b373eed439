// Package command is pgjet-collector's command line and run: its flags and
// pipeline file, its subcommands, metrics and health. pgjet-collector's
// main is Main; pgjet, the one-process relay, parses and runs a collector
// with Parse and Run.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgjet/pgjet/collector/internal/heartbeat"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/logging"
	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pgname"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/tracing"
	"github.com/pgjet/pgjet/shared/wire"
	"github.com/prometheus/client_golang/prometheus"
)

type config struct {
	// strays are the environment's misspelt flag variables (flagenv.Strays),
	// warned of once the log is set up.
	strays       []string
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
	autoRecreate int // --auto-recreate-slot
	takeOver     bool
	failover     bool
	logLevel     slog.Level
	logJSON      bool
	metrics      string // --metrics HOST:PORT; "": off
	maxChanges   int
	snap         snapshotFlags
	// snapTables is --snapshot-tables's value, checked into snap.tables.
	snapTables *string
	// natsBase is the raw stream's connection from a pipeline file, which
	// --nats and the authentication flags override.
	natsBase natsconn.Config
	// file is the pipeline file (--config); compat: a deltaforge/v1 file,
	// read as a pgjet one.
	file      string
	compat    bool
	checkOnly bool
	// doc, when set, is the pipeline file's content (ParseDoc): file only
	// names it.
	doc []byte

	// Liveness: heartbeats (0: none) and the walsender's silence bound
	// (0: the server's wal_sender_timeout).
	heartbeat          time.Duration
	heartbeatQuery     string
	heartbeatDSN       string
	replicationTimeout time.Duration
}

// flagSet registers the collector's flags on a new FlagSet, writing to c;
// the others are returned.
func (c *config) flagSet() (fs *flag.FlagSet, tables, level, logFormat *string) {
	fs = flag.NewFlagSet("pgjet-collector", flag.ContinueOnError)
	fs.StringVar(&c.file, "config", "", "pipeline file (YAML): the source, raw_stream and batch sections; flags override it")
	fs.BoolVar(&c.checkOnly, "check-config", false, "validate the flags and the pipeline file and exit, without connecting")
	fs.StringVar(&c.dsn, "dsn", "", "PostgreSQL connection string (URL or key=value); required")
	fs.StringVar(&c.slot, "slot", "pgjet", "logical replication slot, created with pgoutput when missing")
	fs.StringVar(&c.publication, "publication", "pgjet", "publication to stream")
	tables = fs.String("tables", "", `comma-separated schema.table list: create the publication with them, or add them to it (a name holding a dot or a comma in double quotes: "my.schema".t)`)
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
	fs.BoolVar(&c.recreateSlot, "recreate-slot", false, "at start, create the slot although the raw stream has records of this source (it was dropped), or replace it when Postgres invalidated it; the changes in between are missing, and a gap notice tells consumers")
	fs.IntVar(&c.autoRecreate, "auto-recreate-slot", 0, "replace an invalidated slot by itself, as --recreate-slot does, at most this many times in this process's life (0: never; the collector stops, or with --metrics stays up not ready)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 0, "write a heartbeat into the database this often (e.g. 30s), so that the slot moves while the published tables are idle and other databases write (0: none)")
	fs.StringVar(&c.heartbeatQuery, "heartbeat-query", "", "SQL to run as the heartbeat instead of a pgjet.heartbeat logical message (e.g. an UPDATE of a published table, for consumers to see)")
	fs.StringVar(&c.heartbeatDSN, "heartbeat-dsn", "", "where heartbeats are written (default --dsn): the primary, when --dsn is a standby")
	fs.DurationVar(&c.replicationTimeout, "replication-timeout", 0, "connect again when the walsender sends nothing, although asked to reply, for this long (0: the server's wal_sender_timeout, at least 30s)")
	fs.BoolVar(&c.failover, "failover", false, "make the slot a failover slot (PostgreSQL 17+), which standbys with sync_replication_slots = on keep a copy of, so that the collector follows a promotion (docs/postgres.md)")
	c.snapTables = c.snap.add(fs)
	fs.BoolVar(&c.takeOver, "take-over-source", false, "once, to make this collector the source's writer although its last raw record comes from another slot or database (slot renamed, database restored or upgraded into a new cluster) or from a timeline this server does not descend from")
	c.memLimit = -1
	fs.Var(&c.memLimit, "memory-limit", "soft memory limit of the Go runtime, e.g. 256MiB (GOMEMLIMIT wins; 0: none); auto: 128MiB, none with --embedded")
	level = fs.String("log-level", "info", "debug, info, warn or error")
	logFormat = fs.String("log-format", "text", "text or json (one JSON object per line)")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on HOST:PORT, e.g. 127.0.0.1:9464 (a pipeline file's spec.metrics.listen; default: off)")
	// Errors are reported by main in one line; the usage text only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs, tables, level, logFormat
}

func parseConfig(args []string) (config, error) {
	return parseConfigDoc(args, nil)
}

// parseConfigDoc is parseConfig with doc, when not nil, as the content of
// the pipeline file that --config names.
func parseConfigDoc(args []string, doc []byte) (config, error) {
	return parseConfigWith(args, doc, nil)
}

// subcommandFlags is what a subcommand that takes the collector's flags adds:
// flags of its own, its help page; and it may not need Postgres.
type subcommandFlags struct {
	flags func(*flag.FlagSet)
	page  *help.Page
	noDSN bool
}

// parseConfigWith is parseConfigDoc for sub (nil: the collector itself).
func parseConfigWith(args []string, doc []byte, sub *subcommandFlags) (config, error) {
	c := config{doc: doc}
	fs, tables, level, logFormat := c.flagSet()
	pg := &page
	if sub != nil {
		sub.flags(fs)
		pg = sub.page
	}
	given, err := flagenv.ParseSet(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			pg.Write(os.Stdout, fs)
		}
		return c, err
	}
	c.strays = flagenv.Strays(fs, os.Environ())
	if c.file != "" {
		if err := c.applyFile(given, tables, c.snapTables); err != nil {
			return c, err
		}
	}
	if err := c.snap.check(*c.snapTables); err != nil {
		return c, err
	}
	if *tables != "" {
		if c.tables, err = pgname.SplitList(*tables); err != nil {
			return c, fmt.Errorf("bad --tables: %w", err)
		}
		for _, t := range c.tables {
			if _, err := pgname.ParseTable(t, true); err != nil {
				return c, fmt.Errorf("bad --tables: %w", err)
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
	if c.logJSON, err = logging.ParseFormat(*logFormat); err != nil {
		return c, err
	}
	if c.metrics != "" {
		if err := metrics.CheckAddr(c.metrics); err != nil {
			return c, fmt.Errorf("bad --metrics %q %w", c.metrics, err)
		}
	}
	switch {
	case c.dsn == "" && (sub == nil || !sub.noDSN):
		return c, errors.New("--dsn is required (e.g. --dsn postgres://user@host:5432/db)")
	case c.natsURL == "" && c.embedded == "":
		return c, errors.New("give --nats URL to use a NATS server, or --embedded DIR to run one in this process")
	case c.natsURL != "" && c.embedded != "":
		return c, errors.New("--nats and --embedded exclude each other: choose one")
	case wire.CheckName(c.source) != nil:
		return c, fmt.Errorf("bad --source: %w", wire.CheckName(c.source))
	case wire.CheckSlotName(c.slot) != nil:
		return c, fmt.Errorf("bad --slot %q: %w", c.slot, wire.CheckSlotName(c.slot))
	case c.publication == "":
		return c, errors.New("--publication must not be empty")
	case c.linger < 0 || c.linger > time.Second:
		return c, fmt.Errorf("bad --linger %v: use 0 to 1s (e.g. 10ms)", c.linger)
	case wire.CheckName(c.rawStream) != nil:
		return c, fmt.Errorf("bad --raw-stream: %w", wire.CheckName(c.rawStream))
	case c.maxChanges < 0:
		return c, fmt.Errorf("bad --max-message-changes %d: use 0 (no bound) or more", c.maxChanges)
	case c.autoRecreate < 0:
		return c, fmt.Errorf("bad --auto-recreate-slot %d: use 0 (never) or more", c.autoRecreate)
	case c.heartbeat < 0 || c.heartbeat > 0 && c.heartbeat < 100*time.Millisecond:
		return c, fmt.Errorf("bad --heartbeat %v: use 0 (none) or at least 100ms (e.g. 30s)", c.heartbeat)
	case c.heartbeat == 0 && (c.heartbeatQuery != "" || c.heartbeatDSN != ""):
		return c, errors.New("--heartbeat-query and --heartbeat-dsn need --heartbeat INTERVAL (spec.source.config.heartbeat.interval)")
	case c.replicationTimeout < 0 || c.replicationTimeout > 0 && c.replicationTimeout < time.Second:
		return c, fmt.Errorf("bad --replication-timeout %v: use 0 (the server's wal_sender_timeout) or at least 1s", c.replicationTimeout)
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

// Main runs pgjet-collector with the command line args (without the
// program name) and returns its exit code: 0, 1 for an error while running,
// 2 for a usage error.
func Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return subcommand("check", args[1:], runCheck)
		case "status":
			return subcommand("status", args[1:], runStatus)
		case "backfill":
			return backfillMain(args[1:])
		case "ddl-capture":
			return ddlMain(args[1:])
		case help.CompletionCommand.Name:
			return completionMain(args[1:])
		}
	}
	cfg, err := parseConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector: %v\n", err)
		return 2
	}
	if cfg.checkOnly {
		where := redact.DSN(cfg.natsURL)
		if cfg.embedded != "" {
			where = "embedded server storing in " + cfg.embedded + ", listening on " + cfg.listen
		}
		fmt.Printf("ok: slot %s, publication %s, source %s, raw stream %s on %s\n", cfg.slot, cfg.publication, cfg.source, cfg.rawStream, where)
		return 0
	}
	log := logging.New(os.Stderr, cfg.logJSON, cfg.logLevel)
	for _, w := range cfg.strays {
		log.Warn(w)
	}
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
		return 1
	}
	log.Info("stopped")
	return 0
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	return (&Collector{cfg: cfg, probe: newProbe()}).Run(ctx, log)
}

// Collector is a collector configured by pgjet-collector's flags (or its
// pipeline file), for a process that runs it beside other parts: pgjet,
// the one-process relay.
type Collector struct {
	cfg   config
	probe *probe
	// served: the process serves the probe's registry itself (Metrics).
	served bool
}

// Parse reads pgjet-collector's flags from args (no subcommand); -h prints
// the help and returns flag.ErrHelp.
func Parse(args []string) (*Collector, error) {
	cfg, err := parseConfig(args)
	if err != nil {
		return nil, err
	}
	return &Collector{cfg: cfg, probe: newProbe()}, nil
}

// ParseDoc configures a collector from a pipeline document (doc, called
// name in messages; ${VAR} is not expanded, $$ is $) as --config does from
// a file, with args as flags overriding it.
func ParseDoc(name string, doc []byte, args []string) (*Collector, error) {
	cfg, err := parseConfigDoc(append([]string{"--config", name}, args...), doc)
	if err != nil {
		return nil, err
	}
	return &Collector{cfg: cfg, probe: newProbe()}, nil
}

// MetricsAddr is where the configuration asks for metrics (--metrics, the
// file's spec.metrics.listen), "" for none.
func (c *Collector) MetricsAddr() string { return c.cfg.metrics }

// Metrics returns the collector's metrics and its readiness check for the
// process to serve with its own; Run then serves no endpoint of its own.
func (c *Collector) Metrics() (*prometheus.Registry, func() error) {
	c.served = true
	return c.probe.registry(), c.probe.check
}

// Embedded reports the embedded server's client address, or "" when the
// collector uses an external NATS server.
func (c *Collector) Embedded() string {
	if c.cfg.embedded == "" {
		return ""
	}
	return c.cfg.listen
}

// Run runs the collector until ctx ends (nil) or it fails.
func (c *Collector) Run(ctx context.Context, log *slog.Logger) error {
	cfg, pr := c.cfg, c.probe
	if cfg.metrics != "" && !c.served {
		// Before connecting, so that /healthz answers and /readyz says why
		// not while connecting takes its time.
		srv, err := serveMetrics(cfg.metrics, pr)
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
		c.served = true
	}
	if c.served {
		pollCtx, stopPoll := context.WithCancel(ctx)
		defer stopPoll()
		go pr.pollSlotLag(pollCtx, cfg.dsn, cfg.slot, 2*time.Second, log)
	}
	tr, err := tracing.Setup(ctx, "pgjet-collector", log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing", "err", err)
		}
	}()
	sc := cfg.sessionConfig(log, pr)
	sc.Tracer = tr.Tracer
	return session.Run(ctx, sc)
}

// sessionConfig is the sessions' configuration from the flags, reporting
// to pr.
func (c *config) sessionConfig(log *slog.Logger, pr *probe) session.Config {
	sc := session.Config{
		DSN:          c.dsn,
		Slot:         c.slot,
		Publication:  c.publication,
		Tables:       c.tables,
		Source:       c.source,
		RawStream:    c.rawStream,
		RawMaxAge:    c.rawMaxAge,
		RawDupes:     c.rawDupes,
		RawReplicas:  c.rawReplicas,
		AckTimeout:   c.ackTimeout,
		Linger:       c.linger,
		MaxQueue:     c.maxQueue,
		MaxMessage:   c.maxMessage,
		MaxChanges:   c.maxChanges,
		Standby:      c.standby,
		RecreateSlot: c.recreateSlot,
		TakeOver:     c.takeOver,
		Failover:     c.failover,
		// Bounded: a slot invalidated again and again would otherwise
		// trade one gap for the next without anyone deciding.
		AutoRecreateSlot: c.autoRecreate,
		// Someone reads /readyz: stay up and say why, rather than exit.
		WaitWhenStuck:  c.metrics != "",
		Snapshot:       c.snap.sessionConfig(&pr.snapshots),
		Probe:          pr,
		Totals:         &pr.totals,
		PublishLatency: pr.observer(),
		Log:            log,
	}
	sc.Heartbeat = heartbeat.Config{Interval: c.heartbeat, Query: c.heartbeatQuery, DSN: c.heartbeatDSN}
	sc.HeartbeatStats = &pr.heartbeats
	sc.ReplicationTimeout = c.replicationTimeout
	if c.embedded != "" {
		emb := c.emb.cfg
		sc.Embedded = &emb
	} else {
		sc.NATS = c.natsConfig(log)
	}
	return sc
}
