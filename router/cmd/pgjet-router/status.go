package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// runStatus is `pgjet-router status`: one screen on the raw stream and
// each route's durable and output, from outside the process. Exit 0, or 1
// when something cannot be read.
func runStatus(ctx context.Context, cfg config) int {
	p := cfg.plan
	failed := false
	line := func(key, format string, args ...any) { fmt.Printf("%-12s %s\n", key, fmt.Sprintf(format, args...)) }
	fail := func(key, format string, args ...any) {
		failed = true
		line(key, "ERROR "+format, args...)
	}
	fmt.Printf("pgjet-router status: %d route(s), raw stream %s, at %s\n", len(p.Routes), p.RawStream, time.Now().UTC().Format(time.RFC3339))
	conns := &probes{m: map[string]*opcheck.Probe{}}
	defer conns.close()
	raw, err := conns.get(ctx, p.Raw)
	if err != nil {
		fail("nats", "cannot connect to %s: %v", redact.DSN(p.Raw.URL), err)
		return 1
	}
	info, missing, o, err := rawInfo(ctx, raw, p.RawStream)
	switch {
	case o != opcheck.Answered:
		fail("raw_stream", "%s", opcheck.Permission(o, "$JS.API.STREAM.INFO."+p.RawStream))
		return 1
	case err != nil:
		fail("raw_stream", "%v", err)
		return 1
	case missing:
		line("raw_stream", "%s does not exist yet (pgjet-collector creates it)", p.RawStream)
		return 0
	}
	st := info.State
	line("raw_stream", "%s: first_seq %d (stored %s) last_seq %d (stored %s), %d records, %s, %d source(s)", p.RawStream,
		st.FirstSeq, opcheck.Ago(st.FirstTime), st.LastSeq, opcheck.Ago(st.LastTime), st.Msgs, opcheck.Bytes(int64(st.Bytes)), len(st.Subjects))
	if st.Msgs > 0 {
		if m, err := lastRaw(ctx, raw, p.RawStream, st.LastSeq); err != nil {
			fail("last_record", "%v", err)
		} else if len(m.Txs) > 0 {
			tx := m.Txs[len(m.Txs)-1]
			at := time.UnixMicro(tx.CommitTime)
			line("last_record", "source %s, commit %s at %s (%s by this host's clock)", m.Source.Name, wire.LSN(tx.CommitLSN), at.UTC().Format(time.RFC3339Nano), opcheck.Ago(at))
		}
	}
	for i := range p.Routes {
		rt := &p.Routes[i]
		key := "route " + rt.ID
		ci, missing, o, err := raw.ConsumerInfo(ctx, p.RawStream, rt.Relay.Durable)
		switch {
		case o != opcheck.Answered:
			fail(key, "%s", opcheck.Permission(o, "$JS.API.CONSUMER.INFO."+p.RawStream+"."+rt.Relay.Durable))
		case err != nil:
			fail(key, "%v", err)
		case missing:
			line(key, "durable %s does not exist yet (the router creates it)", rt.Relay.Durable)
		default:
			line(key, "durable %s", opcheck.DurableLine(ci, st.FirstSeq))
		}
		if rt.Relay.Stream == "" {
			continue
		}
		out, err := conns.get(ctx, rt.Conn)
		if err != nil {
			fail(key, "output: cannot connect: %v", err)
			continue
		}
		oi, missing, o, err := out.StreamInfo(ctx, rt.Relay.Stream)
		switch {
		case o != opcheck.Answered:
			fail(key, "output: %s", opcheck.Permission(o, "$JS.API.STREAM.INFO."+rt.Relay.Stream))
		case err != nil:
			fail(key, "output: %v", err)
		case missing:
			line(key, "output stream %s does not exist yet", rt.Relay.Stream)
		default:
			line(key, "output stream %s: last_seq %d (stored %s), %d events, %s", rt.Relay.Stream, oi.State.LastSeq, opcheck.Ago(oi.State.LastTime), oi.State.Msgs, opcheck.Bytes(int64(oi.State.Bytes)))
		}
	}
	line("last_error", "not visible from outside the router: it logs every error and exits non-zero when a route fails for good (see its log or journal); signs shown above: redelivered (records a router failed or timed out on), waiting 0 (no router pulling), a GAP")
	if failed {
		return 1
	}
	return 0
}

// lastRaw decodes raw record seq.
func lastRaw(ctx context.Context, p *opcheck.Probe, stream string, seq uint64) (*wire.Message, error) {
	var resp struct {
		Message struct {
			Data []byte `json:"data"`
		} `json:"message"`
	}
	apiErr, o, err := p.API(ctx, "STREAM.MSG.GET."+stream, map[string]uint64{"seq": seq}, &resp)
	switch {
	case o != opcheck.Answered:
		return nil, errors.New(opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+stream))
	case err != nil:
		return nil, err
	case apiErr != nil:
		return nil, apiErr
	}
	var m wire.Message
	if err := wire.Unmarshal(resp.Message.Data, &m); err != nil {
		return nil, fmt.Errorf("raw record %d: %w", seq, err)
	}
	return &m, nil
}
