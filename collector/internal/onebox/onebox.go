// Package onebox is pgjet, the whole relay in one process on one box: the
// collector with its embedded JetStream server, and the routes, configured
// by pgoutput-stream's command line or by a pipeline file. The raw stream
// still sits between the two stages, so the guarantees, replay and adding
// routes are those of the two-process deployment, which stays the shape
// for production.
package onebox

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/logging"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/pgjet/pgjet/shared/pipeline"
	"go.yaml.in/yaml/v3"
)

// pgoutput-stream's NATS defaults: its stream, subject prefix and the
// limits it creates the stream with.
const (
	DefaultStream    = "postgres_replication"
	DefaultPrefix    = "postgres"
	StreamMaxMsgs    = 1_000_000
	StreamMaxBytes   = 1 << 30
	DefaultDataDir   = "pgjet-data"
	DefaultFormat    = "json"
	noStdout         = "none"
	pipelineName     = "pgjet"
	flagsPipeline    = "(pgjet flags)"
	connectionEnvVar = "PGJET_CONNECTION"
)

// Config is a parsed pgjet command line.
type Config struct {
	// File is --config: a pipeline file runs as written. Otherwise Doc is
	// the pipeline the flags describe.
	File string
	Doc  []byte
	// Printable is Doc with the connection string as ${PGJET_CONNECTION},
	// for --print-config.
	Printable   []byte
	PrintConfig bool
	Metrics     string
	LogLevel    slog.Level
	LogJSON     bool
	// Strays are the environment's misspelt flag variables
	// (flagenv.Strays), for the caller to warn of.
	Strays []string
}

// flags are pgjet's command line.
type flags struct {
	config, connection, slot, publication, tables, source string
	natsServer, stream, prefix, format, data, listen      string
	metrics, logLevel, logFormat                          string
	printConfig, createSlot                               bool
}

func (f *flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "pipeline file (YAML): run its collector and every sink in this process, instead of the flags below (its raw_stream is usually embedded)")
	fs.BoolVar(&f.printConfig, "print-config", false, "print the pipeline file the flags describe and exit: pgjet --config FILE runs it as they do, pgjet-collector and pgjet-router run it as two processes")
	fs.StringVar(&f.connection, "connection", "", "PostgreSQL connection string, key=value (host=localhost user=postgres dbname=mydb) or a URL; required without --config")
	fs.StringVar(&f.slot, "slot", "pgjet", "logical replication slot, created with pgoutput when missing")
	fs.StringVar(&f.publication, "publication", "pgjet", "publication to stream")
	fs.BoolVar(&f.createSlot, "create-slot", false, "accepted for pgoutput-stream's command lines: pgjet creates the slot when it is missing anyway")
	fs.StringVar(&f.tables, "tables", "", "comma-separated schema.table list: create the publication with them, or add them to it (default: the publication must exist)")
	fs.StringVar(&f.source, "source", "", "source name in event ids (default: the slot name)")
	fs.StringVar(&f.natsServer, "nats-server", "", "NATS server URL: publish every event there too, to the stream --nats-stream (created with 1,000,000 messages and 1 GiB at most)")
	fs.StringVar(&f.stream, "nats-stream", DefaultStream, "JetStream stream of the events")
	fs.StringVar(&f.prefix, "nats-subject-prefix", DefaultPrefix, "first token(s) of the subjects: PREFIX.schema.table.op, PREFIX.transactions.begin|commit.event, PREFIX.schema.table.relation")
	fs.StringVar(&f.format, "format", DefaultFormat, "events on stdout: json, json-pretty, text (changes only) or none")
	fs.StringVar(&f.data, "data", DefaultDataDir, "directory of the embedded JetStream server's store (the raw stream)")
	fs.StringVar(&f.listen, "listen", "", "address of the embedded JetStream server (default: a free port on 127.0.0.1); given without --nats-server, the events are published to it")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics (the collector's and the routes'), /healthz and /readyz on HOST:PORT")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json (one JSON object per line)")
}

