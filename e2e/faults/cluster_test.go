package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/harness"
)

const (
	rawStream    = "PGJET_RAW"
	outputStream = "PGJET_EVENTS"
)

// Invariant (design guarantees 1 to 3 on a cluster): with the raw and the
// output stream R3 on a 3-node cluster run from deploy/nats/cluster-*.conf,
// kill -9 of a node that does not lead the raw stream (writes go on with two
// nodes), then kill -9 of the raw stream's leader (one node left: no quorum,
// the pipeline waits), then restarts of both, while Postgres keeps
// committing, lose no committed change and store none twice, in the raw
// stream or in the output; the raw stream stays in commit order.
//
// Output order (guarantee 4) is measured, not asserted: README's Order
// caveat says that a stream leader change can make a republished earlier
// event land after a later one. Each run logs how many events came after a
// later change of their table (out_of_order in the SUMMARY line and the
// CLUSTER line), apart from loss and duplicates; the test fails only on
// those, extras and wrong values.
//
// The first victim leads the output stream (its leadership is moved off the
// raw stream's leader first when both are on one node), so that each round
// changes the output stream's leader while a majority stays up (the
// caveat's case) and the raw stream's leader on quorum loss. `make test`
// runs one round; PGJET_FAULTS=full runs four, the later ones aimed at a
// large transaction.
func TestClusterNodeKills(t *testing.T) {
	t.Parallel()
	began := time.Now()
	rounds := pick(1, 4)
	c := harness.StartCluster(t, 3)
	e := workEnvWith(t, envConfig{cluster: c})
	e.colFlags = append(e.colFlags, "--raw-replicas", "3")
	rng := newRand(t, "test")
	nc, js := e.nats.Connect(t)

	e.collector()
	e.startRouter([]string{"--output-replicas", "3"})
	// Short mode: a lighter workload, so that the pipeline catches up fast
	// after the restarts.
	wl := defaultWorkload()
	wl.pause = pick(50*time.Millisecond, wl.pause)
	wl.bigRows = pick(1000, 10000)
	w := e.startWorkload(wl)
	for _, s := range []string{rawStream, outputStream} {
		info := streamInfo(t, c, js, s, 2*time.Minute)
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: %d replicas configured, cluster %+v; want R3 on the three nodes", s, info.Config.Replicas, info.Cluster)
		}
	}
	t.Logf("cluster %s up, collector streaming, router relaying in %s", nodeNames(c), time.Since(began).Round(100*time.Millisecond))

	var stats []roundStats
	for i := range rounds {
		// A random moment of the workload: some raw records later.
		waitRecords(t, js, 10+rng.IntN(40), time.Minute, "before the kills")
		if i > 0 {
			w.bigNow()
			waitRecords(t, js, 1+rng.IntN(5), time.Minute, "the large transaction")
		}
		stats = append(stats, killRound(t, e, c, nc, js, rng))
		alive(t, e.col, "collector")
		alive(t, e.rt, "router")
	}
	// Everything works again with all three nodes.
	waitRecords(t, js, 10, 2*time.Minute, "after the restarts")
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	t.Logf("kills done and workload stopped at +%s", time.Since(began).Round(100*time.Millisecond))

	r := e.report(fmt.Sprintf("3-node cluster, R3 streams, %s of a follower then the raw leader", plural(rounds, "round")))
	raw := e.rawCheck()
	for i, s := range stats {
		t.Logf("CLUSTER round %d: %s", i+1, s)
	}
	t.Logf("CLUSTER %s: committed=%d delivered=%d lost=%d duplicated=%d out_of_order=%d (raw: records=%d duplicated=%d out_of_order=%d) in %s",
		plural(rounds, "round"), r.Committed, r.Delivered, r.Lost, r.Duplicated, r.OutOfOrder,
		raw.records, raw.duplicated, raw.outOfOrder, time.Since(began).Round(time.Second))
	if r.Lost > 0 || r.Duplicated > 0 || r.Extra > 0 || r.ValueMismatches > 0 {
		t.Errorf("invariant violated: %s", r)
	} else if r.OutOfOrder > 0 {
		// README's Order caveat, measured: not a failure.
		t.Logf("NOTE: %s after a later change of their table (README, Order: a leader change can do that), by step: %s\n%s",
			plural(r.OutOfOrder, "event"), attribute(r.Problems, stats), outOfOrderProblems(r.Problems))
	}
	if !raw.ok() {
		t.Errorf("raw stream: %s", raw)
	}
}

