package faults

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
)

// activeSince is when p last said that it became the active replica ("" if
// never): slog's text timestamps sort as times.
func activeSince(p *harness.Proc) string {
	const line = `msg="this replica is active now`
	log := p.Log()
	i := strings.LastIndex(log, line)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(log[:i], "time=")
	if start < 0 {
		return ""
	}
	return log[start : start+len("time=2006-01-02T15:04:05.000Z")]
}

// Invariant: two replicas of one router (--standby) share its durable; kill
// -9 of the active one under load, repeatedly (each killed one restarted as
// a standby): the other takes over, and the output holds every committed
// change exactly once, in commit order. Reports the takeover time, from the
// kill to the consumer's ack floor moving again, p50 and max.
func TestRouterStandbyTakeover(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	e.collector()
	const ttl = 3 * time.Second
	args := []string{"--standby", "--standby-ttl", ttl.String()}
	replicas := []*harness.Proc{e.startRouter(args), e.startRouter(args)}
	w := e.startWorkload(defaultWorkload())
	_, js := e.nats.Connect(t)
	ackFloor := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, "PGJET_RAW", "pgjet-router")
		if err != nil {
			return 0
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return 0
		}
		return ci.AckFloor.Stream
	}
	active := func() int {
		best, at := -1, ""
		for i, p := range replicas {
			if s := activeSince(p); !p.Exited() && s > at {
				best, at = i, s
			}
		}
		return best
	}
	var takeovers []time.Duration
	kills := pick(2, 10)
	for k := 0; k < kills; k++ {
		if !eventually(60*time.Second, func() bool { return active() >= 0 && ackFloor() > 0 }) {
			t.Fatalf("no replica became active")
		}
		time.Sleep(pick(time.Second, 3*time.Second)) // under load
		i := active()
		floor := ackFloor()
		replicas[i].Kill()
		killed := time.Now()
		// Restarted as a standby, as a supervisor would.
		replicas[i] = e.startRouter(args)
		if !eventually(60*time.Second, func() bool { return ackFloor() > floor }) {
			t.Fatalf("kill %d: the ack floor did not move within 60 s of killing the active replica", k+1)
		}
		takeovers = append(takeovers, time.Since(killed))
	}
	w.Stop()
	for i, p := range replicas {
		alive(t, p, "router replica "+string(rune('a'+i)))
	}
	e.verify("kill -9 of the active router replica")
	slices.Sort(takeovers)
	t.Logf("takeover after kill -9 of the active replica (pin TTL %s), %d kills: p50 %s, max %s",
		ttl, len(takeovers), takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond))
}