// Page is pgjet's --help.
var Page = help.Page{
	Name:    "pgjet",
	Summary: "streams PostgreSQL changes to stdout and NATS JetStream in one process: the collector with an embedded JetStream server, and the routes; pgoutput-stream's command line works as written",
	Usage: []string{
		"--connection \"host=localhost user=postgres dbname=mydb\" --slot my_slot --publication my_pub [--nats-server nats://localhost:4222]",
		"--config PIPELINE.yaml",
		"completion bash|zsh",
	},
	Commands: []help.Command{help.CompletionCommand},
	Groups: []help.Group{
		{Title: "Pipeline file", Flags: []string{"config", "print-config"}},
		{Title: "Postgres", Flags: []string{"connection", "slot", "publication", "create-slot", "tables", "source"}},
		{Title: "NATS", Flags: []string{"nats-server", "nats-stream", "nats-subject-prefix"}},
		{Title: "Embedded JetStream server", Flags: []string{"data", "listen"}},
		{Title: "Output", Flags: []string{"format"}},
		{Title: "Operations", Flags: []string{"metrics", "log-level", "log-format"}},
	},
	Notes: []string{
		"Every flag can also be given as PGJET_<NAME> in the environment (shown in brackets); a flag on the command line wins.\n" +
			"The two-process deployment (pgjet-collector next to Postgres, pgjet-router near consumers) runs the same pipeline: see --print-config.",
	},
	Files:   []string{"config", "data"},
	Choices: map[string][]string{"format": {"json", "json-pretty", "text", "none"}, "log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"}},
}

// FlagSet is pgjet's flags, writing to a throwaway value: for completion.
func FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(Page.Name, flag.ContinueOnError)
	(&flags{}).register(fs)
	return fs
}

// Parse reads pgjet's command line (args without the program name); -h
// prints the help and returns flag.ErrHelp.
func Parse(args []string, stdout io.Writer) (*Config, error) {
	var f flags
	fs := flag.NewFlagSet(Page.Name, flag.ContinueOnError)
	f.register(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	_, err := flagenv.ParseSet(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Page.Write(stdout, fs)
		}
		return nil, err
	}
	// Flags on the command line, not from the environment: a pipeline
	// file's ${PGJET_DATA} may be meant for the file.
	typed := map[string]bool{}
	cmdline := flag.NewFlagSet(Page.Name, flag.ContinueOnError)
	(&flags{}).register(cmdline)
	cmdline.SetOutput(io.Discard)
	if err := cmdline.Parse(args); err != nil {
		return nil, err
	}
	cmdline.Visit(func(fl *flag.Flag) { typed[fl.Name] = true })
	c := &Config{File: f.config, PrintConfig: f.printConfig, Metrics: f.metrics, Strays: flagenv.Strays(fs, os.Environ())}
	if err := c.LogLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", f.logLevel)
	}
	if c.LogJSON, err = logging.ParseFormat(f.logFormat); err != nil {
		return nil, err
	}
	if f.metrics != "" {
		if err := metrics.CheckAddr(f.metrics); err != nil {
			return nil, fmt.Errorf("bad --metrics: %w", err)
		}
	}
	if f.config != "" {
		// The file says it all: a flag of the flags' pipeline beside it
		// would be ignored, which is a mistake.
		var clash []string
		for name := range typed {
			switch name {
			case "config", "metrics", "log-level", "log-format":
			default:
				clash = append(clash, "--"+name)
			}
		}
		if len(clash) > 0 {
			return nil, fmt.Errorf("%s: give them in the pipeline file %s, or leave out --config", strings.Join(clash, ", "), f.config)
		}
		return c, nil
	}
	if f.connection == "" {
		return nil, errors.New("--connection is required (e.g. --connection \"host=localhost user=postgres dbname=mydb\"), or give a pipeline file with --config")
	}
	listen := f.listen
	if listen == "" {
		if listen, err = freeLoopback(); err != nil {
			return nil, err
		}
	} else if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, fmt.Errorf("bad --listen %q: use HOST:PORT, e.g. 127.0.0.1:4222", listen)
	}
	natsURL := f.natsServer
	if natsURL == "" && f.listen != "" {
		natsURL = "nats://" + f.listen
	}
	if c.Doc, err = f.pipeline(natsURL, f.connection, listen); err != nil {
		return nil, err
	}
	if c.Printable, err = f.pipeline(natsURL, "", f.listen); err != nil {
		return nil, err
	}
	return c, nil
}

