// Package cli is the router's command line: its flags (each also a
// PGJET_<NAME> variable), the pipeline-file keys they set, and how a run's
// routes come from them. There is one way: the flags become overrides of a
// pipeline file's structure (of a one-sink file when no --config is given),
// the pipeline decoder checks the result as it checks any file, and
// plan.FromFile plans the relays. So every rule, bound and default is
// the file's, and a problem with a flag's value names the flag.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pipeline"
	"github.com/pgjet/pgjet/shared/wire"
	"go.yaml.in/yaml/v3"
)

// Flags are the router's pipeline flags, registered on a FlagSet.
type Flags struct {
	fs *flag.FlagSet
	// File is --config: the pipeline file, "" for a route from flags alone.
	File string
	nats string
	auth *natsconn.Auth
	out  string // --stdout
	// acceptGap and deadLetterRaw name raw records to go past (relay's
	// holes.go): operator's one-off decisions, not pipeline keys.
	acceptGap, deadLetterRaw string
}

// Without a file, the flags describe one route with these names: its
// durable consumer (the route's id too) and its output stream.
const (
	DefaultDurable = "pgjet-router"
	DefaultStream  = "PGJET_EVENTS"
)

// sinkKeys are the flags of one route and the key each sets in the route's
// sink config; with --config they need the file to have exactly one NATS
// sink.
var sinkKeys = []struct{ flag, key string }{
	{"durable", "durable"},
	{"stream", "stream.name"},
	{"subject-prefix", "prefix"},
	{"envelope", "envelope.type"},
	{"cloudevents-mode", "envelope.mode"},
	{"cloudevents-source", "envelope.source"},
	{"cloudevents-type-prefix", "envelope.type_prefix"},
	{"cloudevents-data", "envelope.data"},
	{"group", "group"},
	{"standby", "standby"},
	{"standby-ttl", "standby_ttl"},
	{"partition", "partition"},
	{"output-persist", "stream.persist"},
	{"output-replicas", "stream.replicas"},
	{"output-duplicate-window", "stream.duplicate_window"},
	{"ack-timeout", "send_timeout_secs"},
}

// authKeys are the connection keys the authentication flags set; any of
// these flags replaces all of them on the connections it applies to.
var authKeys = []struct{ flag, key string }{
	{"creds", "credentials_file"},
	{"nats-user", "username"},
	{"nats-password", "password"},
	{"nats-password-file", "password_file"},
	{"nats-token", "token"},
	{"nats-token-file", "token_file"},
	{"nats-nkey", "nkey_file"},
	{"nats-tls-ca", "tls.ca_file"},
	{"nats-tls-cert", "tls.cert_file"},
	{"nats-tls-key", "tls.key_file"},
}

// Register adds the router's pipeline flags to fs. Their defaults are the
// pipeline file's (docs/pipeline.md), which a flag not given leaves as they
// are.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.StringVar(&f.File, "config", "", "pipeline file (YAML): run a route for each of its sinks; flags override it")
	fs.StringVar(&f.nats, "nats", "", "NATS server URL(s) of the raw stream, comma-separated; required without --config")
	f.auth = natsconn.AddFlags(fs)
	fs.String("raw-stream", wire.DefaultRawStream, "raw JetStream stream written by pgjet-collector")
	fs.String("durable", DefaultDurable, "durable consumer on the raw stream (one per route; without --config also the route's name)")
	fs.String("stream", DefaultStream, "output stream, created when missing")
	fs.String("subject-prefix", pipeline.DefaultPrefix, "first token(s) of output subjects: PREFIX.schema.table.op")
	fs.StringVar(&f.out, "stdout", "", "also print events on stdout: json, json-pretty or text")
	fs.String("envelope", envelope.DefaultEnvelope, "event format: "+strings.Join(envelope.Names(), ", "))
	fs.String("cloudevents-mode", "structured", "with --envelope cloudevents: structured (the event as JSON in the body) or binary (ce- headers, the data as body)")
	fs.String("cloudevents-source", "", "with --envelope cloudevents: the source attribute, a URI-reference where {source}, {schema} and {table} stand for their values (default /pgjet/{source}/{schema}.{table}; with --cloudevents-data native /pgjet/{source})")
	fs.String("cloudevents-type-prefix", envelope.DefaultTypePrefix, "with --envelope cloudevents: start of the type attribute, PREFIX.created|updated|deleted|truncated|read|message (or PREFIX.schema.table.op with --cloudevents-data native)")
	fs.String("cloudevents-data", "change", "with --envelope cloudevents: change (DeltaForge's form: data {before, after, op}, type PREFIX.created|updated|deleted|truncated|read|message) or native (data is the native document, type PREFIX.schema.table.op)")
	fs.String("group", pipeline.GroupNone, "none (a message per event) or transaction (each transaction's events of the route as one message on PREFIX.transactions.SOURCE, in parts at the server's max payload)")
	fs.String("output-persist", "default", "persistence of a created output stream: default (the server's fsync policy) or async (faster; a NATS server crash can lose the latest events, rebuild by replay)")
	fs.String("partition", "", "i/N: publish this router's share of the route's output, one of N routers sharing it (order per row kept; its durable gets the suffix -p<i>of<N>)")
	fs.Bool("standby", false, "run as one of several replicas of this route on one durable: one is active, the others take over when it stops (a pinned priority group; needs nats-server 2.11+)")
	fs.Duration("standby-ttl", relay.DefaultStandbyTTL, "with --standby: how long the server keeps a silent active replica before another takes over (at least 1s)")
	fs.Int("output-replicas", 1, "replicas of a created output stream, 1 to 5 (3 on a 3-node cluster)")
	fs.Duration("ack-timeout", pipeline.DefaultSendTimeout, "how long to wait for one publish ack before republishing (a pipeline file's send_timeout_secs)")
	fs.Duration("output-duplicate-window", relay.DefaultDuplicates, "duplicate window of a created output stream, at least 1s (the server keeps every event's id this long: memory grows with rate × window)")
	fs.String("metrics", "", "serve Prometheus /metrics, /healthz and /readyz on HOST:PORT, e.g. 127.0.0.1:9465 (a pipeline file's spec.metrics.listen; default: off)")
	fs.StringVar(&f.acceptGap, "accept-gap", "", "raw stream sequences (N, FIRST-LAST, comma-separated) that every route may find missing and go on without, logged: what the router's gap error names, once you know their changes are not needed")
	fs.StringVar(&f.deadLetterRaw, "dead-letter-raw", "", "raw stream sequences (N, FIRST-LAST, comma-separated) that every route, finding one it cannot decode, sends with its bytes to the dead-letter subject and goes on, logged: what the router's error names")
	return f
}

