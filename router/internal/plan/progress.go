package plan

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pgjet/pgjet/router/internal/relay"
)

// progressLine reports a replay's progress: a line rewritten in place on a
// terminal, a log line every 5 s otherwise.
type progressLine struct {
	w        io.Writer
	tty      bool
	from, to uint64
	log      *slog.Logger
	lastLog  time.Time
}

func newProgressLine(w io.Writer, from, to uint64, log *slog.Logger) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressLine{w: w, tty: tty, from: from, to: to, log: log, lastLog: time.Now()}
}

func (p *progressLine) figures(pg relay.Progress, took time.Duration) (done, total uint64, rate float64, eta time.Duration) {
	total = p.to - p.from + 1
	if pg.LastSeq >= p.from {
		done = min(pg.LastSeq-p.from+1, total)
	}
	if secs := took.Seconds(); secs > 0 {
		rate = float64(pg.Events) / secs
		if done > 0 {
			eta = time.Duration(float64(took) * float64(total-done) / float64(done)).Round(time.Second)
		}
	}
	return done, total, rate, eta
}

func (p *progressLine) update(pg relay.Progress, took time.Duration) {
	done, total, rate, eta := p.figures(pg, took)
	if p.tty {
		fmt.Fprintf(p.w, "\rreplay: %d/%d raw records, %d events, %.0f events/s, ETA %s   ", done, total, pg.Events, rate, eta)
		return
	}
	if time.Since(p.lastLog) >= 5*time.Second {
		p.lastLog = time.Now()
		p.log.Info("replay progress", "raw_records", done, "of", total, "events", pg.Events, "events_per_s", int(rate), "eta", eta)
	}
}

func (p *progressLine) finish(pg relay.Progress, took time.Duration) {
	if p.tty {
		done, total, rate, _ := p.figures(pg, took)
		fmt.Fprintf(p.w, "\rreplay: %d/%d raw records, %d events, %.0f events/s, done in %s\n", done, total, pg.Events, rate, took.Round(time.Millisecond))
	}
}