// The pipeline file the flags describe, in the order a person writes one.
type (
	doc struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   map[string]string `yaml:"metadata"`
		Spec       spec              `yaml:"spec"`
	}
	spec struct {
		Source    sourceSpec `yaml:"source"`
		RawStream rawSpec    `yaml:"raw_stream"`
		Sinks     []sinkSpec `yaml:"sinks"`
	}
	sourceSpec struct {
		Type   string       `yaml:"type"`
		Config sourceConfig `yaml:"config"`
	}
	sourceConfig struct {
		ID          string   `yaml:"id"`
		DSN         string   `yaml:"dsn"`
		Slot        string   `yaml:"slot"`
		Publication string   `yaml:"publication"`
		Tables      []string `yaml:"tables,omitempty"`
		// Snapshot is never: pgoutput-stream sends changes only, and its
		// consumers know no read events.
		Snapshot snapshotSpec `yaml:"snapshot"`
	}
	snapshotSpec struct {
		Mode string `yaml:"mode"`
	}
	rawSpec struct {
		Embedded embeddedSpec `yaml:"embedded"`
	}
	embeddedSpec struct {
		Dir    string `yaml:"dir"`
		Listen string `yaml:"listen,omitempty"`
	}
	sinkSpec struct {
		Type   string     `yaml:"type"`
		Config sinkConfig `yaml:"config"`
	}
	sinkConfig struct {
		ID           string      `yaml:"id"`
		URL          string      `yaml:"url,omitempty"`
		Format       string      `yaml:"format,omitempty"`
		Prefix       string      `yaml:"prefix,omitempty"`
		Stream       *streamSpec `yaml:"stream,omitempty"`
		Transactions bool        `yaml:"transactions"`
		Relations    bool        `yaml:"relations"`
	}
	streamSpec struct {
		Name     string `yaml:"name"`
		MaxMsgs  int    `yaml:"max_msgs"`
		MaxBytes int    `yaml:"max_bytes"`
	}
)

// pipeline is the pipeline file the flags describe: the source, the raw
// stream in the embedded server, a stdout sink in --format and, with a NATS
// server, a NATS sink as pgoutput-stream publishes (its subjects, its
// stream with its limits, transaction and relation events). dsn "" writes
// ${PGJET_CONNECTION} instead of the connection string, listen "" leaves
// the embedded server's address to the file's default.
func (f *flags) pipeline(natsURL, dsn, listen string) ([]byte, error) {
	lit := func(s string) string { return strings.ReplaceAll(s, "$", "$$") } // no ${VAR} in values given
	src := sourceConfig{ID: lit(f.source), DSN: lit(dsn), Slot: lit(f.slot), Publication: lit(f.publication),
		Snapshot: snapshotSpec{Mode: snapshot.ModeNever}}
	if f.source == "" {
		src.ID = lit(f.slot)
	}
	if dsn == "" {
		src.DSN = "${" + connectionEnvVar + "}"
	}
	for _, t := range strings.Split(f.tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			src.Tables = append(src.Tables, lit(t))
		}
	}
	var sinks []sinkSpec
	switch f.format {
	case noStdout:
	case "json", "json-pretty", "text":
		// Text lines show changes only (pgjet's text format has no line for
		// a transaction's begin or commit, or for a relation).
		events := f.format != "text"
		sinks = append(sinks, sinkSpec{Type: pipeline.TypeStdout, Config: sinkConfig{ID: "stdout", Format: f.format, Transactions: events, Relations: events}})
	default:
		return nil, fmt.Errorf("bad --format %q: use json, json-pretty, text or none", f.format)
	}
	if natsURL != "" {
		sinks = append(sinks, sinkSpec{Type: pipeline.TypeNATS, Config: sinkConfig{
			ID:           "nats",
			URL:          lit(natsURL),
			Prefix:       lit(f.prefix),
			Stream:       &streamSpec{Name: lit(f.stream), MaxMsgs: StreamMaxMsgs, MaxBytes: StreamMaxBytes},
			Transactions: true,
			Relations:    true,
		}})
	}
	if len(sinks) == 0 {
		return nil, errors.New("--format none without --nats-server or --listen publishes nothing: give one of them")
	}
	return yaml.Marshal(doc{
		APIVersion: pipeline.APIVersion,
		Kind:       pipeline.Kind,
		Metadata:   map[string]string{"name": pipelineName},
		Spec: spec{
			Source:    sourceSpec{Type: "postgres", Config: src},
			RawStream: rawSpec{Embedded: embeddedSpec{Dir: lit(filepath.Clean(f.data)), Listen: lit(listen)}},
			Sinks:     sinks,
		},
	})
}

// freeLoopback is a free TCP address on 127.0.0.1, for the embedded server
// when no --listen is given: the routes reach it there.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the embedded server: %w (give --listen)", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