// roundStats are the figures of one round of kills.
type roundStats struct {
	follower, leader   string // the nodes killed
	outLeader          string // output stream's leader before the kills
	outLeaderAfter     string // and after the follower's kill
	duringFollower     int    // raw records stored with the follower down
	followerWrites     time.Duration
	outTakeover        time.Duration // output stream's new leader elected
	outStored          time.Duration // and 10 more events stored
	moved              bool          // output leadership moved off the raw leader first
	takeover, recovery time.Duration
	newLeader          string
	// phases: the output stream's last sequence when each step began.
	phases []phase
}

type phase struct {
	name string
	seq  uint64
}

func (s *roundStats) mark(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	s.phases = append(s.phases, phase{name, lastSeq(t, js, outputStream)})
}

func (s roundStats) String() string {
	moved := ""
	if s.moved {
		moved = " (moved there by a stepdown)"
	}
	out := fmt.Sprintf("output leader%s: %s took over in %s, 10 events stored after %s", moved, s.outLeaderAfter,
		s.outTakeover.Round(10*time.Millisecond), s.outStored.Round(10*time.Millisecond))
	return fmt.Sprintf("killed %s, not the raw leader (%s; %d raw records stored in the next %s), then raw leader %s (no quorum); "+
		"after the restarts %s leads the raw stream, stored again %s after the leader's kill, every node healthy and current after %s",
		s.follower, out, s.duringFollower, s.followerWrites.Round(10*time.Millisecond), s.leader,
		s.newLeader, s.takeover.Round(10*time.Millisecond), s.recovery.Round(10*time.Millisecond))
}

// killRound kills a node that does not lead the raw stream, waits until the
// raw stream stores records with two nodes, kills the raw stream's leader,
// restarts the first node (quorum again: a new leader) and then the leader.
func killRound(t *testing.T, e *env, c *harness.Cluster, nc *nats.Conn, js jetstream.JetStream, rng *rand.Rand) roundStats {
	t.Helper()
	var s roundStats
	leader := c.WaitStreamLeader(js, rawStream, nil, time.Minute)
	outLeader := c.WaitStreamLeader(js, outputStream, nil, time.Minute)
	if outLeader == leader {
		var others []*harness.NATS
		for _, n := range c.Nodes {
			if n != leader {
				others = append(others, n)
			}
		}
		outLeader = others[rng.IntN(len(others))]
		s.mark(t, js, "output leader stepdown")
		c.MoveStreamLeader(nc, js, outputStream, outLeader, time.Minute)
		s.moved = true
		if l := c.WaitStreamLeader(js, rawStream, nil, time.Minute); l != leader {
			t.Fatalf("raw stream leader moved from %s to %s with the output stream's", leader.Name(), l.Name())
		}
		// The router stores events through the new output leader.
		waitStored(t, js, outputStream, 10, 2*time.Minute, "output after its leader's stepdown")
	}
	follower := outLeader
	s.follower, s.leader, s.outLeader = follower.Name(), leader.Name(), outLeader.Name()

	// A follower down: the raw stream keeps storing with two nodes.
	s.mark(t, js, "kill of the output leader")
	follower.Kill()
	killed := time.Now()
	const followerRecords = 10
	waitRecords(t, js, followerRecords, 2*time.Minute, "with "+follower.Name()+" down")
	s.duringFollower, s.followerWrites = followerRecords, time.Since(killed)
	s.outLeaderAfter = c.WaitStreamLeader(js, outputStream, follower, 2*time.Minute).Name()
	s.outTakeover = time.Since(killed)
	// The router stores events again through the new output leader.
	waitStored(t, js, outputStream, 10, 2*time.Minute, "output after its leader's kill")
	s.outStored = time.Since(killed)
	if leader2 := c.WaitStreamLeader(js, rawStream, nil, time.Minute); leader2 != leader {
		t.Logf("raw stream leader moved from %s to %s while %s was down", leader.Name(), leader2.Name(), follower.Name())
		leader = leader2
		s.leader = leader.Name()
	}

	// The leader down as well: one node left, no quorum.
	last := lastSeq(t, js, rawStream)
	s.mark(t, js, "kill of the raw leader")
	leader.Kill()
	killed = time.Now()
	alive(t, e.col, "collector after quorum loss")
	alive(t, e.rt, "router after quorum loss")

	// The follower back: two nodes, a new leader, records stored again.
	follower.Restart()
	s.newLeader = c.WaitStreamLeader(js, rawStream, leader, 2*time.Minute).Name()
	waitSeqPast(t, js, rawStream, last, 2*time.Minute, "after "+follower.Name()+"'s restart")
	s.takeover = time.Since(killed)

	// The old leader back: it catches up.
	leader.Restart()
	c.WaitStreamCurrent(js, rawStream, 2*time.Minute)
	c.WaitStreamCurrent(js, outputStream, 2*time.Minute)
	c.WaitHealthy(2 * time.Minute)
	s.recovery = time.Since(killed)
	s.mark(t, js, "after recovery")
	return s
}

