// Command pgjet-router reads the raw change records that pgjet-collector
// writes to JetStream, renders every change as an event and publishes it to
// output streams with a deterministic Nats-Msg-Id: one route from flags, or
// every sink of a pipeline file (--config).
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

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/router/internal/routing"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/logging"
	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pipeline"
	"github.com/pgjet/pgjet/shared/wire"
)

type config struct {
	memLimit memlimit.Size
	logLevel slog.Level
	logJSON  bool
	metrics  string // --metrics HOST:PORT; "": off
	plan     *routing.Plan
	// file is the pipeline file (--config); compat: it is a deltaforge/v1
	// file, read as a pgjet one.
	file   string
	compat bool
	// checkOnly: --check-config, validate and exit.
	checkOnly bool
}

// flags are the router's command line.
type flags struct {
	file, natsURL, rawStream, durable, stream, prefix string
	stdout, envelope, ceMode, ceSource, cePrefix      string
	ceData                                            string
	persist, level, group                             string
	metrics, logFormat                                string
	standby                                           bool
	partition                                         string
	standbyTTL                                        time.Duration
	replicas                                          int
	ackTimeout, duplicates                            time.Duration
	checkOnly                                         bool
	auth                                              *natsconn.Auth
	given                                             map[string]bool
}

// routeFlags apply to one route: with a pipeline file, to its only NATS sink.
var routeFlags = []string{"durable", "stream", "subject-prefix", "stdout", "envelope", "cloudevents-mode", "cloudevents-source",
	"cloudevents-type-prefix", "cloudevents-data", "group", "standby", "standby-ttl", "partition", "output-persist", "output-replicas", "output-duplicate-window", "ack-timeout"}

func parseConfig(args []string) (config, error) {
	return parseConfigWith(args, "pgjet-router", nil)
}

// parseConfigWith is parseConfig for a subcommand (name) with flags of its
// own, which more registers.
func parseConfigWith(args []string, name string, more func(*flag.FlagSet)) (config, error) {
	var c config
	var f flags
	fs := c.flagSet(&f, name, more)
	var err error
	if f.given, err = flagenv.ParseSet(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			page.Write(os.Stdout, fs)
		}
		return c, err
	}
	return c.finish(&f)
}

