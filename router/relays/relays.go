// Package relays runs pgjet-router's routes inside another command's
// process: pgjet, which runs the collector, its embedded JetStream server
// and the routes in one process. It is pgjet-router's own configuration
// (router/internal/cli) and run (router/internal/plan), nothing else.
package relays

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/pgjet/pgjet/router/internal/cli"
	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/prometheus/client_golang/prometheus"
)

// Relays are the planned routes of a pipeline.
type Relays struct{ cfg *cli.Config }

// FromFile plans the routes of the pipeline file at path as pgjet-router
// --config does: lookup expands its ${VAR}s, warn gets the routes' runtime
// warnings.
func FromFile(path string, lookup func(string) (string, bool), warn func(msg string, args ...any)) (*Relays, error) {
	fs := flag.NewFlagSet("pgjet-router", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pf := cli.Register(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		return nil, err
	}
	cfg, err := pf.Load(map[string]bool{"config": true}, lookup, warn)
	if err != nil {
		return nil, err
	}
	return &Relays{cfg: cfg}, nil
}

// FromDoc plans the routes of a pipeline document.
func FromDoc(doc []byte, lookup func(string) (string, bool), warn func(msg string, args ...any)) (*Relays, error) {
	cfg, err := cli.FromDoc(doc, lookup, warn)
	if err != nil {
		return nil, err
	}
	return &Relays{cfg: cfg}, nil
}

// Describe is one line per route, as pgjet-router --check-config prints.
func (r *Relays) Describe() []string {
	var lines []string
	for i := range r.cfg.Plan.Routes {
		lines = append(lines, r.cfg.Plan.Routes[i].Describe())
	}
	return lines
}

// Metrics registers the routes' metrics on reg and returns their readiness
// check; call it before Run.
func (r *Relays) Metrics(reg prometheus.Registerer) func() error {
	r.cfg.Plan.Metrics = plan.NewMetrics(reg)
	return r.cfg.Plan.Metrics.Ready
}

// Run relays until ctx ends (nil) or a route fails for good; printing
// routes write to out.
func (r *Relays) Run(ctx context.Context, log *slog.Logger, out io.Writer) error {
	return plan.Run(ctx, r.cfg.Plan, log, out)
}
