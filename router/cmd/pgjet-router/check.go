package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/plan"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// runCheck is `pgjet-router check`: every check of the raw stream and of
// each route's output stream and durable, one report line each. Nothing is
// created or written. Exit 0 when nothing FAILs (warnings allowed), 1
// otherwise (usage errors exit 2 before it runs: opcheck.Run).
func runCheck(ctx context.Context, cfg config) int {
	r := opcheck.NewReport(os.Stdout)
	p := cfg.plan
	fmt.Printf("pgjet-router check: %d route(s), raw stream %s\n", len(p.Routes), p.RawStream)
	conns := &probes{m: map[string]*opcheck.Probe{}}
	defer conns.close()
	raw, err := conns.get(ctx, p.Raw)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot connect to the raw stream's NATS server: %v", err), "check --nats (spec.raw_stream.url), the credentials flags, and that nats-server runs")
		return r.Done()
	}
	r.OK("connected to NATS %s (server %s)", redact.DSN(raw.NC.ConnectedUrlRedacted()), raw.NC.ConnectedServerVersion())
	info := checkRaw(ctx, r, raw, p.RawStream)
	for i := range p.Routes {
		checkRoute(ctx, r, conns, raw, info, p.RawStream, &p.Routes[i])
	}
	r.Note("not checked, as it needs writing: acks ($JS.ACK.%s.<durable>.>; an ack is only valid for a delivered record) and the creation of the output stream's short-lived resume consumer; a stored publish (the publish probes are refused by JetStream before storing)", p.RawStream)
	return r.Done()
}

// subcommand runs `pgjet-router <name>` with the flags (or pipeline file) in args.
func subcommand(name string, args []string, run func(ctx context.Context, cfg config) int) int {
	var cfg config
	return opcheck.Run("pgjet-router "+name, func() (err error) {
		cfg, err = parseConfigWith(args, "pgjet-router "+name, nil)
		return err
	}, func(ctx context.Context) int { return run(ctx, cfg) })
}

// probes are the connections of a check, one per server and credentials.
type probes struct{ m map[string]*opcheck.Probe }

func (ps *probes) get(ctx context.Context, c natsconn.Config) (*opcheck.Probe, error) {
	key := fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v", c.URL, c.Creds, c.User, c.Password, c.Token, c.NKeyFile, c.TLS)
	if p := ps.m[key]; p != nil {
		return p, nil
	}
	p, opt := opcheck.NewProbe()
	c.Name, c.Log = "pgjet-router check", slog.New(slog.NewTextHandler(io.Discard, nil))
	c.Options = append(c.Options, opt)
	cctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	nc, err := natsconn.Connect(cctx, c)
	if err != nil {
		return nil, err
	}
	p.NC = nc
	ps.m[key] = p
	return p, nil
}

func (ps *probes) close() {
	for _, p := range ps.m {
		p.NC.Close()
	}
}

// rawInfo reads the raw stream's info with its subjects (one per source).
func rawInfo(ctx context.Context, p *opcheck.Probe, name string) (*jetstream.StreamInfo, bool, opcheck.Outcome, error) {
	info := &jetstream.StreamInfo{}
	apiErr, o, err := p.API(ctx, "STREAM.INFO."+name, map[string]string{"subjects_filter": wire.RawFilter}, info)
	switch {
	case err != nil || o != opcheck.Answered:
		return nil, false, o, err
	case apiErr != nil && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound:
		return nil, true, o, nil
	case apiErr != nil:
		return nil, false, o, apiErr
	}
	return info, false, o, nil
}

