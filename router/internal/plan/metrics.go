package plan

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a router's Prometheus metrics and its readiness. The
// relays' own running totals are read at each scrape (the progress log
// reads the same), not copied into counters of their own. A nil *Metrics
// (--metrics not given) does nothing and costs nothing.
type Metrics struct {
	publish      *prometheus.HistogramVec
	replayDone   *prometheus.GaugeVec
	replayTarget *prometheus.GaugeVec

	mu     sync.Mutex
	routes []metricRoute
	conns  []*nats.Conn
}

type metricRoute struct {
	id string
	r  *relay.Relay
}

// NewMetrics registers a router's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgjet_router_publish_seconds",
			Help:    "Time from publishing a raw record's first event to the output stream's ack of its last one (republishes included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms to 8 s
		}, []string{"route"}),
		replayDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgjet_router_replay_records_done",
			Help: "Raw records of its range a running replay has handled.",
		}, []string{"route"}),
		replayTarget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgjet_router_replay_records_target",
			Help: "Raw records in the range of a running replay.",
		}, []string{"route"}),
	}
	reg.MustRegister(m.publish, m.replayDone, m.replayTarget, (*routeCollector)(m))
	return m
}

// latency is route id's publish latency histogram, nil without metrics.
func (m *Metrics) latency(id string) relay.Observer {
	if m == nil {
		return nil
	}
	return m.publish.WithLabelValues(id)
}

func (m *Metrics) addRoute(id string, r *relay.Relay) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routes = append(m.routes, metricRoute{id, r})
}

func (m *Metrics) addConn(nc *nats.Conn) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conns = append(m.conns, nc)
}

func (m *Metrics) replayProgress(id string, done, total uint64) {
	if m == nil {
		return
	}
	m.replayDone.WithLabelValues(id).Set(float64(done))
	m.replayTarget.WithLabelValues(id).Set(float64(total))
}

// Ready is /readyz: every connection up and every route's relay set up
// and consuming.
func (m *Metrics) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.routes) == 0 {
		return errors.New("connecting to NATS")
	}
	for _, nc := range m.conns {
		if !nc.IsConnected() {
			return fmt.Errorf("NATS connection %s", nc.Status())
		}
	}
	for _, rt := range m.routes {
		if err := rt.r.Ready(); err != nil {
			return fmt.Errorf("route %s: %w", rt.id, err)
		}
	}
	return nil
}

// routeCollector reads the relays' totals at each scrape.
type routeCollector Metrics

var (
	descEvents    = prometheus.NewDesc("pgjet_router_events_total", "Messages stored in the output stream (or printed), by route and op: the change operations, begin, commit, relation, tombstone, and group (a part of a transaction group).", []string{"route", "op"}, nil)
	descRaw       = prometheus.NewDesc("pgjet_router_raw_records_total", "Raw records handled and acknowledged.", []string{"route"}, nil)
	descDead      = prometheus.NewDesc("pgjet_router_dead_letters_total", "Events sent to the route's dead-letter subject instead of its output.", []string{"route"}, nil)
	descDups      = prometheus.NewDesc("pgjet_router_duplicates_total", "Publishes the output stream reported as duplicates (republishes and redeliveries it deduplicated).", []string{"route"}, nil)
	descRetries   = prometheus.NewDesc("pgjet_router_republishes_total", "Rounds of republishing after a failed publish.", []string{"route"}, nil)
	descPending   = prometheus.NewDesc("pgjet_router_consumer_pending", "Raw records left for the route's consumer, as of the last one delivered.", []string{"route"}, nil)
	descBack      = prometheus.NewDesc("pgjet_router_backwards_total", "Transaction fragments of raw records not published because they lay at or before what the route had relayed of their source (a copy of an old record published again).", []string{"route"}, nil)
	descGap       = prometheus.NewDesc("pgjet_router_raw_gap_records_total", "Missing raw records (deleted, expired) the route went past, as --accept-gap said.", []string{"route"}, nil)
	descRawDead   = prometheus.NewDesc("pgjet_router_raw_dead_letters_total", "Undecodable raw records the route sent with their bytes to its dead-letter subject, as --dead-letter-raw said.", []string{"route"}, nil)
	descAbandoned = prometheus.NewDesc("pgjet_router_abandoned_reads_total", "Snapshot reads a stopped collector left stored in part, in pieces, that the route dropped; their rows come again from the backfill that goes on with the snapshot.", []string{"route"}, nil)
)

func (c *routeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descRaw, descDead, descDups, descRetries, descPending, descBack, descGap, descRawDead, descAbandoned} {
		ch <- d
	}
}

func (c *routeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	routes := c.routes
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, rt := range routes {
		for k, n := range rt.r.EventCounts() {
			counter(descEvents, n, rt.id, relay.EventOps[k])
		}
		st := rt.r.Stats()
		counter(descRaw, st.RawRecords, rt.id)
		counter(descDead, st.DeadLetters, rt.id)
		counter(descDups, st.Duplicates, rt.id)
		counter(descRetries, st.Republishes, rt.id)
		counter(descBack, st.Backwards, rt.id)
		counter(descGap, st.GapRecords, rt.id)
		counter(descRawDead, st.RawDeadLetters, rt.id)
		counter(descAbandoned, st.AbandonedReads, rt.id)
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(rt.r.Pending()), rt.id)
	}
}
