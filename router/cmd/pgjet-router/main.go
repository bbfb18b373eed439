// Command pgjet-router reads the raw change records that pgjet-collector
// writes to JetStream, renders every change as an event and publishes it to
// an output stream with a deterministic Nats-Msg-Id.
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/redact"
)

type config struct {
	memLimit memlimit.Size
	natsURL  string
	auth     *natsconn.Auth
	relay    relay.Config
	stdout   stdout.Format
	// cloudEvents is the CloudEvents configuration with --envelope cloudevents.
	cloudEvents *envelope.CloudEventsConfig
	ackTimeout  time.Duration
	logLevel    slog.Level
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("pgjet-router", flag.ContinueOnError)
	fs.StringVar(&c.natsURL, "nats", "", "NATS server URL(s), comma-separated; required")
	c.auth = natsconn.AddFlags(fs)
	fs.StringVar(&c.relay.RawStream, "raw-stream", "PGJET_RAW", "raw JetStream stream written by pgjet-collector")
	fs.StringVar(&c.relay.Durable, "durable", "pgjet-router", "durable consumer on the raw stream (one per router)")
	fs.StringVar(&c.relay.Stream, "stream", "PGJET_EVENTS", "output stream, created when missing")
	fs.StringVar(&c.relay.Prefix, "subject-prefix", "postgres", "first token(s) of output subjects: PREFIX.schema.table.op")
	format := fs.String("stdout", "", "also print events on stdout: json, json-pretty or text")
	env := fs.String("envelope", "native", "event format: native (JSON) or cloudevents (CloudEvents 1.0 whose data is the native JSON)")
	ceMode := fs.String("cloudevents-mode", "structured", "with --envelope cloudevents: structured (the event as JSON in the body) or binary (ce- headers, native JSON body)")
	var ce envelope.CloudEventsConfig
	fs.StringVar(&ce.Source, "cloudevents-source", "", "with --envelope cloudevents: the source attribute, a URI-reference (default /pgjet/<source name>)")
	fs.StringVar(&ce.TypePrefix, "cloudevents-type-prefix", envelope.DefaultTypePrefix, "with --envelope cloudevents: start of the type attribute, PREFIX.schema.table.op or PREFIX.message")
	persist := fs.String("output-persist", "default", "persistence of a created output stream: default (the server's fsync policy) or async (faster; a NATS server crash can lose the latest events, rebuild by replay)")
	fs.DurationVar(&c.ackTimeout, "ack-timeout", 10*time.Second, "how long to wait for one publish ack before republishing")
	fs.DurationVar(&c.relay.Duplicates, "output-duplicate-window", relay.DefaultDuplicates, "duplicate window of a created output stream (the server keeps every event's id this long: memory grows with rate × window)")
	c.memLimit = 128 << 20
	fs.Var(&c.memLimit, "memory-limit", "soft memory limit of the Go runtime, e.g. 256MiB (GOMEMLIMIT wins; 0: none)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	// Errors are reported by main in one line; the usage text only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprint(os.Stdout, "Usage: pgjet-router --nats URL [--raw-stream NAME] [--durable NAME] [--stream NAME] [--subject-prefix P] [--stdout json|json-pretty|text]\n"+
			"                    [--envelope native|cloudevents [--cloudevents-mode structured|binary] [--cloudevents-source URI] [--cloudevents-type-prefix P]]\n"+
			natsconn.Usage("                    ")+
			"Every flag can also be set as PGJET_<NAME> in the environment (e.g. PGJET_NATS, PGJET_SUBJECT_PREFIX).\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	if err := flagenv.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
		}
		return c, err
	}
	var err error
	if c.stdout, err = stdout.ParseFormat(*format); err != nil {
		return c, fmt.Errorf("bad --stdout: %w", err)
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", *level)
	}
	switch *env {
	case "native":
		// Flags of another envelope are a mistake, not something to ignore.
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "cloudevents-") {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return c, fmt.Errorf("%s needs --envelope cloudevents", strings.Join(set, ", "))
		}
	case "cloudevents":
		switch *ceMode {
		case "structured":
		case "binary":
			ce.Binary = true
		default:
			return c, fmt.Errorf("bad --cloudevents-mode %q: use structured or binary", *ceMode)
		}
		c.cloudEvents = &ce
		if c.relay.Envelope, err = envelope.NewCloudEvents(ce); err != nil {
			var oe *envelope.OptionError
			if errors.As(err, &oe) {
				return c, fmt.Errorf("bad --cloudevents-%s %w", strings.ReplaceAll(oe.Key, "_", "-"), oe.Err)
			}
			return c, err
		}
	default:
		return c, fmt.Errorf("bad --envelope %q: use native or cloudevents", *env)
	}
	switch *persist {
	case "default":
	case "async":
		c.relay.PersistAsync = true
	default:
		return c, fmt.Errorf("bad --output-persist %q: use default or async", *persist)
	}
	if c.natsURL == "" {
		return c, errors.New("--nats is required (e.g. --nats nats://127.0.0.1:4222)")
	}
	if err := c.auth.Check(); err != nil {
		return c, err
	}
	if c.ackTimeout <= 0 {
		return c, fmt.Errorf("bad --ack-timeout %s: must be positive", c.ackTimeout)
	}
	if c.relay.Duplicates < time.Second {
		return c, fmt.Errorf("bad --output-duplicate-window %s: use at least 1s (default %s)", c.relay.Duplicates, relay.DefaultDuplicates)
	}
	if err := c.relay.Check(); err != nil {
		return c, err
	}
	return c, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if limit := memlimit.Set(int64(cfg.memLimit)); limit > 0 {
		log.Debug("soft memory limit", "bytes", limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	nc, err := natsconn.Connect(ctx, cfg.auth.Apply(natsconn.Config{
		URL:  cfg.natsURL,
		Name: "pgjet-router",
		Log:  log,
		// No reconnect buffer: a publish during a reconnect fails at once
		// instead of being sent after the reconnect, ahead of earlier events
		// that were lost with the connection. The relay republishes in order.
		Options: []nats.Option{nats.ReconnectBufSize(-1)},
	}))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() {
		// Let acks and naks of the last raw record reach the server.
		_ = nc.FlushTimeout(2 * time.Second)
		nc.Close()
	}()
	log.Info("connected to nats", "url", redact.DSN(nc.ConnectedUrlRedacted()))

	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.ackTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	rc := cfg.relay
	rc.PublishTimeout = cfg.ackTimeout
	rc.Log = log
	if cfg.stdout != stdout.Off {
		rc.Stdout = stdout.New(os.Stdout, cfg.stdout, nil)
	}
	r, err := relay.New(js, rc)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}
