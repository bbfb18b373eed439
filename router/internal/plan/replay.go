package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// Point is where a replay starts or stops: a raw stream sequence, a commit
// LSN or a commit time; the zero Point is "not given".
type Point struct {
	Seq  uint64
	LSN  uint64
	Time time.Time
}

func (p Point) given() bool { return p.Seq != 0 || p.LSN != 0 || !p.Time.IsZero() }

// ReplayRequest is what `pgjet-router replay` asks for.
type ReplayRequest struct {
	// From is required; To defaults to the raw stream's last record when
	// the replay starts.
	From, To Point
	// Source names the source whose commit LSNs From and To are, when the
	// raw stream holds several.
	Source string
	// Into replaces the route's output stream (created with its settings).
	Into string
	// Purge empties the output stream first; without it, a stream that
	// holds messages is refused.
	Purge bool
}

// Replay rebuilds route rt's output from the raw stream's history as req
// says, reporting progress on progress (a line that updates when it is a
// terminal, log lines otherwise), and returns once the stop point is
// relayed.
func Replay(ctx context.Context, p *Plan, rt *Route, req ReplayRequest, log *slog.Logger, progress io.Writer) error {
	connect := func(c natsconn.Config) (*nats.Conn, error) {
		c.Name, c.Log = "pgjet-router replay", log
		c.Options = append(c.Options, nats.ReconnectBufSize(-1))
		return natsconn.Connect(ctx, c)
	}
	rawNC, err := connect(p.Raw)
	if err != nil {
		return err
	}
	defer rawNC.Close()
	p.Metrics.addConn(rawNC)
	log.Info("connected to nats", "url", redact.DSN(rawNC.ConnectedUrlRedacted()))
	rc := rt.Relay
	rawJS, err := jetstream.New(rawNC, jetstream.WithPublishAsyncTimeout(rc.PublishTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	outJS := rawJS
	if rc.Stream != "" && connKey(rt.Conn) != connKey(p.Raw) {
		nc, err := connect(rt.Conn)
		if err != nil {
			return err
		}
		defer nc.Close()
		p.Metrics.addConn(nc)
		if outJS, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(rc.PublishTimeout)); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	raw, err := rawJS.Stream(ctx, p.RawStream)
	if err != nil {
		return fmt.Errorf("raw stream %s: %w", p.RawStream, err)
	}
	bounds, err := resolve(ctx, raw, req)
	if err != nil {
		return err
	}
	if req.Into != "" {
		rc.Stream = req.Into
		rc.Route = rt.Relay.Route
	}
	if rc.Stream != "" {
		if err := prepareOutput(ctx, outJS, rc.Stream, req.Purge, log); err != nil {
			return err
		}
	}
	rc.Replay = bounds
	rc.Log = log
	if rt.Stdout != stdout.Off {
		rc.Stdout = stdout.New(os.Stdout, rt.Stdout, nil)
	}
	rc.PublishLatency = p.Metrics.latency(rt.ID)
	r, err := relay.NewWithOutput(rawJS, outJS, rc)
	if err != nil {
		return err
	}
	p.Metrics.addRoute(rt.ID, r)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- r.Run(ctx) }()
	pr := newProgressLine(progress, bounds.FromSeq, bounds.ToSeq, log)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			pr.finish(r.Progress(), time.Since(began))
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return errors.New("replay interrupted: the output holds part of the range; run it again with --purge")
			}
			pg := r.Progress()
			where := "stdout"
			if rc.Stream != "" {
				where = "stream " + rc.Stream
			}
			log.Info("replay done", "raw_from_seq", bounds.FromSeq, "raw_to_seq", bounds.ToSeq, "events", pg.Events, "into", where,
				"took", time.Since(began).Round(time.Millisecond))
			return nil
		case <-tick.C:
			pg, took := r.Progress(), time.Since(began)
			pr.update(pg, took)
			handled, total, _, _ := pr.figures(pg, took)
			p.Metrics.replayProgress(rt.ID, handled, total)
		}
	}
}

