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
	"syscall"

	"github.com/pgjet/pgjet/router/internal/cli"
	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/logging"
	"github.com/pgjet/pgjet/shared/memlimit"
)

type config struct {
	// strays are the environment's misspelt flag variables (flagenv.Strays),
	// warned of once the log is set up.
	strays   []string
	memLimit memlimit.Size
	logLevel slog.Level
	logJSON  bool
	metrics  string // spec.metrics.listen (--metrics); "": off
	plan     *plan.Plan
	// file is the pipeline file (--config); compat: it is a deltaforge/v1
	// file, read as a pgjet one.
	file   string
	compat bool
	// checkOnly: --check-config, validate and exit.
	checkOnly bool
}

func parseConfig(args []string) (config, error) {
	return parseConfigWith(args, "pgjet-router", nil)
}

// flagSet registers the router's flags, and those more adds for a
// subcommand (name), on a new FlagSet writing to c; the others are
// returned.
func (c *config) flagSet(name string, more func(*flag.FlagSet)) (fs *flag.FlagSet, pf *cli.Flags, level, logFormat *string) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	if more != nil {
		more(fs)
	}
	pf = cli.Register(fs)
	fs.BoolVar(&c.checkOnly, "check-config", false, "validate the flags and the pipeline file, print the routes and exit, without connecting")
	c.memLimit = 128 << 20
	fs.Var(&c.memLimit, "memory-limit", "soft memory limit of the Go runtime, e.g. 256MiB (GOMEMLIMIT wins; 0: none)")
	level = fs.String("log-level", "info", "debug, info, warn or error")
	logFormat = fs.String("log-format", "text", "text or json (one JSON object per line)")
	// Errors are reported by main in one line; the usage text only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs, pf, level, logFormat
}

// parseConfigWith is parseConfig for a subcommand (name) with flags of its
// own, which more registers.
func parseConfigWith(args []string, name string, more func(*flag.FlagSet)) (config, error) {
	var c config
	fs, pf, level, logFormat := c.flagSet(name, more)
	given, err := flagenv.ParseSet(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			page.Write(os.Stdout, fs)
		}
		return c, err
	}
	c.strays = flagenv.Strays(fs, os.Environ())
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", *level)
	}
	if c.logJSON, err = logging.ParseFormat(*logFormat); err != nil {
		return c, err
	}
	// Column rule warnings come while running, through the logger main sets.
	rc, err := pf.Load(given, os.LookupEnv, func(msg string, args ...any) { slog.Warn(msg, args...) })
	if err != nil {
		return c, err
	}
	c.plan, c.file, c.compat, c.metrics = rc.Plan, pf.File, rc.File.Compat, rc.File.Metrics.Listen
	return c, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		os.Exit(replayMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(subcommand("check", os.Args[2:], runCheck))
	}
	if len(os.Args) > 1 && os.Args[1] == "status" {
		os.Exit(subcommand("status", os.Args[2:], runStatus))
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
	return plan.Run(ctx, cfg.plan, log, os.Stdout)
}
