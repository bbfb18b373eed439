package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// hubRawConfig is the documented config of the hub's stream sourcing edge1's
// raw stream (deploy/nats/hub.conf).
const hubRawConfig = "deploy/nats/hub-raw-edge1.json"

// Invariant (design guarantees 1 to 3 at the edge): the collector's embedded
// server is a leaf node of a hub running deploy/nats/hub.conf, in JetStream
// domain edge1; the hub sources the edge's raw stream into PGJET_RAW_EDGE1
// (deploy/nats/hub-raw-edge1.json) and a router reads that copy and publishes
// to an output stream on the hub. While the leaf link is cut (the hub
// stopped: 5 s in `make test`, 60 s with PGJET_FAULTS=full) and Postgres
// keeps committing, the edge goes on storing raw records and confirming the
// slot from its own store (pg_replication_slots.confirmed_flush_lsn advances
// during the cut: the edge needs no hub to release WAL). After the link
// returns the hub catches up, and every committed change reaches the output
// exactly once and in order; the hub's copy holds each change once, in commit
// order, and exactly the edge's records.
func TestEdgeLeafLinkCut(t *testing.T) {
	t.Parallel()
	began := time.Now()
	cut := pick(5*time.Second, 60*time.Second)
	hub := harness.StartHub(t)
	e := workEnvWith(t, envConfig{nats: hub.NATS})
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	edgeURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	e.colNATS = ""
	e.colFlags = append(e.colFlags, "--embedded", t.TempDir(), "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--embedded-domain", "edge1", "--embedded-leaf", hub.LeafURL())
	e.collector()

	// The hub's stream, exactly as documented.
	hubRaw := hubStreamConfig(t)
	e.rawStream = hubRaw.Name
	_, hjs := hub.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := hjs.CreateStream(ctx, hubRaw); err != nil {
		t.Fatalf("create %s on the hub: %v", hubRaw.Name, err)
	}
	e.startRouter([]string{"--raw-stream", hubRaw.Name})
	enc, err := nats.Connect(edgeURL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ejs, _ := jetstream.New(enc)

	wl := defaultWorkload()
	wl.pause = pick(50*time.Millisecond, wl.pause)
	wl.bigRows = pick(1000, 10000)
	w := e.startWorkload(wl)
	// Through the link: the hub sources raw records, the router relays them.
	waitStored(t, hjs, hubRaw.Name, 10, 2*time.Minute, "hub sourcing the edge's raw stream")
	waitStored(t, hjs, outputStream, 10, 2*time.Minute, "router output on the hub")
	t.Logf("edge streaming, hub sourcing, router relaying in %s", time.Since(began).Round(100*time.Millisecond))

	// The cut: the hub stops, the edge goes on.
	lsn0, edge0 := e.confirmedLSN(), lastSeq(t, ejs, rawStream)
	hub0 := lastSeq(t, hjs, hubRaw.Name)
	if err := hub.Stop(); err != nil {
		t.Logf("stopping the hub: %v", err)
	}
	cutAt := time.Now()
	advances, last := 0, lsn0
	for time.Since(cutAt) < cut {
		time.Sleep(500 * time.Millisecond)
		if l := e.confirmedLSN(); l > last {
			advances, last = advances+1, l
		}
		alive(t, e.col, "collector during the cut")
	}
	lsn1, edge1 := e.confirmedLSN(), lastSeq(t, ejs, rawStream)
	t.Logf("link cut for %s: slot confirmed %d times, %d bytes of WAL further (%X -> %X); edge stored raw records %d-%d (%d) on its own",
		time.Since(cutAt).Round(100*time.Millisecond), advances, lsn1-lsn0, lsn0, lsn1, edge0+1, edge1, edge1-edge0)
	if lsn1 <= lsn0 || edge1 <= edge0 {
		t.Fatalf("during the cut the edge did not go on: slot confirmed %X -> %X, edge raw stream %d -> %d", lsn0, lsn1, edge0, edge1)
	}

	// The link back: the hub catches up with what the edge stored.
	hub.Restart()
	backAt := time.Now()
	target := lastSeq(t, ejs, rawStream)
	if !eventually(time.Minute, func() bool { return leafNodes(hub) > 0 }) {
		t.Fatalf("the edge did not join the restarted hub as a leaf node")
	}
	linkUp := time.Since(backAt)
	waitSeqPast(t, hjs, hubRaw.Name, target-1, 5*time.Minute, "hub catching up after the link returned")
	catchUp := time.Since(backAt)
	// The hub resumes sourcing on its own schedule: nats-server retries a
	// source whose consumer could not be created (the link was not up yet)
	// with a backoff of 10 s, 20 s, ... up to 2 min.
	t.Logf("link up %s after the hub's restart, hub caught up with edge record %d after %s", linkUp.Round(10*time.Millisecond), target, catchUp.Round(10*time.Millisecond))
	waitStored(t, hjs, outputStream, 10, 2*time.Minute, "router output after the link returned")
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	w.Stop()

	// Everything the edge stored reaches the hub, once.
	var edgeN, hubN uint64
	if !eventually(2*time.Minute, func() bool {
		edgeN, hubN = msgs(ejs, rawStream), msgs(hjs, hubRaw.Name)
		return e.confirmedLSN() > 0 && edgeN > 0 && edgeN == hubN && lastSeq(t, ejs, rawStream) == edgeN
	}) {
		t.Errorf("the hub's copy holds %d raw records, the edge %d", hubN, edgeN)
	}
	r := e.verify(fmt.Sprintf("edge leaf link cut for %s", cut))
	t.Logf("EDGE cut %s: slot confirmed %d times during the cut (+%d bytes of WAL), edge stored %d raw records alone, hub at %d before the cut, link up after %s, caught up with edge record %d %s after the hub's restart; committed=%d delivered=%d lost=%d duplicated=%d; raw records edge=%d hub=%d; in %s",
		cut, advances, lsn1-lsn0, edge1-edge0, hub0, linkUp.Round(10*time.Millisecond), target, catchUp.Round(10*time.Millisecond),
		r.Committed, r.Delivered, r.Lost, r.Duplicated, edgeN, hubN, time.Since(began).Round(time.Second))
}

// hubStreamConfig reads the documented hub stream config; unknown fields fail.
func hubStreamConfig(t *testing.T) jetstream.StreamConfig {
	t.Helper()
	b, err := os.ReadFile(harness.RepoFile(t, hubRawConfig))
	if err != nil {
		t.Fatal(err)
	}
	var cfg jetstream.StreamConfig
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&cfg); err != nil {
		t.Fatalf("%s: %v", hubRawConfig, err)
	}
	if len(cfg.Subjects) != 0 || len(cfg.Sources) != 1 || cfg.Sources[0].External == nil || cfg.Sources[0].SubjectTransforms != nil {
		t.Fatalf("%s: want no subjects and one source from another domain, without subject transforms: %+v", hubRawConfig, cfg)
	}
	return cfg
}

// leafNodes is the number of leaf nodes connected to the hub (its /leafz), 0
// when it does not answer.
func leafNodes(hub *harness.Hub) int {
	url := hub.MonitorURL()
	if url == "" {
		return 0
	}
	resp, err := http.Get(url + "/leafz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var lz struct {
		Leafs int `json:"leafnodes"`
	}
	if json.NewDecoder(resp.Body).Decode(&lz) != nil {
		return 0
	}
	return lz.Leafs
}

// confirmedLSN is the slot's confirmed_flush_lsn.
func (e *env) confirmedLSN() uint64 {
	e.t.Helper()
	return uint64(e.queryInt(`SELECT coalesce((confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, 0) FROM pg_replication_slots WHERE slot_name = $1`, e.slot))
}

// msgs is the number of messages in stream, 0 when it does not answer.
func msgs(js jetstream.JetStream, stream string) uint64 {
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
	return info.State.Msgs
}