func checkRaw(ctx context.Context, r *opcheck.Report, p *opcheck.Probe, name string) *jetstream.StreamInfo {
	info, missing, o, err := rawInfo(ctx, p, name)
	switch {
	case o != opcheck.Answered:
		r.Fail(fmt.Sprintf("raw stream %s: %s", name, opcheck.Permission(o, "$JS.API.STREAM.INFO."+name)),
			"enable JetStream, and allow this user to publish to $JS.API.STREAM.INFO."+name+", $JS.API.CONSUMER.*."+name+".> and $JS.API.STREAM.MSG.GET."+name)
		return nil
	case err != nil:
		r.Fail(fmt.Sprintf("raw stream %s: %v", name, err), "")
		return nil
	case missing:
		r.Warn(fmt.Sprintf("raw stream %s does not exist yet", name), "pgjet-collector creates it at its first start; the router waits for it")
		return nil
	}
	c, st := info.Config, info.State
	var sources []string
	for s := range st.Subjects {
		if src, ok := wire.SourceOfSubject(s); ok {
			sources = append(sources, src)
		} else {
			sources = append(sources, s) // not a raw subject: show it as it is
		}
	}
	slices.Sort(sources)
	if len(sources) == 0 {
		sources = []string{"none yet"}
	}
	r.OK("raw stream %s: subjects %s, %s; %d records, seq %d-%d, oldest stored %s; sources: %s", name, strings.Join(c.Subjects, ", "), opcheck.Storage(c),
		st.Msgs, st.FirstSeq, st.LastSeq, opcheck.Ago(st.FirstTime), strings.Join(sources, ", "))
	for _, s := range c.Subjects {
		if !route.Covers(wire.RawFilter, s) {
			r.Fail(fmt.Sprintf("raw stream %s also captures %q: the router refuses it", name, s), "it must hold only "+wire.RawFilter+" (the collector creates it so)")
		}
	}
	return info
}

func checkRoute(ctx context.Context, r *opcheck.Report, conns *probes, raw *opcheck.Probe, info *jetstream.StreamInfo, rawName string, rt *plan.Route) {
	rc := rt.Relay
	pre := "route " + rt.ID + ": "
	var subjects []string
	if rc.Route != nil {
		subjects = rc.Route.Subjects()
	} else {
		subjects = []string{rc.Prefix + ".>"}
	}
	if rc.Stream != "" {
		if out, err := conns.get(ctx, rt.Conn); err != nil {
			r.Fail(pre+fmt.Sprintf("cannot connect to the output's NATS server: %v", err), "check the sink's url and credentials")
		} else {
			checkOutput(ctx, r, out, rt, subjects, pre)
		}
	}
	checkDurable(ctx, r, raw, info, rawName, rt, pre)
}

func checkOutput(ctx context.Context, r *opcheck.Report, out *opcheck.Probe, rt *plan.Route, subjects []string, pre string) {
	rc := rt.Relay
	name := rc.Stream
	info, missing, o, err := out.StreamInfo(ctx, name)
	switch {
	case o != opcheck.Answered:
		r.Fail(pre+fmt.Sprintf("output stream %s: %s", name, opcheck.Permission(o, "$JS.API.STREAM.INFO."+name)),
			"allow this user to publish to $JS.API.STREAM.INFO."+name+" (and $JS.API.STREAM.CREATE, $JS.API.STREAM.MSG.GET of it)")
		return
	case err != nil:
		r.Fail(pre+fmt.Sprintf("output stream %s: %v", name, err), "")
		return
	case missing:
		if o := out.MayCreateStream(ctx, name); o != opcheck.Answered {
			r.Fail(pre+fmt.Sprintf("output stream %s does not exist and the router may not create it (%s)", name, opcheck.Permission(o, "$JS.API.STREAM.CREATE."+name)),
				"allow publishing to $JS.API.STREAM.CREATE."+name+", or create it with subjects "+strings.Join(subjects, ", "))
		} else {
			persist := "default"
			if rc.PersistAsync {
				persist = "async"
			}
			r.Warn(pre+fmt.Sprintf("output stream %s does not exist", name),
				fmt.Sprintf("the router creates it at start: subjects %s, R%d, duplicate window %s, persistence %s", strings.Join(subjects, ", "), max(rc.Output.Replicas, 1), opcheck.Dur(rc.Duplicates), persist))
		}
		return
	}
	c, st := info.Config, info.State
	r.OK(pre+"output stream %s: subjects %s, %s; %d events, last seq %d stored %s", name, strings.Join(c.Subjects, ", "), opcheck.Storage(c), st.Msgs, st.LastSeq, opcheck.Ago(st.LastTime))
	var missingSubj []string
	for _, w := range subjects {
		if !slices.ContainsFunc(c.Subjects, func(s string) bool { return route.Covers(s, w) }) {
			missingSubj = append(missingSubj, w)
		}
	}
	if len(missingSubj) > 0 {
		r.Fail(pre+fmt.Sprintf("output stream %s does not capture %s: the router refuses to start", name, strings.Join(missingSubj, ", ")),
			fmt.Sprintf("add them (nats stream edit %s --subjects '%s'), or choose another stream or subject", name, strings.Join(append(slices.Clone(c.Subjects), missingSubj...), ",")))
	}
	if c.Storage == jetstream.MemoryStorage {
		r.Warn(pre+fmt.Sprintf("output stream %s uses memory storage: a server restart loses its events", name), "rebuild them with pgjet-router replay after a restart, or recreate the stream with file storage")
	}
	if c.PersistMode == jetstream.AsyncPersistMode && !rc.PersistAsync {
		r.Warn(pre+fmt.Sprintf("output stream %s has async persistence: a server crash can lose its latest events", name), "rebuild them by replay after a crash, or recreate it with default persistence")
	}
	if c.Duplicates > 10*time.Minute {
		r.Warn(pre+fmt.Sprintf("output stream %s keeps ids for %s: the server holds about 150 bytes of heap per event for that long", name, opcheck.Dur(c.Duplicates)),
			"a 2m window is enough (the router resyncs from the stream after longer outages)")
	}
	checkPublish(ctx, r, out, subjects, pre)
	var m struct{}
	apiErr, o, _ := out.API(ctx, "STREAM.MSG.GET."+name, map[string]string{"last_by_subj": subjects[0]}, &m)
	switch {
	case o != opcheck.Answered:
		r.Fail(pre+"cannot read the output's last events: "+opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+name),
			"the router reads them at start to skip what is stored: allow publishing to $JS.API.STREAM.MSG.GET."+name)
	case apiErr != nil && apiErr.ErrorCode != jetstream.JSErrCodeMessageNotFound:
		r.Warn(pre+fmt.Sprintf("reading the output's last event: %v", apiErr), "")
	default:
		r.OK(pre+"may read the output's last events ($JS.API.STREAM.MSG.GET.%s)", name)
	}
}