// flagSet registers the router's flags, and those more adds for a
// subcommand (name), on a new FlagSet writing to c and f.
func (c *config) flagSet(f *flags, name string, more func(*flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if more != nil {
		more(fs)
	}
	fs.StringVar(&f.file, "config", "", "pipeline file (YAML): run a route for each of its sinks; flags override it")
	fs.BoolVar(&f.checkOnly, "check-config", false, "validate the flags and the pipeline file, print the routes and exit, without connecting")
	fs.StringVar(&f.natsURL, "nats", "", "NATS server URL(s) of the raw stream, comma-separated; required without --config")
	f.auth = natsconn.AddFlags(fs)
	fs.StringVar(&f.rawStream, "raw-stream", wire.DefaultRawStream, "raw JetStream stream written by pgjet-collector")
	fs.StringVar(&f.durable, "durable", "pgjet-router", "durable consumer on the raw stream (one per route)")
	fs.StringVar(&f.stream, "stream", "PGJET_EVENTS", "output stream, created when missing")
	fs.StringVar(&f.prefix, "subject-prefix", pipeline.DefaultPrefix, "first token(s) of output subjects: PREFIX.schema.table.op")
	fs.StringVar(&f.stdout, "stdout", "", "also print events on stdout: json, json-pretty or text")
	fs.StringVar(&f.envelope, "envelope", envelope.DefaultEnvelope, "event format: "+strings.Join(envelope.Names(), ", "))
	fs.StringVar(&f.ceMode, "cloudevents-mode", "structured", "with --envelope cloudevents: structured (the event as JSON in the body) or binary (ce- headers, the data as body)")
	fs.StringVar(&f.ceSource, "cloudevents-source", "", "with --envelope cloudevents: the source attribute, a URI-reference where {source}, {schema} and {table} stand for their values (default /pgjet/{source}; with --cloudevents-data change /pgjet/{source}/{schema}.{table})")
	fs.StringVar(&f.cePrefix, "cloudevents-type-prefix", envelope.DefaultTypePrefix, "with --envelope cloudevents: start of the type attribute, PREFIX.schema.table.op or PREFIX.message")
	fs.StringVar(&f.ceData, "cloudevents-data", "native", "with --envelope cloudevents: native (data is the native document) or change (DeltaForge's form: data {before, after, op}, type PREFIX.created|updated|deleted|truncated|message); a pipeline file's default is change")
	fs.StringVar(&f.group, "group", pipeline.GroupNone, "none (a message per event) or transaction (each transaction's events of the route as one message on PREFIX.transactions.SOURCE, in parts at the server's max payload)")
	fs.StringVar(&f.persist, "output-persist", "default", "persistence of a created output stream: default (the server's fsync policy) or async (faster; a NATS server crash can lose the latest events, rebuild by replay)")
	fs.StringVar(&f.partition, "partition", "", "i/N: publish this router's share of the route's output, one of N routers sharing it (order per row kept; its durable gets the suffix -p<i>of<N>)")
	fs.BoolVar(&f.standby, "standby", false, "run as one of several replicas of this route on one durable: one is active, the others take over when it stops (a pinned priority group; needs nats-server 2.11+)")
	fs.DurationVar(&f.standbyTTL, "standby-ttl", relay.DefaultStandbyTTL, "with --standby: how long the server keeps a silent active replica before another takes over")
	fs.IntVar(&f.replicas, "output-replicas", 1, "replicas of a created output stream, 1 to 5 (3 on a 3-node cluster)")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", pipeline.DefaultSendTimeout, "how long to wait for one publish ack before republishing")
	fs.DurationVar(&f.duplicates, "output-duplicate-window", relay.DefaultDuplicates, "duplicate window of a created output stream (the server keeps every event's id this long: memory grows with rate × window)")
	c.memLimit = 128 << 20
	fs.Var(&c.memLimit, "memory-limit", "soft memory limit of the Go runtime, e.g. 256MiB (GOMEMLIMIT wins; 0: none)")
	fs.StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json (one JSON object per line)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on HOST:PORT, e.g. 127.0.0.1:9465 (a pipeline file's spec.metrics.listen; default: off)")
	// Errors are reported by main in one line; the usage text only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// finish checks the flags parsed into f and plans the routes.
func (c config) finish(f *flags) (config, error) {
	var err error
	if err := c.logLevel.UnmarshalText([]byte(f.level)); err != nil {
		return c, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", f.level)
	}
	if c.logJSON, err = logging.ParseFormat(f.logFormat); err != nil {
		return c, err
	}
	if err := f.auth.Check(); err != nil {
		return c, err
	}
	c.checkOnly, c.file = f.checkOnly, f.file
	if f.file == "" {
		c.plan, err = planFromFlags(f)
	} else {
		c.plan, c.compat, err = planFromFile(f)
	}
	if err == nil && f.metrics != "" {
		if err = metrics.CheckAddr(f.metrics); err != nil {
			err = fmt.Errorf("bad --metrics: %w", err)
		}
	}
	c.metrics = f.metrics
	return c, err
}

// planFromFlags is the one route the flags describe.
func planFromFlags(f *flags) (*routing.Plan, error) {
	if f.natsURL == "" {
		return nil, errors.New("--nats is required (e.g. --nats nats://127.0.0.1:4222), or give a pipeline file with --config")
	}
	for _, n := range []struct{ flag, v string }{{"--raw-stream", f.rawStream}, {"--durable", f.durable}, {"--stream", f.stream}} {
		if err := wire.CheckName(n.v); err != nil {
			return nil, fmt.Errorf("bad %s: %w", n.flag, err)
		}
	}
	format, err := stdout.ParseFormat(f.stdout)
	if err != nil {
		return nil, fmt.Errorf("bad --stdout: %w", err)
	}
	if err := checkTimes(f); err != nil {
		return nil, err
	}
	group, err := groupFromFlag(f.group)
	if err != nil {
		return nil, err
	}
	part, parts, err := routing.ParsePartition(f.partition)
	if err != nil {
		return nil, fmt.Errorf("bad --partition: %w", err)
	}
	rt, err := route.New(route.Config{Name: f.durable, Prefix: f.prefix, Group: group, Partition: part, Partitions: parts})
	if err != nil {
		var fe *route.FieldError
		if errors.As(err, &fe) {
			err = fe.Err
		}
		return nil, fmt.Errorf("bad --subject-prefix: %w", err)
	}
	env, err := envelopeFromFlags(f)
	if err != nil {
		return nil, err
	}
	if ce, ok := env.(*envelope.CloudEvents); ok && group {
		if _, batch := ce.Batch(); !batch {
			return nil, errors.New("--group transaction needs --cloudevents-mode structured: binary CloudEvents have no batch format")
		}
	}
	persistAsync, err := persistFromFlag(f.persist)
	if err != nil {
		return nil, err
	}
	if err := checkReplicas(f.replicas); err != nil {
		return nil, err
	}
	conn := f.auth.Apply(natsconn.Config{URL: f.natsURL})
	return &routing.Plan{Raw: conn, RawStream: f.rawStream, Routes: []routing.Route{{
		ID:     f.durable,
		Conn:   conn,
		Stdout: format,
		Relay: relay.Config{
			RawStream:      f.rawStream,
			Durable:        routing.PartitionDurable(f.durable, part, parts),
			Stream:         f.stream,
			Route:          rt,
			Envelope:       env,
			PublishTimeout: f.ackTimeout,
			// A raw record must not be redelivered while its publishes may
			// still be acknowledged.
			AckWait:      max(pipeline.DefaultBatchTimeout, 2*f.ackTimeout),
			PersistAsync: persistAsync,
			Duplicates:   f.duplicates,
			Output:       relay.StreamConfig{Replicas: f.replicas},
			StandbyTTL:   standbyTTL(f.standby, f.standbyTTL),
		},
	}}}, nil
}

func checkTimes(f *flags) error {
	if f.ackTimeout <= 0 {
		return fmt.Errorf("bad --ack-timeout %s: must be positive", f.ackTimeout)
	}
	if f.duplicates < time.Second {
		return fmt.Errorf("bad --output-duplicate-window %s: use at least 1s (default %s)", f.duplicates, relay.DefaultDuplicates)
	}
	return nil
}

func groupFromFlag(v string) (bool, error) {
	switch v {
	case pipeline.GroupNone:
		return false, nil
	case pipeline.GroupTransaction:
		return true, nil
	}
	return false, fmt.Errorf("bad --group %q: use none or transaction", v)
}

func persistFromFlag(v string) (async bool, err error) {
	switch v {
	case "default":
		return false, nil
	case "async":
		return true, nil
	}
	return false, fmt.Errorf("bad --output-persist %q: use default or async", v)
}

func checkReplicas(n int) error {
	if n < 1 || n > 5 {
		return fmt.Errorf("bad --output-replicas %d: use 1 to 5", n)
	}
	return nil
}

// envelopeSettings are the envelope settings the --cloudevents-* flags give.
func envelopeSettings(f *flags) (map[string]any, error) {
	var set []string
	s := map[string]any{}
	for _, ce := range []struct{ flag, key, v string }{
		{"cloudevents-mode", "mode", f.ceMode}, {"cloudevents-source", "source", f.ceSource}, {"cloudevents-type-prefix", "type_prefix", f.cePrefix},
		{"cloudevents-data", "data", f.ceData},
	} {
		if f.given[ce.flag] {
			set = append(set, "--"+ce.flag)
			s[ce.key] = ce.v
		}
	}
	if len(set) > 0 && f.envelope != "cloudevents" {
		// Flags of another envelope are a mistake, not something to ignore.
		return nil, fmt.Errorf("%s needs --envelope cloudevents", strings.Join(set, ", "))
	}
	return s, nil
}

func envelopeFromFlags(f *flags) (envelope.Renderer, error) {
	settings, err := envelopeSettings(f)
	if err != nil {
		return nil, err
	}
	if f.envelope == "cloudevents" && !f.given["cloudevents-data"] {
		// The envelope defaults to the change form of pipeline files; these
		// flags have always published the native document as data.
		settings["data"] = f.ceData
	}
	env, err := envelope.New(f.envelope, envelope.Options{Settings: settings})
	var oe *envelope.OptionError
	switch {
	case err == nil:
		return env, nil
	case errors.As(err, &oe) && oe.Key == "type":
		return nil, fmt.Errorf("bad --envelope %q: use %s", f.envelope, strings.Join(envelope.Names(), ", "))
	case errors.As(err, &oe):
		return nil, fmt.Errorf("bad --cloudevents-%s %w", strings.ReplaceAll(oe.Key, "_", "-"), oe.Err)
	}
	return nil, err
}

// planFromFile runs a route per sink of the pipeline file; flags given
// override the file: connection flags the raw stream's server (and the sinks
// on that server), route flags the file's only NATS sink.
func planFromFile(f *flags) (*routing.Plan, bool, error) {
	file, err := pipeline.Load(f.file, os.LookupEnv)
	var errs *pipeline.Errors
	switch {
	case errors.As(err, &errs):
		errs = errs.For(pipeline.ScopeRouter)
	case err != nil:
		return nil, false, err
	default:
		errs = &pipeline.Errors{}
	}
	if file == nil {
		return nil, false, errs
	}
	if !f.given["metrics"] {
		f.metrics = file.Metrics.Listen
	}
	var nats []*pipeline.Sink
	for i := range file.Sinks {
		if file.Sinks[i].Type == pipeline.TypeNATS {
			nats = append(nats, &file.Sinks[i])
		}
	}
	for _, name := range routeFlags {
		if f.given[name] && len(nats) != 1 {
			return nil, false, fmt.Errorf("--%s applies to one route, and %s has %d NATS sinks: set it per sink in the file", name, f.file, len(nats))
		}
	}
	if err := overrideFile(f, file, nats); err != nil {
		return nil, false, err
	}
	// Column rule warnings come while running, through the logger main sets.
	plan := routing.FromFile(file, errs, func(msg string, args ...any) { slog.Warn(msg, args...) })
	if f.given["stdout"] {
		format, err := stdout.ParseFormat(f.stdout)
		if err != nil {
			return nil, false, fmt.Errorf("bad --stdout: %w", err)
		}
		for i := range plan.Routes {
			if plan.Routes[i].Relay.Stream != "" {
				plan.Routes[i].Stdout = format
			}
		}
	}
	if errs.Len() > 0 {
		return nil, false, fmt.Errorf("%s:\n%w", f.file, errs)
	}
	return plan, file.Compat, nil
}

// overrideFile applies the flags given to the file's values.
func overrideFile(f *flags, file *pipeline.File, nats []*pipeline.Sink) error {
	rawConn, _ := file.RawConn()
	sameServer := func(c pipeline.Conn) bool { return strings.Join(c.URLs, ",") == strings.Join(rawConn.URLs, ",") }
	onRawServer := []*pipeline.Conn{&file.RawStream.Conn}
	for i := range file.Sinks {
		if file.Sinks[i].Type == pipeline.TypeNATS && sameServer(file.Sinks[i].Conn) {
			onRawServer = append(onRawServer, &file.Sinks[i].Conn)
		}
	}
	if f.given["nats"] {
		for _, c := range onRawServer {
			c.URLs = strings.Split(f.natsURL, ",")
		}
		if file.RawStream.Embedded != nil {
			file.RawStream.Embedded = nil // the router connects where it is told
		}
	}
	if len(f.auth.Given()) > 0 {
		for _, c := range onRawServer {
			a := f.auth.Apply(natsconn.Config{})
			c.CredentialsFile, c.NKeyFile, c.Username, c.Password, c.Token = a.Creds, a.NKeyFile, a.User, a.Password, a.Token
			c.TLS = pipeline.TLS{CAFile: a.TLS.CAFile, CertFile: a.TLS.CertFile, KeyFile: a.TLS.KeyFile}
		}
	}
	if f.given["raw-stream"] {
		if err := wire.CheckName(f.rawStream); err != nil {
			return fmt.Errorf("bad --raw-stream: %w", err)
		}
		file.RawStream.Name = f.rawStream
	}
	if len(nats) != 1 {
		return nil
	}
	s := nats[0]
	if err := checkTimes(f); err != nil {
		return err
	}
	for _, o := range []struct {
		flag string
		to   *string
		v    string
	}{{"durable", &s.Durable, f.durable}, {"stream", &s.Stream.Name, f.stream}, {"subject-prefix", &s.Prefix, f.prefix}, {"envelope", &s.Envelope.Type, f.envelope}} {
		if f.given[o.flag] {
			*o.to = o.v
		}
	}
	if f.given["standby"] {
		s.Standby = f.standby
	}
	if f.given["partition"] {
		s.Partition = f.partition
	}
	if f.given["standby-ttl"] {
		s.StandbyTTL = f.standbyTTL
	}
	if f.given["output-persist"] {
		if _, err := persistFromFlag(f.persist); err != nil {
			return err
		}
		s.Stream.Persist = f.persist
	}
	if f.given["output-replicas"] {
		if err := checkReplicas(f.replicas); err != nil {
			return err
		}
		s.Stream.Replicas = f.replicas
	}
	if f.given["group"] {
		g, err := groupFromFlag(f.group)
		if err != nil {
			return err
		}
		s.Group = g
	}
	if f.given["output-duplicate-window"] {
		s.Stream.DuplicateWindow = f.duplicates
	}
	if f.given["ack-timeout"] {
		if f.ackTimeout > s.BatchTimeout {
			return fmt.Errorf("--ack-timeout %s is longer than %s.batch_timeout_secs (%s): a raw record would be redelivered while its publishes may still be acknowledged; raise batch_timeout_secs", f.ackTimeout, s.Path, s.BatchTimeout)
		}
		s.SendTimeout = f.ackTimeout
	}
	settings, err := envelopeSettings(&flags{given: f.given, envelope: s.Envelope.Type, ceMode: f.ceMode, ceSource: f.ceSource, cePrefix: f.cePrefix, ceData: f.ceData})
	if err != nil {
		return err
	}
	if len(settings) > 0 && s.Envelope.Settings == nil {
		s.Envelope.Settings = map[string]any{}
	}
	for k, v := range settings {
		s.Envelope.Settings[k] = v
	}
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		os.Exit(replayMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(checkMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "status" {
		os.Exit(statusMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == help.CompletionCommand.Name {
		os.Exit(completionMain(os.Args[2:]))
	}
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router: %v\n", err)
		os.Exit(2)
	}
	if cfg.checkOnly {
		what := "flags"
		if cfg.file != "" {
			what = cfg.file
		}
		fmt.Printf("%s: ok, %d route(s), raw stream %s\n", what, len(cfg.plan.Routes), cfg.plan.RawStream)
		for i := range cfg.plan.Routes {
			fmt.Println("  " + cfg.plan.Routes[i].Describe())
		}
		return
	}
	log := logging.New(os.Stderr, cfg.logJSON, cfg.logLevel)
	slog.SetDefault(log)
	if cfg.compat {
		log.Info("reading a deltaforge/v1 pipeline file as a pgjet/v1 pipeline", "file", cfg.file)
	}
	if limit := memlimit.Set(int64(cfg.memLimit)); limit > 0 {
		log.Debug("soft memory limit", "bytes", limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stopMetrics, err := startMetrics(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router: %v\n", err)
		os.Exit(1)
	}
	defer stopMetrics()
	if err := run(ctx, cfg, log); err != nil {
		stopMetrics()
		fmt.Fprintf(os.Stderr, "pgjet-router: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	return routing.Run(ctx, cfg.plan, log, os.Stdout)
}

// standbyTTL is a route's relay.Config.StandbyTTL: 0 unless a replica.
func standbyTTL(standby bool, ttl time.Duration) time.Duration {
	if !standby {
		return 0
	}
	return max(ttl, time.Second)
}