// Config is what a run of the router does.
type Config struct {
	Plan *plan.Plan
	// File is the pipeline as decoded, flags applied.
	File *pipeline.File
}

// Load builds the run's configuration from the flags given (by name, on
// the command line or in the environment) and the pipeline file, if any;
// lookup expands the file's ${VAR}s. warn receives the routes' runtime
// warnings.
func (f *Flags) Load(given map[string]bool, lookup func(string) (string, bool), warn func(msg string, args ...any)) (*Config, error) {
	if err := f.auth.Check(); err != nil {
		return nil, err
	}
	format, err := stdout.ParseFormat(f.out)
	if err != nil {
		return nil, fmt.Errorf("bad --stdout: %w", err)
	}
	acceptGaps, err := relay.ParseSeqRanges(f.acceptGap)
	if err != nil {
		return nil, fmt.Errorf("bad --accept-gap %w", err)
	}
	deadLetterRaw, err := relay.ParseSeqRanges(f.deadLetterRaw)
	if err != nil {
		return nil, fmt.Errorf("bad --dead-letter-raw %w", err)
	}
	ov, err := f.overrides(given, lookup)
	if err != nil {
		return nil, err
	}
	var file *pipeline.File
	if f.File == "" {
		file, err = pipeline.ParseWith(f.oneSink(given), nil, ov)
	} else {
		file, err = pipeline.LoadWith(f.File, lookup, ov)
	}
	cfg, errs, err := planFile(file, err, warn)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Plan.Routes {
		cfg.Plan.Routes[i].Relay.AcceptGaps, cfg.Plan.Routes[i].Relay.DeadLetterRaw = acceptGaps, deadLetterRaw
	}
	if given["stdout"] {
		for i := range cfg.Plan.Routes {
			if cfg.Plan.Routes[i].Relay.Stream != "" {
				cfg.Plan.Routes[i].Stdout = format
			}
		}
	}
	switch {
	case errs.Len() == 0:
		return cfg, nil
	case f.File == "":
		return nil, errs
	}
	return nil, fmt.Errorf("%s:\n%w", f.File, errs)
}

// FromDoc plans the routes of a pipeline document as Load does a file's,
// for a command that writes the document itself (pgjet, from
// pgoutput-stream's flags).
func FromDoc(doc []byte, lookup func(string) (string, bool), warn func(msg string, args ...any)) (*Config, error) {
	file, err := pipeline.ParseWith(doc, lookup, nil)
	cfg, errs, err := planFile(file, err, warn)
	if err == nil && errs.Len() > 0 {
		err = errs
	}
	return cfg, err
}

// planFile is the routes of file, which loading returned with err, and the
// router's problems with it.
func planFile(file *pipeline.File, err error, warn func(msg string, args ...any)) (*Config, *pipeline.Errors, error) {
	var errs *pipeline.Errors
	switch {
	case errors.As(err, &errs):
		errs = errs.For(pipeline.ScopeRouter)
	case err != nil:
		return nil, nil, err
	default:
		errs = file.Problems()
	}
	return &Config{Plan: plan.FromFile(file, errs, warn), File: file}, errs, nil
}