// checkPublish tests publishing to each subject with a message JetStream
// refuses before storing it (opcheck.MayPublish).
func checkPublish(ctx context.Context, r *opcheck.Report, out *opcheck.Probe, subjects []string, pre string) {
	var ok []string
	for _, pattern := range subjects {
		subj := opcheck.Concrete(pattern)
		o, apiErr := out.MayPublish(ctx, subj)
		switch {
		case o == opcheck.NoResponders:
			r.Fail(pre+fmt.Sprintf("no stream captures %s", subj), "the output stream's subjects must cover "+pattern)
		case o != opcheck.Answered:
			r.Fail(pre+"cannot publish events: "+opcheck.Permission(o, subj), "allow this user to publish to "+pattern+" (and subscribe to _INBOX.> for acks)")
		case apiErr.ErrorCode != opcheck.ErrCodeStreamNotMatch:
			r.Fail(pre+fmt.Sprintf("publish to %s: %v", subj, apiErr), "")
		default:
			ok = append(ok, pattern)
		}
	}
	if len(ok) > 0 {
		r.OK(pre+"may publish to %s (tested with messages JetStream refuses by their Nats-Expected-Stream header: nothing was stored)", strings.Join(ok, ", "))
	}
}

func checkDurable(ctx context.Context, r *opcheck.Report, raw *opcheck.Probe, info *jetstream.StreamInfo, rawName string, rt *plan.Route, pre string) {
	rc := rt.Relay
	if info == nil {
		return // no raw stream (reported), so no durable
	}
	ci, missing, o, err := raw.ConsumerInfo(ctx, rawName, rc.Durable)
	switch {
	case o != opcheck.Answered:
		r.Fail(pre+fmt.Sprintf("durable %s: %s", rc.Durable, opcheck.Permission(o, "$JS.API.CONSUMER.INFO."+rawName+"."+rc.Durable)),
			"allow this user to publish to $JS.API.CONSUMER.*."+rawName+".> and $JS.API.CONSUMER.MSG.NEXT."+rawName+"."+rc.Durable)
		return
	case err != nil:
		r.Fail(pre+fmt.Sprintf("durable %s: %v", rc.Durable, err), "")
		return
	case missing:
		start := "the first record the raw stream retains (seq " + fmt.Sprint(info.State.FirstSeq) + ")"
		if info.State.Msgs == 0 {
			start = "the first record written"
		}
		if rc.StartNew {
			start = "the records written from then on (start_position latest)"
		}
		if o := raw.MayCreateConsumer(ctx, rawName, rc.Durable, wire.RawFilter); o != opcheck.Answered {
			r.Fail(pre+fmt.Sprintf("durable %s does not exist and the router may not create it (%s)", rc.Durable, opcheck.Permission(o, "$JS.API.CONSUMER.CREATE."+rawName+"."+rc.Durable+"."+wire.RawFilter)),
				"allow publishing to $JS.API.CONSUMER.CREATE."+rawName+".>")
		} else {
			r.Warn(pre+fmt.Sprintf("durable %s does not exist", rc.Durable), "the router creates it at start, reading from "+start)
		}
		return
	}
	r.OK(pre+"durable %s", opcheck.DurableLine(ci, info.State.FirstSeq))
	cc := ci.Config
	if cc.FilterSubject != wire.RawFilter && !slices.Equal(cc.FilterSubjects, []string{wire.RawFilter}) {
		r.Warn(pre+fmt.Sprintf("durable %s filters %q, not %s", rc.Durable, cc.FilterSubject+strings.Join(cc.FilterSubjects, ","), wire.RawFilter), "the router sets it back at start")
	}
	if replicas := rc.StandbyTTL > 0; replicas != (len(cc.PriorityGroups) > 0) {
		r.Fail(pre+fmt.Sprintf("durable %s was made for %s, this route runs %s", rc.Durable, map[bool]string{true: "active/standby replicas", false: "one router"}[!replicas], map[bool]string{true: "active/standby replicas", false: "one router"}[replicas]),
			"a durable cannot switch between one router and active/standby replicas: give the route a new durable")
	}
	if ci.NumRedelivered > 0 {
		r.Warn(pre+fmt.Sprintf("durable %s has %d records redelivered and not yet acknowledged: a router failed or timed out with them in flight", rc.Durable, ci.NumRedelivered),
			"see the router's log; it republishes them with the same ids, which the output deduplicates")
	}
	if ci.NumWaiting == 0 {
		r.Warn(pre+fmt.Sprintf("durable %s has no pull request waiting: no router is reading it now", rc.Durable), "start pgjet-router if it should run")
	}
	switch o := raw.MayPull(ctx, rawName, rc.Durable); o {
	case opcheck.Answered:
		r.OK(pre+"may pull from durable %s (tested with a malformed pull request the server answers with 400: nothing was delivered)", rc.Durable)
	default:
		r.Fail(pre+"cannot pull raw records: "+opcheck.Permission(o, "$JS.API.CONSUMER.MSG.NEXT."+rawName+"."+rc.Durable),
			"allow this user to publish to $JS.API.CONSUMER.MSG.NEXT."+rawName+"."+rc.Durable+" and $JS.ACK."+rawName+"."+rc.Durable+".>")
	}

	checkHoles(ctx, r, raw, info, rawName, ci, pre)

	// Gap: records this durable has not acknowledged that expired.
	next, first := ci.AckFloor.Stream+1, info.State.FirstSeq
	switch {
	case first > next:
		gap := relay.SeqRange{First: next, Last: first - 1}
		r.Fail(pre+fmt.Sprintf("records %s expired or were deleted before durable %s read them: their changes cannot reach the output, and the router stops on this gap", gap, rc.Durable),
			"raise the raw stream's max age so it does not recur; rebuild the output (pgjet-router replay), or go on without them: start the router with --accept-gap "+gap.String())
	case ci.NumPending+uint64(ci.NumAckPending) == 0 || next > info.State.LastSeq:
		r.OK(pre+"no gap risk: durable %s has read every record (the raw stream starts at seq %d)", rc.Durable, first)
	default:
		stored, err := storedAt(ctx, raw, rawName, next)
		maxAge := info.Config.MaxAge
		switch {
		case err != nil:
			r.Warn(pre+fmt.Sprintf("cannot read raw record %d to see when it expires: %v", next, err), "")
		case maxAge > 0 && time.Since(stored) > maxAge/2:
			r.Warn(pre+fmt.Sprintf("durable %s's next record (seq %d) was stored %s: it expires in %s (max age %s)", rc.Durable, next, opcheck.Ago(stored), opcheck.Dur(maxAge-time.Since(stored)), opcheck.Dur(maxAge)),
				"make sure the router runs and keeps up, or raise the raw stream's max age")
		default:
			r.OK(pre+"no gap: durable %s's next record (seq %d, stored %s) is retained (first seq %d, max age %s)", rc.Durable, next, opcheck.Ago(stored), first, opcheck.Dur(maxAge))
		}
	}
}

