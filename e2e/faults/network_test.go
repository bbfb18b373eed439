package faults

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// proxy is an in-process TCP proxy (toxiproxy) between a process and a
// server, so a test can cut, slow down or break its connections.
type proxy struct {
	t *testing.T
	p *toxiproxy.Proxy
	n int
}

func newProxy(t *testing.T, name, upstream string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("proxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &proxy{t: t, p: p}
}

// Addr is where clients connect.
func (p *proxy) Addr() string { return p.p.Listen }

func (p *proxy) Port() string {
	_, port, _ := net.SplitHostPort(p.p.Listen)
	return port
}

// Cut closes every connection through the proxy and refuses new ones for
// down, then accepts again.
func (p *proxy) Cut(down time.Duration) {
	p.t.Helper()
	p.p.Stop()
	time.Sleep(down)
	if err := p.p.Start(); err != nil {
		p.t.Fatalf("proxy %s: restart: %v", p.p.Name, err)
	}
}

// toxic adds a toxic in one direction ("upstream": client to server,
// "downstream": server to client) and returns its removal.
func (p *proxy) toxic(kind, stream, attrs string) func() {
	p.t.Helper()
	p.n++
	name := fmt.Sprintf("%s_%s_%d", kind, stream, p.n)
	js := fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "attributes": %s}`, name, kind, stream, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		p.t.Fatalf("proxy %s: add toxic %s: %v", p.p.Name, js, err)
	}
	return func() {
		if err := p.p.Toxics.RemoveToxic(p.t.Context(), name); err != nil {
			p.t.Errorf("proxy %s: remove toxic %s: %v", p.p.Name, name, err)
		}
	}
}

// Latency delays every chunk in both directions by d until the returned
// function is called.
func (p *proxy) Latency(d time.Duration) func() {
	attrs := fmt.Sprintf(`{"latency": %d, "jitter": %d}`, d.Milliseconds(), d.Milliseconds()/4)
	up := p.toxic("latency", "upstream", attrs)
	down := p.toxic("latency", "downstream", attrs)
	return func() { up(); down() }
}

// BreakAfter lets every connection (the current ones and new ones) pass
// about n more bytes in each direction and then closes it, in the middle of
// whatever message is on the wire, until the returned function is called.
func (p *proxy) BreakAfter(n int) func() {
	attrs := fmt.Sprintf(`{"bytes": %d}`, n)
	up := p.toxic("limit_data", "upstream", attrs)
	down := p.toxic("limit_data", "downstream", attrs)
	return func() { up(); down() }
}

// Invariant: network faults between the collector and Postgres, between the
// collector and NATS, and between the router and NATS (all connections cut,
// 200 ms latency each way, connections broken in the middle of a message)
// lose and double nothing; the processes recover by themselves (a collector
// that exits on a broken Postgres connection is restarted, as a supervisor
// would, and the test says so).
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	for _, link := range []string{"collector-postgres", "collector-nats", "router-nats"} {
		t.Run(link, func(t *testing.T) {
			e := workEnv(t)
			rng := newRand(t, "test")
			var px *proxy
			switch link {
			case "collector-postgres":
				px = newProxy(t, link, fmt.Sprintf("127.0.0.1:%d", e.pg.Port))
				e.colDSN = strings.Replace(e.colDSN, fmt.Sprintf(":%d/", e.pg.Port), ":"+px.Port()+"/", 1)
			case "collector-nats":
				px = newProxy(t, link, fmt.Sprintf("127.0.0.1:%d", e.nats.Port()))
				e.colNATS = "nats://" + px.Addr()
			case "router-nats":
				px = newProxy(t, link, fmt.Sprintf("127.0.0.1:%d", e.nats.Port()))
				e.rtNATS = "nats://" + px.Addr()
			}
			e.collector()
			e.router()
			hold := pick(2*time.Second, 8*time.Second)
			// breaks counts the connection losses the affected process saw.
			breaks := func() int {
				switch link {
				case "collector-postgres":
					return strings.Count(e.col.Log(), "session ended") + boolInt(e.col.Exited())
				case "collector-nats":
					return strings.Count(e.col.Log(), "nats disconnected")
				default:
					return strings.Count(e.rt.Log(), "nats disconnected")
				}
			}
			for _, fault := range []struct {
				name   string
				breaks bool // the fault must break a connection
				inject func()
			}{
				{"cut", true, func() {
					for range pick(1, 5) {
						time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
						px.Cut(time.Duration(rng.IntN(1000)) * time.Millisecond)
					}
				}},
				{"latency 200ms", false, func() {
					undo := px.Latency(200 * time.Millisecond)
					time.Sleep(hold)
					undo()
				}},
				{"reset mid-message", true, func() {
					for range pick(1, 5) {
						time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
						// Until a connection broke (or 10 s): reconnects
						// within that time break too.
						n := breaks()
						undo := px.BreakAfter(1000 + rng.IntN(60000))
						eventually(10*time.Second, func() bool { return breaks() > n })
						undo()
					}
				}},
			} {
				w := e.startWorkload(defaultWorkload())
				time.Sleep(time.Second)
				w.bigNow()
				before := breaks()
				fault.inject()
				time.Sleep(2 * time.Second)
				w.Stop()
				broke := breaks() - before
				if fault.breaks && broke == 0 {
					t.Errorf("%s on %s broke no connection: the fault was not injected", fault.name, link)
				}
				if link == "collector-postgres" {
					t.Logf("collector after %s on %s: %s", fault.name, link, e.collectorRecovered(link+" "+fault.name))
				}
				alive(t, e.col, "collector")
				alive(t, e.rt, "router")
				e.verify(fmt.Sprintf("%s: %s", link, fault.name))
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// collectorRecovered restarts the collector if it exited (as a supervisor
// would) and says what happened.
func (e *env) collectorRecovered(what string) string {
	e.t.Helper()
	p := e.col
	if !p.Exited() {
		return fmt.Sprintf("running (%s)", plural(strings.Count(p.Log(), "msg=streaming"), "session"))
	}
	err := p.Wait()
	e.t.Logf("%s: the collector exited (%v); restarting it, as a supervisor would. Its last lines:\n%s", what, err, tail(p.Log(), 5))
	e.collector()
	return fmt.Sprintf("exited (%v) and was restarted", err)
}
