package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/backfill"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/pgname"
	"github.com/pgjet/pgjet/shared/redact"
)

// backfillPage is backfill's -h: its own flags first, then the
// collector's, which find NATS, the source and the bucket.
var backfillPage = func() help.Page {
	p := page
	p.Name = "pgjet-collector backfill"
	p.Summary = "asks the running collector to re-send tables while changes stream (an online, incremental snapshot), and follows it; status shows every snapshot and backfill of the source, cancel stops one after its current chunk"
	p.Usage = []string{
		"--table s.t[,...] [--sink ID,...] [--detach] [--config PIPELINE.yaml | the collector's flags]",
		"status [--id ID] [--watch] [the same flags]",
		"cancel --id ID [the same flags]",
	}
	p.Commands = nil
	p.Groups = append([]help.Group{{Title: "Backfill", Flags: []string{"table", "sink", "detach", "id", "watch"}}}, page.Groups...)
	p.Notes = append([]string{"From SQL, without a shell: SELECT pg_logical_emit_message(true, 'pgjet.backfill', '{\"tables\": [\"public.users\"], \"sinks\": [\"search\"]}')"}, page.Notes...)
	return p
}()

// backfillMain runs `pgjet-collector backfill`, against the running
// collector of a source, through the snapshot bucket:
//
//	backfill --table s.t[,s.t] [--sink id,...] [--detach]   ask for one and follow it
//	backfill status [--id ID] [--watch]                      jobs and their progress
//	backfill cancel --id ID                                  stop one after its current chunk
//
// It takes the collector's flags or --config to find NATS, the source and
// the bucket. Exit 0: done (or asked, with --detach); 1: the job failed or
// was cancelled, or NATS cannot be reached; 2: usage.
func backfillMain(args []string) int {
	action := "start"
	if len(args) > 0 && (args[0] == "status" || args[0] == "cancel") {
		action, args = args[0], args[1:]
	}
	var tables, sinks, id string
	var detach, watch bool
	cfg, err := parseConfigWith(args, nil, &subcommandFlags{page: &backfillPage, noDSN: true, flags: func(fs *flag.FlagSet) {
		switch action {
		case "start":
			fs.StringVar(&tables, "table", "", "comma-separated schema.table list to backfill (required)")
			fs.StringVar(&sinks, "sink", "", "comma-separated sink ids: only these sinks get the rows (default: every sink)")
			fs.BoolVar(&detach, "detach", false, "return once the request is stored, without following it")
		case "status":
			fs.StringVar(&id, "id", "", "only this job")
			fs.BoolVar(&watch, "watch", false, "refresh until every job shown has ended")
		case "cancel":
			fs.StringVar(&id, "id", "", "the job to cancel (required)")
		}
	}})
	if errors.Is(err, flag.ErrHelp) {
		return opcheck.ExitOK
	}
	if err == nil {
		switch {
		case action == "start" && strings.TrimSpace(tables) == "":
			err = errors.New("--table is required: the tables to backfill, e.g. --table public.users")
		case action == "cancel" && id == "":
			err = errors.New("--id is required: the job to cancel (pgjet-collector backfill status lists them)")
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: %v\n", err)
		return opcheck.ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, url, err := connectProbe(cctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: cannot connect to NATS at %s: %v\n", redact.DSN(url), err)
		return opcheck.ExitFail
	}
	defer p.NC.Close()
	js, err := jetstream.New(p.NC)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: %v\n", err)
		return opcheck.ExitFail
	}
	store, err := snapshot.OpenStore(cctx, js, cfg.snap.bucket, cfg.source, false, 1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: %v\n", err)
		return opcheck.ExitFail
	}
	out := terminalOut()
	switch action {
	case "status":
		return backfillStatus(ctx, store, id, watch, out)
	case "cancel":
		j, err := backfill.Cancel(cctx, store, id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgjet-collector backfill cancel: %v\n", err)
			return opcheck.ExitFail
		}
		fmt.Printf("job %s: cancel requested (%s); the collector stops it after its current chunk\n", j.ID, j.State)
		return opcheck.ExitOK
	}
	names, err := pgname.SplitList(tables)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: --table: %v\n", err)
		return opcheck.ExitUsage
	}
	j, err := backfill.Request(cctx, store, names, splitList(sinks), "cli")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector backfill: %v\n", err)
		return opcheck.ExitFail
	}
	fmt.Printf("backfill %s requested: source %s, tables %s", j.ID, cfg.source, strings.Join(j.TableNames(), ","))
	if sinks != "" {
		fmt.Printf(", sinks %s", strings.Join(splitList(sinks), ","))
	}
	fmt.Println()
	if detach {
		fmt.Printf("follow it: pgjet-collector backfill status --id %s --watch; cancel it: pgjet-collector backfill cancel --id %s\n", j.ID, j.ID)
		return opcheck.ExitOK
	}
	return follow(ctx, store, j.ID, out)
}