// holeScan is how many of a durable's next raw records check reads to find
// one the router cannot decode.
const holeScan = 32

// checkHoles reports the holes the durable will meet (relay's holes.go):
// the record it stopped at, records deleted from the stream after its ack
// floor, and undecodable records among the next ones.
func checkHoles(ctx context.Context, r *opcheck.Report, raw *opcheck.Probe, info *jetstream.StreamInfo, rawName string, ci *jetstream.ConsumerInfo, pre string) {
	durable := ci.Config.Durable
	if at, _ := strconv.ParseUint(ci.Config.Metadata[relay.StoppedAtKey], 10, 64); at > ci.AckFloor.Stream {
		r.Warn(pre+fmt.Sprintf("durable %s stopped at raw record %d, a hole (the lines below say which)", durable, at), "")
	} else if at > 0 {
		// The consumer moved past it: only deleted records do that.
		gap := relay.SeqRange{First: at, Last: ci.AckFloor.Stream}
		r.Fail(pre+fmt.Sprintf("raw records %s were deleted from the stream after durable %s stopped at them: the router stops at them again", gap, durable),
			"go on without them: start the router with --accept-gap "+gap.String())
	}
	// Records deleted after what the durable acknowledged.
	var full jetstream.StreamInfo
	apiErr, o, err := raw.API(ctx, "STREAM.INFO."+rawName, map[string]bool{"deleted_details": true}, &full)
	if o == opcheck.Answered && err == nil && apiErr == nil {
		var ahead relay.SeqRanges
		for _, seq := range full.State.Deleted {
			if seq <= ci.AckFloor.Stream {
				continue
			}
			if n := len(ahead); n > 0 && ahead[n-1].Last+1 == seq {
				ahead[n-1].Last = seq
			} else {
				ahead = append(ahead, relay.SeqRange{First: seq, Last: seq})
			}
		}
		if len(ahead) > 0 {
			r.Fail(pre+fmt.Sprintf("raw records %s were deleted from the stream before durable %s read them: the router stops at them", ahead, durable),
				"rebuild the output (pgjet-router replay), or go on without them: start the router with --accept-gap "+ahead.String())
		}
	}
	// Undecodable records among the next ones.
	var bad relay.SeqRanges
	var cause error
	last := min(info.State.LastSeq, ci.AckFloor.Stream+holeScan)
	for seq := max(ci.AckFloor.Stream+1, info.State.FirstSeq); seq <= last; seq++ {
		data, subject, err := rawRecord(ctx, raw, rawName, seq)
		if err != nil || data == nil {
			continue // deleted (reported above), or unreadable now (reported elsewhere)
		}
		var m wire.Message
		if err := wire.Unmarshal(data, &m); err != nil {
			bad = append(bad, relay.SeqRange{First: seq, Last: seq})
			cause = fmt.Errorf("%s: %w", subject, err)
		}
	}
	if len(bad) > 0 {
		r.Fail(pre+fmt.Sprintf("raw records %s cannot be decoded (the last: %v): the router stops at the first", bad, cause),
			"if a newer pgjet wrote them, upgrade the router; else start it with --dead-letter-raw "+bad.String()+" to send their bytes to the dead-letter subject")
	} else if last > ci.AckFloor.Stream {
		r.OK(pre+"durable %s's next raw records (seq %d-%d) decode", durable, ci.AckFloor.Stream+1, last)
	}
}