// waitRecords waits until the raw stream holds n more records than now.
func waitRecords(t *testing.T, js jetstream.JetStream, n int, timeout time.Duration, what string) {
	t.Helper()
	waitStored(t, js, rawStream, n, timeout, what)
}

// waitStored waits until stream holds n more messages than now.
func waitStored(t *testing.T, js jetstream.JetStream, stream string, n int, timeout time.Duration, what string) {
	t.Helper()
	from := lastSeq(t, js, stream)
	waitSeqPast(t, js, stream, from+uint64(n)-1, timeout, what)
}

// waitSeqPast waits until stream's last sequence is above seq.
func waitSeqPast(t *testing.T, js jetstream.JetStream, stream string, seq uint64, timeout time.Duration, what string) {
	t.Helper()
	var last uint64
	if !eventually(timeout, func() bool {
		last = tryLastSeq(js, stream)
		return last > seq
	}) {
		t.Fatalf("%s: stream %s did not get past sequence %d within %s (at %d)", what, stream, seq, timeout, last)
	}
}

// lastSeq is the stream's last sequence, waiting for a leader to answer.
func lastSeq(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	var last uint64
	if !eventually(2*time.Minute, func() bool {
		last = tryLastSeq(js, stream)
		return last > 0
	}) {
		t.Fatalf("stream %s: no answer within 2m", stream)
	}
	return last
}

// tryLastSeq is the stream's last sequence, 0 when it does not answer.
func tryLastSeq(js jetstream.JetStream, stream string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

// streamInfo waits until stream exists and answers.
func streamInfo(t *testing.T, c *harness.Cluster, js jetstream.JetStream, stream string, timeout time.Duration) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	var err error
	if !eventually(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		info, err = c.StreamInfo(ctx, js, stream)
		return err == nil
	}) {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info
}

func nodeNames(c *harness.Cluster) string {
	var names []string
	for _, n := range c.Nodes {
		names = append(names, fmt.Sprintf("%s (%s, %s)", n.Name(), n.Config(), n.URL()))
	}
	return strings.Join(names, ", ")
}

// outOfOrderProblems are the report's out-of-order descriptions.
func outOfOrderProblems(problems []string) string {
	var out []string
	for _, p := range problems {
		if strings.HasPrefix(p, "out of order") {
			out = append(out, "  - "+p)
			if len(out) == 10 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

var atSeq = regexp.MustCompile(` at seq (\d+)`)

// attribute counts the out-of-order events of problems by the step of a
// round during which they were stored: the last one that began before
// their output sequence.
func attribute(problems []string, stats []roundStats) string {
	var phases []phase
	for i, s := range stats {
		for _, p := range s.phases {
			phases = append(phases, phase{fmt.Sprintf("round %d, %s", i+1, p.name), p.seq})
		}
	}
	counts := map[string]int{}
	var order []string
	for _, p := range problems {
		m := atSeq.FindStringSubmatch(p)
		if !strings.HasPrefix(p, "out of order") || m == nil {
			continue
		}
		seq, _ := strconv.ParseUint(m[1], 10, 64)
		name := "before the first round"
		for _, ph := range phases {
			if ph.seq < seq {
				name = ph.name
			}
		}
		if counts[name] == 0 {
			order = append(order, name)
		}
		counts[name]++
	}
	var out []string
	for _, n := range order {
		out = append(out, fmt.Sprintf("%s: %d", n, counts[n]))
	}
	return strings.Join(out, "; ")
}