// prepareOutput refuses a stream that holds messages, unless told to
// purge it: the relay skips what an output holds, and the server drops ids
// it saw within its duplicate window, so events would silently not come.
func prepareOutput(ctx context.Context, js jetstream.JetStream, name string, purge bool, log *slog.Logger) error {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // created with the route's settings
	}
	if err != nil {
		return fmt.Errorf("output stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("output stream %s: %w", name, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	if !purge {
		return fmt.Errorf("output stream %s holds %d messages: a replay into it would skip or drop as duplicates the events already there; give --purge to empty it first, or --into NAME to build a new stream",
			name, info.State.Msgs)
	}
	// The stream's newest id, to ask the server whether it still
	// remembers it after the purge.
	var probe *nats.Msg
	if last, err := s.GetMsg(ctx, info.State.LastSeq); err == nil && last.Header.Get(jetstream.MsgIDHeader) != "" {
		probe = &nats.Msg{Subject: last.Subject, Header: nats.Header{}}
		probe.Header.Set(jetstream.MsgIDHeader, last.Header.Get(jetstream.MsgIDHeader))
		// No stream's last id is this: a forgotten id is refused, not stored.
		probe.Header.Set(jetstream.ExpectedLastMsgIDHeader, "pgjet-replay-probe")
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge output stream %s: %w", name, err)
	}
	if err := forgetIDs(ctx, js, info.Config, probe); err != nil {
		return fmt.Errorf("output stream %s: %w", name, err)
	}
	log.Warn("purged the output stream before the replay", "stream", name, "messages", info.State.Msgs)
	return nil
}