// rawRecord reads raw record seq: its data and subject, nil data when it
// is not in the stream.
func rawRecord(ctx context.Context, p *opcheck.Probe, stream string, seq uint64) ([]byte, string, error) {
	var resp struct {
		Message struct {
			Subject string `json:"subject"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	apiErr, o, err := p.API(ctx, "STREAM.MSG.GET."+stream, map[string]uint64{"seq": seq}, &resp)
	switch {
	case o != opcheck.Answered:
		return nil, "", errors.New(opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+stream))
	case err != nil:
		return nil, "", err
	case apiErr != nil && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, "", nil
	case apiErr != nil:
		return nil, "", apiErr
	}
	return resp.Message.Data, resp.Message.Subject, nil
}

// storedAt is when raw record seq was stored.
func storedAt(ctx context.Context, p *opcheck.Probe, stream string, seq uint64) (time.Time, error) {
	var resp struct {
		Message struct {
			Time time.Time `json:"time"`
		} `json:"message"`
	}
	apiErr, o, err := p.API(ctx, "STREAM.MSG.GET."+stream, map[string]uint64{"seq": seq}, &resp)
	switch {
	case o != opcheck.Answered:
		return time.Time{}, errors.New(opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+stream))
	case err != nil:
		return time.Time{}, err
	case apiErr != nil:
		return time.Time{}, apiErr
	}
	return resp.Message.Time, nil
}