// oneSink is the pipeline file of a route from flags alone: one NATS sink
// whose id and durable are --durable, with output stream PGJET_EVENTS; the
// flags given override it like any file.
func (f *Flags) oneSink(given map[string]bool) []byte {
	id := f.value("durable")
	if wire.CheckName(id) != nil {
		id = DefaultDurable // the override of durable says what is wrong
	}
	doc := map[string]any{
		"apiVersion": pipeline.APIVersion,
		"kind":       pipeline.Kind,
		"metadata":   map[string]any{"name": "pgjet"},
		"spec": map[string]any{"sinks": []any{map[string]any{
			"type":   pipeline.TypeNATS,
			"config": map[string]any{"id": id, "durable": DefaultDurable, "stream": DefaultStream},
		}}},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("one-sink pipeline: %v", err)) // plain maps and strings
	}
	return b
}

// value is the text of flag name as the flag package holds it (its
// default unless given).
func (f *Flags) value(name string) string { return f.fs.Lookup(name).Value.String() }

// overrides turns the flags given into overrides of the file's structure
// (of oneSink's without a file).
func (f *Flags) overrides(given map[string]bool, lookup func(string) (string, bool)) (*pipeline.Overrides, error) {
	ov := &pipeline.Overrides{}
	set := func(path, name string) { ov.Set(path, "--"+name, f.value(name)) }
	if given["raw-stream"] {
		set("spec.raw_stream.name", "raw-stream")
	}
	if given["metrics"] {
		set("spec.metrics.listen", "metrics")
	}
	// The connections the connection flags apply to, and the route the
	// route flags apply to.
	var conns []string
	sink := "spec.sinks[0].config"
	envelopeType := envelope.DefaultEnvelope
	if f.File == "" {
		if f.nats == "" {
			return nil, errors.New("--nats is required (e.g. --nats nats://127.0.0.1:4222), or give a pipeline file with --config")
		}
		conns = []string{sink}
	} else {
		// The file as written tells which keys the flags replace.
		file, _ := pipeline.Load(f.File, lookup)
		var nats []*pipeline.Sink
		for i := range file.Sinks {
			if file.Sinks[i].Type == pipeline.TypeNATS {
				nats = append(nats, &file.Sinks[i])
			}
		}
		for _, k := range append(slices.Clone(sinkKeys), struct{ flag, key string }{"stdout", ""}) {
			if given[k.flag] && len(nats) != 1 {
				return nil, fmt.Errorf("--%s applies to one route, and %s has %d NATS sinks: set it per sink in the file", k.flag, f.File, len(nats))
			}
		}
		if len(nats) == 1 {
			sink, envelopeType = nats[0].Path, nats[0].Envelope.Type
		}
		conns = rawServer(file)
		if given["nats"] && file.RawStream.Embedded != nil {
			// The router connects where it is told.
			ov.Remove("spec.raw_stream.embedded", "--nats")
			conns = append(conns, "spec.raw_stream")
		}
	}
	if given["nats"] || f.File == "" {
		for _, c := range conns {
			ov.Set(c+".url", "--nats", f.nats)
		}
	}
	if authGiven(given) {
		// Any of them replaces all of the connection's authentication.
		for _, c := range conns {
			for _, k := range authKeys {
				if !strings.HasPrefix(k.key, "tls.") {
					ov.Remove(c+"."+k.key, "--"+k.flag)
				}
			}
			ov.Remove(c+".tls", "--nats-tls-ca")
			for _, k := range authKeys {
				if given[k.flag] {
					set(c+"."+k.key, k.flag)
				}
			}
		}
	}
	if given["envelope"] {
		envelopeType = f.value("envelope")
	}
	var ceFlags []string
	for _, k := range sinkKeys {
		if !given[k.flag] {
			continue
		}
		if strings.HasPrefix(k.flag, "cloudevents-") {
			ceFlags = append(ceFlags, "--"+k.flag)
		}
		set(sink+"."+k.key, k.flag)
	}
	if len(ceFlags) > 0 && envelopeType != "cloudevents" {
		// Flags of another envelope are a mistake, not something to ignore.
		return nil, fmt.Errorf("%s needs --envelope cloudevents", strings.Join(ceFlags, ", "))
	}
	return ov, nil
}

// rawServer lists the connections on the raw stream's server as the file
// is written: the raw stream's own (with a url or an embedded server), and
// every NATS sink with the same url.
func rawServer(file *pipeline.File) []string {
	var conns []string
	if file.Has("spec.raw_stream.url") {
		conns = append(conns, "spec.raw_stream")
	}
	raw, _ := file.RawConn()
	for i := range file.Sinks {
		s := &file.Sinks[i]
		if s.Type == pipeline.TypeNATS && len(raw.URLs) > 0 && s.Conn.URL() == raw.URL() {
			conns = append(conns, s.Path)
		}
	}
	return conns
}

func authGiven(given map[string]bool) bool {
	for _, k := range authKeys {
		if given[k.flag] {
			return true
		}
	}
	return false
}