// A purge keeps the ids of the duplicate window, which would drop the
// replayed events as duplicates. Shrinking the window makes the server
// forget them: a change of the window runs its cleanup at once, with the
// window it has then, which may still be the old one. So forgetIDs
// shortens the window, then changes it again between two short values
// until the server refuses probe (the stream's newest id, the last it
// forgets) with "wrong last msg id" instead of taking it for a duplicate.
// Then the stream gets its own window back; consumers and settings stay.
// Without a probe (the stream's last message has no id) it waits a while.
func forgetIDs(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, probe *nats.Msg) error {
	if cfg.Duplicates <= forgetWindow {
		return nil
	}
	deadline := time.Now().Add(forgetTimeout)
	for i := 0; ; i++ {
		short := cfg
		short.Duplicates = forgetWindow * time.Duration(1+i%2)
		if _, err := js.UpdateStream(ctx, short); err != nil {
			return fmt.Errorf("forget the ids of its duplicate window: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * forgetWindow):
		}
		if probe == nil {
			break
		}
		forgotten, err := forgot(ctx, js, probe)
		if err != nil {
			return fmt.Errorf("ask whether the server forgot the ids of its duplicate window: %w", err)
		}
		if forgotten {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server still remembers the ids of its duplicate window %s after the purge, so replayed events would be dropped as duplicates; run the replay again, or use --into NAME", forgetTimeout)
		}
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("restore its duplicate window of %s: %w", cfg.Duplicates, err)
	}
	return nil
}

// forgot publishes probe: a duplicate means the server still has its id;
// "wrong last msg id" (nothing stored) that it has forgotten it.
func forgot(ctx context.Context, js jetstream.JetStream, probe *nats.Msg) (bool, error) {
	ack, err := js.PublishMsg(ctx, probe)
	var apiErr *jetstream.APIError
	switch {
	case err == nil && ack.Duplicate:
		return false, nil
	case err == nil:
		return false, fmt.Errorf("probe %s stored at seq %d", probe.Header.Get(jetstream.MsgIDHeader), ack.Sequence)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastMsgID:
		return true, nil
	}
	return false, err
}

// errCodeWrongLastMsgID is the server's JSStreamWrongLastMsgIDErr, which
// nats.go names no constant for.
const errCodeWrongLastMsgID jetstream.ErrorCode = 10070

// forgetWindow is the duplicate window a purged stream gets for a moment;
// forgetTimeout bounds the wait for the server to forget.
const (
	forgetWindow  = 100 * time.Millisecond
	forgetTimeout = 30 * time.Second
)

// resolve turns req's points into raw stream sequences and bounds.
func resolve(ctx context.Context, raw jetstream.Stream, req ReplayRequest) (*relay.Replay, error) {
	info, err := raw.Info(ctx, jetstream.WithSubjectFilter(wire.RawFilter))
	if err != nil {
		return nil, fmt.Errorf("raw stream info: %w", err)
	}
	st := info.State
	if st.Msgs == 0 {
		return nil, fmt.Errorf("raw stream %s is empty: nothing to replay", info.Config.Name)
	}
	rs := &rawSearch{raw: raw, name: info.Config.Name, first: st.FirstSeq, last: st.LastSeq}
	if req.From.LSN != 0 || req.To.LSN != 0 {
		if rs.subject, err = sourceSubject(st.Subjects, req.Source); err != nil {
			return nil, err
		}
	}
	b := &relay.Replay{FromSeq: st.FirstSeq, ToSeq: st.LastSeq}
	if rs.subject != "" {
		b.LSNSource, _ = wire.SourceOfSubject(rs.subject)
	}
	if !req.From.given() {
		return nil, errors.New("give where the replay starts: --from-seq, --from-lsn or --from-time")
	}
	if err := rs.from(ctx, req.From, b); err != nil {
		return nil, err
	}
	if req.To.given() {
		switch {
		case req.To.Seq != 0:
			if req.To.Seq > st.LastSeq {
				return nil, fmt.Errorf("--to-seq %d is after the raw stream's last record (%d)", req.To.Seq, st.LastSeq)
			}
			b.ToSeq = req.To.Seq
		case req.To.LSN != 0:
			b.ToLSN = req.To.LSN
		default:
			b.ToTime = req.To.Time.UnixMicro()
		}
	}
	if b.ToSeq < b.FromSeq {
		return nil, fmt.Errorf("the replay would stop (raw seq %d) before it starts (raw seq %d)", b.ToSeq, b.FromSeq)
	}
	return b, nil
}

// sourceSubject is the raw subject of source, or of the only source.
func sourceSubject(subjects map[string]uint64, source string) (string, error) {
	if source != "" {
		subj := wire.RawSubject(source)
		if subjects[subj] == 0 {
			return "", fmt.Errorf("the raw stream holds no records of source %q", source)
		}
		return subj, nil
	}
	if len(subjects) != 1 {
		var names []string
		for s := range subjects {
			if src, ok := wire.SourceOfSubject(s); ok {
				names = append(names, src)
			}
		}
		return "", fmt.Errorf("commit LSNs are per source and the raw stream holds sources %v: give --source", names)
	}
	for s := range subjects {
		return s, nil
	}
	return "", nil
}

// rawSearch finds raw records by position.
type rawSearch struct {
	raw         jetstream.Stream
	name        string
	subject     string // for LSN searches: one source's raw subject
	first, last uint64
}

// from sets b's start for point p, refusing one older than the raw stream's
// first record when records before it are gone.
func (rs *rawSearch) from(ctx context.Context, p Point, b *relay.Replay) error {
	oldest, err := rs.oldest(ctx)
	if err != nil {
		return err
	}
	gone := rs.first > 1 // records before the first one expired or were deleted
	switch {
	case p.Seq != 0:
		if p.Seq < rs.first {
			return fmt.Errorf("--from-seq %d is older than the raw stream's first record: %s", p.Seq, oldest)
		}
		if p.Seq > rs.last {
			return fmt.Errorf("--from-seq %d is after the raw stream's last record (%d)", p.Seq, rs.last)
		}
		if err := rs.insidePieces(ctx, p.Seq); err != nil {
			return err
		}
		b.FromSeq = p.Seq
	case p.LSN != 0:
		m, seq, err := rs.nextOf(ctx, rs.first)
		if err != nil {
			return err
		}
		if len(m.Txs) > 0 && m.Txs[0].CommitLSN > p.LSN && gone {
			return fmt.Errorf("--from-lsn %s is older than the raw stream's first record of the source: %s", wire.LSN(p.LSN), oldest)
		}
		_ = seq
		// The first record whose last transaction commits at or after p.
		s, err := rs.search(ctx, func(m *wire.Message) bool {
			return len(m.Txs) > 0 && m.Txs[len(m.Txs)-1].CommitLSN >= p.LSN
		})
		if err != nil {
			return err
		}
		b.FromSeq, b.FromLSN = s, p.LSN
	default:
		t0, err := rs.storedAt(ctx, rs.first)
		if err != nil {
			return err
		}
		if p.Time.Before(t0) && gone {
			return fmt.Errorf("--from-time %s is older than the raw stream's first record: %s", p.Time.UTC().Format(time.RFC3339), oldest)
		}
		// Records are stored after their transactions commit: the first
		// record stored at or after p holds every transaction committed
		// from p on, and maybe some before, which the bounds leave out.
		lo, hi := rs.first, rs.last+1
		for lo < hi {
			mid := lo + (hi-lo)/2
			t, err := rs.storedAt(ctx, mid)
			if err != nil {
				return err
			}
			if !t.Before(p.Time) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		// Transactions committed just before p may sit in earlier records
		// stored after p: start a little earlier and let the bounds filter.
		b.FromSeq, b.FromTime = max(rs.first, lo-min(lo, 16)), p.Time.UnixMicro()
		if b.FromSeq > rs.last {
			return fmt.Errorf("--from-time %s is after the raw stream's last record", p.Time.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// insidePieces refuses a start at raw record seq when it continues a change
// stored in pieces from earlier records: the relay renders such a change
// from its first piece, so a replay from there would leave it out without
// a word. --from-lsn of its transaction starts at or before the first piece.
func (rs *rawSearch) insidePieces(ctx context.Context, seq uint64) error {
	sm, err := rs.raw.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // deleted: the replay reports its gap
	}
	if err != nil {
		return fmt.Errorf("raw record %d: %w", seq, err)
	}
	var m wire.Message
	if wire.Unmarshal(sm.Data, &m) != nil || len(m.Txs) == 0 {
		return nil // the replay says what it cannot read
	}
	if tx := m.Txs[0]; tx.IsPiece() && tx.PieceOffset > 0 {
		return fmt.Errorf("--from-seq %d lands inside a change stored in pieces (change %d of the transaction at %s, source %s): a replay from there would leave that change out; start at the record of its first piece, or give --from-lsn %s",
			seq, tx.FirstChange, wire.LSN(tx.CommitLSN), m.Source.Name, wire.LSN(tx.CommitLSN))
	}
	return nil
}

// oldest describes the raw stream's first record, for errors.
func (rs *rawSearch) oldest(ctx context.Context) (string, error) {
	sm, err := rs.raw.GetMsg(ctx, rs.first)
	if err != nil {
		return "", fmt.Errorf("raw stream %s: first record %d: %w", rs.name, rs.first, err)
	}
	desc := fmt.Sprintf("raw stream %s starts at seq %d, stored %s", rs.name, sm.Sequence, sm.Time.UTC().Format(time.RFC3339))
	var m wire.Message
	if wire.Unmarshal(sm.Data, &m) == nil && len(m.Txs) > 0 {
		desc += fmt.Sprintf(", first commit LSN %s (source %s)", wire.LSN(m.Txs[0].CommitLSN), m.Source.Name)
	}
	return desc, nil
}

func (rs *rawSearch) storedAt(ctx context.Context, seq uint64) (time.Time, error) {
	for s := seq; s <= rs.last; s++ {
		sm, err := rs.raw.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted: the next one tells
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("raw stream %s: record %d: %w", rs.name, s, err)
		}
		return sm.Time, nil
	}
	return time.Now(), nil
}

// nextOf reads the first record of rs.subject at or after seq.
func (rs *rawSearch) nextOf(ctx context.Context, seq uint64) (*wire.Message, uint64, error) {
	sm, err := rs.raw.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(rs.subject))
	if err != nil {
		return nil, 0, err
	}
	var m wire.Message
	if err := wire.Unmarshal(sm.Data, &m); err != nil {
		return nil, 0, fmt.Errorf("raw record %d: %w", sm.Sequence, err)
	}
	return &m, sm.Sequence, nil
}

// search returns the first record of rs.subject for which ok holds, ok
// being false then true along the stream; past the last, the last + 1.
func (rs *rawSearch) search(ctx context.Context, ok func(*wire.Message) bool) (uint64, error) {
	lo, hi := rs.first, rs.last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, seq, err := rs.nextOf(ctx, mid)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid // nothing of the source from mid on
			continue
		}
		if err != nil {
			return 0, err
		}
		if ok(m) {
			hi = mid
			if seq < hi {
				hi = seq
			}
		} else {
			lo = seq + 1
		}
	}
	if lo > rs.last {
		return 0, fmt.Errorf("no record of the source in raw stream %s reaches that commit LSN", rs.name)
	}
	// lo may fall between records of the source: start at the next one.
	_, seq, err := rs.nextOf(ctx, lo)
	if err != nil {
		return 0, err
	}
	return seq, nil
}
