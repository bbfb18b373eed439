package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/pgjet/pgjet/shared/logging"
	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/wire"
)

// replayFlags are the flags of `pgjet-router replay` beyond the router's.
type replayFlags struct {
	sink, source, into string
	fromSeq, toSeq     uint64
	fromLSN, toLSN     string
	fromTime, toTime   string
	purge              bool
}

func (rf *replayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&rf.sink, "sink", "", "replay: the pipeline file's sink whose output to rebuild (default: its only NATS sink)")
	fs.Uint64Var(&rf.fromSeq, "from-seq", 0, "replay: start at this raw stream sequence")
	fs.StringVar(&rf.fromLSN, "from-lsn", "", "replay: start at the transactions committed at this LSN (X/Y) or later")
	fs.StringVar(&rf.fromTime, "from-time", "", "replay: start at the transactions committed at this time (RFC 3339) or later")
	fs.Uint64Var(&rf.toSeq, "to-seq", 0, "replay: stop after this raw stream sequence (default: the last record when the replay starts)")
	fs.StringVar(&rf.toLSN, "to-lsn", "", "replay: stop after the transactions committed at this LSN")
	fs.StringVar(&rf.toTime, "to-time", "", "replay: stop after the transactions committed at this time (RFC 3339)")
	fs.StringVar(&rf.source, "source", "", "replay: the source whose commit LSNs --from-lsn and --to-lsn are (when the raw stream holds several)")
	fs.StringVar(&rf.into, "into", "", "replay: build this stream instead of the route's (created with the route's settings)")
	fs.BoolVar(&rf.purge, "purge", false, "replay: empty the output stream first (without it, a stream holding messages is refused)")
}

// request reads the bounds; exactly one start is required, one stop at most.
func (rf *replayFlags) request() (plan.ReplayRequest, error) {
	req := plan.ReplayRequest{Source: rf.source, Into: rf.into, Purge: rf.purge}
	var err error
	if req.From, err = point("from", rf.fromSeq, rf.fromLSN, rf.fromTime); err != nil {
		return req, err
	}
	if req.To, err = point("to", rf.toSeq, rf.toLSN, rf.toTime); err != nil {
		return req, err
	}
	if req.From == (plan.Point{}) {
		return req, errors.New("replay needs a start: --from-seq N, --from-lsn X/Y or --from-time RFC3339")
	}
	return req, nil
}

func point(which string, seq uint64, lsn, at string) (plan.Point, error) {
	var p plan.Point
	given := 0
	if seq != 0 {
		p.Seq = seq
		given++
	}
	if lsn != "" {
		v, err := parseLSN(lsn)
		if err != nil {
			return p, fmt.Errorf("bad --%s-lsn %q: %w", which, lsn, err)
		}
		p.LSN = v
		given++
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return p, fmt.Errorf("bad --%s-time %q: use RFC 3339, e.g. 2026-12-03T10:00:00Z", which, at)
		}
		p.Time = t
		given++
	}
	if given > 1 {
		return p, fmt.Errorf("give one of --%[1]s-seq, --%[1]s-lsn and --%[1]s-time", which)
	}
	return p, nil
}

// parseLSN reads Postgres's X/Y notation; 0/0 is no position.
func parseLSN(s string) (uint64, error) {
	l, err := wire.ParseLSN(s)
	if err != nil || l == 0 {
		return 0, errors.New("use Postgres's notation, e.g. 16/B374D848")
	}
	return uint64(l), nil
}

// replayMain runs `pgjet-router replay`: one route's output rebuilt from
// the raw stream, then exit 0.
func replayMain(args []string) int {
	var rf replayFlags
	cfg, err := parseConfigWith(args, "pgjet-router replay", rf.register)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router replay: %v\n", err)
		return 2
	}
	req, err := rf.request()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router replay: %v\n", err)
		return 2
	}
	rt, err := pickRoute(cfg.plan, rf.sink)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router replay: %v\n", err)
		return 2
	}
	log := logging.New(os.Stderr, cfg.logJSON, cfg.logLevel)
	slog.SetDefault(log)
	memlimit.Set(int64(cfg.memLimit))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stopMetrics, err := startMetrics(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router replay: %v\n", err)
		return 1
	}
	defer stopMetrics()
	if err := plan.Replay(ctx, cfg.plan, rt, req, log, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-router replay: %v\n", err)
		return 1
	}
	return 0
}

// pickRoute is the route a replay rebuilds: the sink named, or the only one
// with an output stream.
func pickRoute(p *plan.Plan, sink string) (*plan.Route, error) {
	var ids []string
	for i := range p.Routes {
		rt := &p.Routes[i]
		if sink != "" && rt.ID == sink {
			return rt, nil
		}
		if rt.Relay.Stream != "" {
			ids = append(ids, rt.ID)
		}
	}
	if sink != "" {
		return nil, fmt.Errorf("--sink %q: no such sink (sinks: %s)", sink, strings.Join(ids, ", "))
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("the pipeline has %d NATS sinks (%s): name the one to rebuild with --sink", len(ids), strings.Join(ids, ", "))
	}
	for i := range p.Routes {
		if p.Routes[i].ID == ids[0] {
			return &p.Routes[i], nil
		}
	}
	return nil, nil
}
