package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
)

// crashAt starts a process set to SIGKILL itself the after-th time it reaches
// point, and waits until it has.
func crashAt(t *testing.T, start func(envv ...string) *harness.Proc, point string, after int, timeout time.Duration) {
	t.Helper()
	p := start("PGJET_CRASHPOINT="+point, fmt.Sprintf("PGJET_CRASHPOINT_AFTER=%d", after))
	err := waitExit(t, p, timeout, "crash point "+point)
	if !strings.Contains(p.Log(), "crashpoint "+point) {
		t.Fatalf("%s exited (%v) without reaching crash point %s (is PGJET_CRASHPOINT wired?):\n%s", p.Name, err, point, tail(p.Log(), 30))
	}
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("%s at crash point %s: exit %v, want killed", p.Name, point, err)
	}
}

// Invariant: kill -9 of the collector between a publish and its ack, between
// the ack and the slot confirmation, right after a non-final fragment of a
// large transaction, or between two pieces of a row too large for one raw
// message, then a restart, loses and doubles nothing.
func TestCollectorCrashPoints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		point string
		after func(rng int) int // which hit kills
		big   bool              // start a large transaction first
		piece bool              // commit a row of 1 MB first (pieces of 128 kB)
	}{
		{"publish-before-ack", func(r int) int { return 5 + r%20 }, false, false},
		{"ack-before-confirm", func(r int) int { return 5 + r%20 }, false, false},
		{"mid-fragment", func(r int) int { return 1 + r%3 }, true, false},
		{"mid-piece", func(r int) int { return 1 + r%5 }, false, true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			e := workEnv(t)
			rng := newRand(t, "test")
			// The slot, the publication and the raw stream exist before
			// the first change is committed.
			must(t, e.collector().Stop())
			e.router()
			w := e.startWorkload(defaultWorkload())
			after := tc.after(rng.IntN(1000))
			if tc.big {
				w.bigNow()
			}
			if tc.piece {
				e.exec(`UPDATE accounts SET bio = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g) WHERE id = 1`)
			}
			crashAt(t, func(envv ...string) *harness.Proc { return e.startCollector(nil, envv...) }, tc.point, after, 90*time.Second)
			t.Logf("collector killed at %s (hit %d)", tc.point, after)
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			e.collector()
			w.bigNow()
			time.Sleep(pick(3*time.Second, 8*time.Second))
			w.Stop()
			alive(t, e.col, "collector")
			alive(t, e.rt, "router")
			e.verify("collector kill -9 at " + tc.point)
		})
	}
}

// Invariant: kill -9 of the collector, or of the router, at random moments
// of one continuous workload (some aimed at a large transaction: decoded and
// published in fragments by the collector, its events published by the
// router), each followed by a restart, loses and doubles nothing.
func TestRandomKills(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// bigWait: ms to wait after starting a large transaction, so that
		// the kill lands while it is handled.
		bigWait int
	}{
		{"collector", 200},
		{"router", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kills := pick(3, 20)
			e := workEnv(t)
			rng := newRand(t, "test")
			e.collector()
			e.router()
			victim, restart := func() *harness.Proc { return e.col }, e.collector
			if tc.name == "router" {
				victim, restart = func() *harness.Proc { return e.rt }, e.router
			}
			w := e.startWorkload(defaultWorkload())
			for i := range kills {
				if i%pick(2, 4) == 1 {
					w.bigNow()
					time.Sleep(time.Duration(tc.bigWait+rng.IntN(1500)) * time.Millisecond)
				} else {
					time.Sleep(time.Duration(300+rng.IntN(2500)) * time.Millisecond)
				}
				alive(t, victim(), tc.name)
				victim().Kill()
				if rng.IntN(2) == 0 {
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
				}
				restart()
			}
			time.Sleep(2 * time.Second)
			w.Stop()
			alive(t, e.col, "collector")
			alive(t, e.rt, "router")
			e.verify(fmt.Sprintf("%s kill -9 at %s", tc.name, plural(kills, "random moment")))
		})
	}
}

// Invariant: kill -9 of the router after its events are stored but before
// the raw record is acknowledged, then a restart, doubles nothing (the output
// stream dedupes the republished events) and loses nothing.
func TestRouterCrashPoint(t *testing.T) {
	t.Parallel()
	e := workEnv(t)
	rng := newRand(t, "test")
	e.collector()
	w := e.startWorkload(defaultWorkload())
	after := 5 + rng.IntN(40)
	crashAt(t, func(envv ...string) *harness.Proc { return e.startRouter(nil, envv...) }, "publish-before-ack", after, 90*time.Second)
	t.Logf("router killed at publish-before-ack (hit %d)", after)
	e.router()
	time.Sleep(pick(3*time.Second, 8*time.Second))
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	e.verify("router kill -9 at publish-before-ack")
}