// splitList splits the comma-separated sink names (names with no commas
// or quotes: wire.CheckName).
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// screen writes progress: redrawn in place on a terminal, as lines
// otherwise.
type screen struct {
	w        io.Writer
	terminal bool
	drawn    int // lines drawn last, to move back over
}

// terminalOut is stdout, redrawn in place when it is a terminal.
func terminalOut() *screen {
	fi, err := os.Stdout.Stat()
	return &screen{w: os.Stdout, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (s *screen) draw(lines []string) {
	if s.terminal && s.drawn > 0 {
		fmt.Fprintf(s.w, "\x1b[%dA", s.drawn)
	}
	for _, l := range lines {
		if s.terminal {
			fmt.Fprint(s.w, "\x1b[2K")
		}
		fmt.Fprintln(s.w, l)
	}
	s.drawn = len(lines)
}

// follow shows job id's progress until it ends: exit 0 when done.
func follow(ctx context.Context, store *snapshot.Store, id string, out *screen) int {
	asked := time.Now()
	warned := false
	var lastLine time.Time
	for {
		j, _, err := store.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Printf("stopped following; job %s goes on (pgjet-collector backfill status --id %s)\n", id, id)
				return opcheck.ExitOK
			}
			fmt.Fprintf(os.Stderr, "pgjet-collector backfill: read job %s: %v\n", id, err)
			return opcheck.ExitFail
		}
		now := time.Now()
		if j.State == snapshot.StateRequested && !warned && now.Sub(asked) > 30*time.Second {
			fmt.Fprintf(os.Stderr, "pgjet-collector backfill: no collector took job %s up yet: is the collector of source %s running (and streaming)? The request stays, and runs when it does\n", id, j.Source)
			warned = true
		}
		if out.terminal || j.Final() || now.Sub(lastLine) >= 10*time.Second {
			out.draw(j.Lines(now, out.terminal))
			lastLine = now
		}
		if j.Final() {
			if j.State == snapshot.StateDone {
				return opcheck.ExitOK
			}
			return opcheck.ExitFail
		}
		select {
		case <-ctx.Done():
			fmt.Printf("stopped following; job %s goes on (cancel it: pgjet-collector backfill cancel --id %s)\n", id, id)
			return opcheck.ExitOK
		case <-time.After(time.Second):
		}
	}
}

// backfillStatus lists the source's jobs (or job id), refreshing with
// watch until every one shown has ended.
func backfillStatus(ctx context.Context, store *snapshot.Store, id string, watch bool, out *screen) int {
	for {
		var jobs []*snapshot.Job
		if id != "" {
			j, _, err := store.Get(ctx, id)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				fmt.Fprintf(os.Stderr, "pgjet-collector backfill status: no job %s for source %s\n", id, store.Source())
				return opcheck.ExitFail
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "pgjet-collector backfill status: %v\n", err)
				return opcheck.ExitFail
			}
			jobs = append(jobs, j)
		} else {
			var err error
			if jobs, err = store.List(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "pgjet-collector backfill status: %v\n", err)
				return opcheck.ExitFail
			}
		}
		now := time.Now()
		lines := []string{fmt.Sprintf("source %s: %d job(s) at %s", store.Source(), len(jobs), now.UTC().Format(time.RFC3339))}
		running := false
		for _, j := range jobs {
			lines = append(lines, j.Lines(now, out.terminal)...)
			running = running || !j.Final()
		}
		out.draw(lines)
		if !watch || !running {
			return opcheck.ExitOK
		}
		select {
		case <-ctx.Done():
			return opcheck.ExitOK
		case <-time.After(time.Second):
		}
	}
}
