package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The publish ceiling: how many of a workload's events the nats-server
// stores per second when a client does nothing but publish them, measured
// in the same round as the routers. The events are a router's of that
// round, one ceiling per envelope (their subjects, bodies and headers, a
// sample of them cycled with ids of their own), published with the
// cheapest client there is:
// core publishes with a reply subject each, a window of 2,048 awaiting
// their acks, which are counted and not read. A router at the ceiling is
// held by the server, not by itself.

// sampleEvents keeps up to 512 messages of stream, for the ceiling.
func sampleEvents(ctx context.Context, js jetstream.JetStream, stream string) []*nats.Msg {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	var out []*nats.Msg
	for seq := uint64(1); seq <= 512; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// publishCeiling publishes events copies of sample into a fresh output
// stream on n (async persistence, as the routers' outputs) and times it.
// without, when set, is a header left out of every message
// (ceilingHeaders); perfFile, when set, profiles the server meanwhile
// (perf record).
func (b *bench) publishCeiling(ctx context.Context, n *natsServer, wname, tag, variant string, sample []*nats.Msg, events uint64, without, perfFile string) (routerRun, error) {
	r := routerRun{Persist: "async", Envelope: variant}
	if len(sample) == 0 {
		return r, fmt.Errorf("%s of %s: no sample of the router's events", variant, wname)
	}
	nc, err := nats.Connect(n.url)
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	stream := "EV_" + tag
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{sample[0].Subject[:subjectRoot(sample[0].Subject)] + ".>"},
		Storage: jetstream.FileStorage, PersistMode: jetstream.AsyncPersistMode, Duplicates: 2 * time.Minute}); err != nil {
		return r, err
	}
	defer func() {
		if err := js.DeleteStream(ctx, stream); err != nil {
			logf("publish ceiling: delete %s: %v", stream, err)
		}
	}()
	const window = 2048
	inbox := nats.NewInbox()
	var acked atomic.Int64
	free := make(chan struct{}, window)
	sub, err := nc.Subscribe(inbox+".*", func(*nats.Msg) {
		acked.Add(1)
		free <- struct{}{}
	})
	if err != nil {
		return r, err
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return r, err
	}
	for range window {
		free <- struct{}{}
	}
	if perfFile != "" {
		perf, err := b.startPerf(n.proc.pid(), perfFile)
		if err != nil {
			return r, err
		}
		defer stopPerf(perf)
	}
	natsCPU0, _ := cpuSeconds(n.proc.pid())
	natsSys0 := syscalls(n.proc.pid())
	self0 := selfCPU()
	t0 := time.Now()
	for i := uint64(0); i < events; i++ {
		<-free
		s := sample[i%uint64(len(sample))]
		m := &nats.Msg{Subject: s.Subject, Data: s.Data, Reply: inbox + "." + strconv.FormatUint(i, 36), Header: nats.Header{}}
		for k, v := range s.Header {
			m.Header[k] = v
		}
		m.Header[jetstream.MsgIDHeader] = []string{s.Header.Get(jetstream.MsgIDHeader) + "." + strconv.FormatUint(i, 10)}
		m.Header[jetstream.ExpectedStreamHeader] = []string{stream}
		if without != "" {
			delete(m.Header, without)
		}
		if err := nc.PublishMsg(m); err != nil {
			return r, err
		}
	}
	for deadline := time.Now().Add(2 * time.Minute); uint64(acked.Load()) < events && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	r.Secs = time.Since(t0).Seconds()
	r.Events, r.Msgs = uint64(acked.Load()), uint64(acked.Load())
	r.CPU = selfCPU() - self0
	c, _ := cpuSeconds(n.proc.pid())
	r.NATSCPU = c - natsCPU0
	r.NATSSyscalls = syscalls(n.proc.pid()) - natsSys0
	r.PerSec = float64(r.Events) / r.Secs
	r.Load = loadavg1()
	if s, err := js.Stream(ctx, stream); err == nil {
		if info, err := s.Info(ctx); err == nil {
			r.Bytes = info.State.Bytes
		}
	}
	logf("%s on %s: %d events in %.2fs, %.0f events/s, client CPU %.2fs, nats CPU %.2fs, nats syscalls %.1f per 1000 events, loadavg1 %s",
		variant, wname, r.Events, r.Secs, r.PerSec, r.CPU, r.NATSCPU, perThousand(r.NATSSyscalls, r.Events), r.Load)
	return r, nil
}

// ceilingVariant is the publish ceiling's name among the router variants:
// of the native events; ceilingOf names the others'.
const ceilingVariant = "publish ceiling"

// ceilingOf is the name of the publish ceiling of variant's events.
func ceilingOf(variant string) string {
	if variant == "native" {
		return ceilingVariant
	}
	return ceilingVariant + " (" + variant + ")"
}

// ceilingHeaders are the headers a router sets on every event whose cost
// to the server -ceiling-headers measures: the id the server dedupes by
// (a map of every id in the duplicate window) and the stream guard.
var ceilingHeaders = []string{jetstream.MsgIDHeader, jetstream.ExpectedStreamHeader}

// ceilingWithout names the native events' ceiling without header.
func ceilingWithout(header string) string { return ceilingVariant + " without " + header }

// isCeiling reports whether envelope names a publish ceiling.
func isCeiling(envelope string) bool { return strings.HasPrefix(envelope, ceilingVariant) }

// subjectRoot is the length of subject's first token.
func subjectRoot(subject string) int {
	for i := range len(subject) {
		if subject[i] == '.' {
			return i
		}
	}
	return len(subject)
}

// selfCPU is this process's CPU time, user and system, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func perThousand(n, events uint64) float64 {
	if events == 0 {
		return 0
	}
	return float64(n) * 1000 / float64(events)
}
