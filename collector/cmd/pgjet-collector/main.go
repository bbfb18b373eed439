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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/logging"
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
	takeOver     bool
	failover     bool
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
	fs.BoolVar(&c.failover, "failover", false, "make the slot a failover slot (PostgreSQL 17+), which standbys with sync_replication_slots = on keep a copy of, so that the collector follows a promotion (docs/postgres.md)")
	fs.BoolVar(&c.takeOver, "take-over-source", false, "once, to make this collector the source's writer although its last raw record comes from another slot or database (slot renamed, database restored or upgraded into a new cluster) or from a timeline this server does not descend from")
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
	if c.logJSON, err = logging.ParseFormat(*logFormat); err != nil {
		return c, err
	}
	if c.metrics != "" {
		if err := metrics.CheckAddr(c.metrics); err != nil {
			return c, fmt.Errorf("bad --metrics %q %w", c.metrics, err)
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
	log := logging.New(os.Stderr, cfg.logJSON, cfg.logLevel)
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
	return session.Run(ctx, cfg.sessionConfig(log, pr))
}

// sessionConfig is the sessions' configuration from the flags, reporting
// to pr.
func (c *config) sessionConfig(log *slog.Logger, pr *probe) session.Config {
	sc := session.Config{
		DSN:            c.dsn,
		Slot:           c.slot,
		Publication:    c.publication,
		Tables:         c.tables,
		Source:         c.source,
		RawStream:      c.rawStream,
		RawMaxAge:      c.rawMaxAge,
		RawDupes:       c.rawDupes,
		RawReplicas:    c.rawReplicas,
		AckTimeout:     c.ackTimeout,
		Linger:         c.linger,
		MaxQueue:       c.maxQueue,
		MaxMessage:     c.maxMessage,
		MaxChanges:     c.maxChanges,
		Standby:        c.standby,
		RecreateSlot:   c.recreateSlot,
		TakeOver:       c.takeOver,
		Failover:       c.failover,
		Probe:          pr,
		Totals:         &pr.totals,
		PublishLatency: pr.observer(),
		Log:            log,
	}
	if c.embedded != "" {
		emb := c.emb.cfg
		sc.Embedded = &emb
	} else {
		sc.NATS = c.natsConfig(log)
	}
	return sc
}
