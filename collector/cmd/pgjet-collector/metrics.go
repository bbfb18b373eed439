package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/collector/internal/lag"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/collector/internal/stall"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// probe is what the collector's metrics, readiness and progress log read:
// the process's totals, and the figures of the current replication
// session, which the sessions hand over as they come and go.
type probe struct {
	totals rawstream.Totals
	ready  *metrics.Readiness
	nc     atomic.Pointer[nats.Conn]
	pub    atomic.Pointer[rawstream.Publisher]
	stream atomic.Pointer[replication.Stream]
	// pgReconnects counts replication sessions started again after one
	// ended (Postgres restarted, the network failed).
	pgReconnects atomic.Uint64
	// slotLag is the slot's lag behind the WAL in bytes, as of the last
	// poll; NaN when that poll failed.
	slotLag atomic.Uint64 // math.Float64bits
	// publishLatency is nil while metrics are off: then nothing is timed.
	publishLatency prometheus.Histogram
	// Failovers that left stored records the new primary never had, and
	// the WAL span of those records.
	phantomRanges, phantomBytes atomic.Uint64
	// stalled is why the replication session stands still although the
	// server has WAL for it ("" while it does not).
	stalled atomic.Pointer[string]
}

func newProbe() *probe {
	p := &probe{ready: metrics.NewReadiness("connecting to NATS")}
	p.slotLag.Store(math.Float64bits(math.NaN()))
	return p
}

// Streaming: a session reads the slot with pub and stream.
func (p *probe) Streaming(pub *rawstream.Publisher, stream *replication.Stream) {
	p.pub.Store(pub)
	p.stream.Store(stream)
	p.ready.Ready()
}

// NATS: the sessions use nc.
func (p *probe) NATS(nc *nats.Conn) { p.nc.Store(nc) }

// NotReady: why the collector is not streaming.
func (p *probe) NotReady(reason string) { p.ready.NotReady(reason) }

// Reconnected: a session starts again after one ended.
func (p *probe) Reconnected() { p.pgReconnects.Add(1) }

// Phantoms: a failover left stored records the new primary never had.
func (p *probe) Phantoms(ph *resume.Phantoms) {
	p.phantomRanges.Add(1)
	p.phantomBytes.Add(ph.Last - ph.Fork)
}

// check is /readyz: a session streams (and moves when it has WAL to read)
// and NATS is connected.
func (p *probe) check() error {
	if err := p.ready.Check(); err != nil {
		return err
	}
	if why := p.stalled.Load(); why != nil && *why != "" {
		return errors.New(*why)
	}
	if nc := p.nc.Load(); nc != nil && !nc.IsConnected() {
		return fmt.Errorf("NATS connection %s", nc.Status())
	}
	return nil
}

// serveMetrics starts the --metrics endpoint.
func serveMetrics(addr string, p *probe) (*metrics.Server, error) {
	reg := metrics.NewRegistry()
	p.publishLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgjet_collector_raw_publish_seconds",
		Help:    "Time from a raw message's first publish attempt to its acknowledgement by JetStream (retries included).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms to 8 s
	})
	reg.MustRegister(p.publishLatency, &probeCollector{p})
	srv, err := metrics.Start(addr, reg, p.check)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return srv, nil
}

// pollSlotLag measures the slot's lag on a connection of its own (not the
// replication connection, whose reads must not wait on it) every interval
// until ctx ends, and watches the session for a stall: /readyz says when
// it stands still while the server has WAL for it.
func (p *probe) pollSlotLag(ctx context.Context, dsn, slot string, every time.Duration, log *slog.Logger) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	detector := stall.Detector{After: stallAfter}
	poll := func() error {
		qctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		if conn == nil {
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				return err
			}
			cfg.RuntimeParams["application_name"] = "pgjet-collector metrics"
			if conn, err = pgx.ConnectConfig(qctx, cfg); err != nil {
				conn = nil
				return session.ConnError(err)
			}
		}
		var lagBytes float64
		var wal, sent uint64
		// sent_lsn is the walsender's (only its own role's row is visible
		// to a role without pg_read_all_stats: the collector's is).
		err := conn.QueryRow(qctx, `SELECT (pg_current_wal_lsn() - s.confirmed_flush_lsn)::float8,
				(pg_current_wal_lsn() - '0/0')::numeric::int8, coalesce((r.sent_lsn - '0/0')::numeric::int8, 0)
			FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1`, slot).Scan(&lagBytes, &wal, &sent)
		if err != nil {
			if !errors.Is(err, pgx.ErrNoRows) {
				conn.Close(context.Background())
				conn = nil
			}
			return err
		}
		p.slotLag.Store(math.Float64bits(lagBytes))
		p.watchStall(&detector, wal, sent, log)
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := poll(); err != nil && ctx.Err() == nil {
			p.slotLag.Store(math.Float64bits(math.NaN()))
			log.Debug("slot lag for metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stallAfter is how long a session may stand still while the server has
// WAL for it before /readyz says so: far beyond a status interval (10 s),
// far below what an operator would sit through unwarned.
const stallAfter = 20 * time.Second

// watchStall feeds the detector a sample of the current session and the
// server's positions, and reports a stall's start and end.
func (p *probe) watchStall(d *stall.Detector, wal, sent uint64, log *slog.Logger) {
	st, pub := p.stream.Load(), p.pub.Load()
	if st == nil || pub == nil || p.ready.Check() != nil {
		// No session streams: readiness says why already.
		*d = stall.Detector{After: d.After}
		p.setStalled("", log)
		return
	}
	why := d.Observe(stall.Sample{At: time.Now(), Received: st.Received(), Confirmed: pub.Confirmed(), Sent: sent, WAL: wal, InFlight: pub.InFlightBytes() > 0})
	p.setStalled(why, log)
}

func (p *probe) setStalled(why string, log *slog.Logger) {
	was := p.stalled.Swap(&why)
	switch {
	case why != "" && (was == nil || *was == ""):
		log.Warn(why)
	case why == "" && was != nil && *was != "":
		log.Info("replication moves again")
	}
}

// probeCollector exposes the probe's figures, read at each scrape: the
// counters are the ones the progress log reads, not copies of them.
type probeCollector struct{ p *probe }

var (
	descChanges      = prometheus.NewDesc("pgjet_collector_changes_total", "Changes stored in the raw stream (acknowledged by JetStream).", nil, nil)
	descTransactions = prometheus.NewDesc("pgjet_collector_transactions_total", "Transactions stored whole in the raw stream.", nil, nil)
	descMessages     = prometheus.NewDesc("pgjet_collector_raw_messages_total", "Raw messages stored in the raw stream.", nil, nil)
	descReceived     = prometheus.NewDesc("pgjet_collector_received_lsn", "WAL position received from Postgres, as a byte position.", nil, nil)
	descConfirmed    = prometheus.NewDesc("pgjet_collector_confirmed_lsn", "WAL position confirmed to Postgres (everything before it is stored), as a byte position.", nil, nil)
	descInFlight     = prometheus.NewDesc("pgjet_collector_inflight_bytes", "Bytes of decoded changes read and not yet acknowledged by JetStream.", nil, nil)
	descSlotLag      = prometheus.NewDesc("pgjet_collector_slot_lag_bytes", "WAL bytes Postgres keeps for the slot: pg_current_wal_lsn() - confirmed_flush_lsn, polled every 2 s; absent while it cannot be read.", nil, nil)
	descReconnects   = prometheus.NewDesc("pgjet_collector_reconnects_total", "Connections established again: cause postgres, a new replication session after one ended; nats, the NATS client's reconnects.", []string{"cause"}, nil)
	descReadLag      = prometheus.NewDesc("pgjet_collector_read_lag_seconds", "Time from a transaction's commit (Postgres's clock) to its decoding by the collector.", nil, nil)
	descStoredLag    = prometheus.NewDesc("pgjet_collector_stored_lag_seconds", "Time from a transaction's commit (Postgres's clock) to its acknowledgement by JetStream.", nil, nil)
	descPhantoms     = prometheus.NewDesc("pgjet_collector_phantom_ranges_total", "Failovers after which the raw stream held records the new primary never had (phantoms); each is logged at ERROR and published as a pgjet.notice.phantoms notice.", nil, nil)
	descPhantomBytes = prometheus.NewDesc("pgjet_collector_phantom_wal_bytes_total", "WAL span of the phantom ranges: from the timeline's fork to the last phantom commit.", nil, nil)
)

// lagBuckets are edges of lag.Histogram's buckets.
var lagBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60}

func (c *probeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChanges, descTransactions, descMessages, descReceived, descConfirmed, descInFlight, descSlotLag, descReconnects, descReadLag, descStoredLag, descPhantoms, descPhantomBytes} {
		ch <- d
	}
}

func (c *probeCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descChanges, p.totals.Changes.Load())
	counter(descTransactions, p.totals.Transactions.Load())
	counter(descMessages, p.totals.Messages.Load())
	counter(descReconnects, p.pgReconnects.Load(), "postgres")
	counter(descPhantoms, p.phantomRanges.Load())
	counter(descPhantomBytes, p.phantomBytes.Load())
	var natsReconnects uint64
	if nc := p.nc.Load(); nc != nil {
		natsReconnects = nc.Stats().Reconnects
	}
	counter(descReconnects, natsReconnects, "nats")
	if s := p.stream.Load(); s != nil {
		gauge(descReceived, float64(s.Received()))
	}
	if pub := p.pub.Load(); pub != nil {
		gauge(descConfirmed, float64(pub.Confirmed()))
		gauge(descInFlight, float64(pub.InFlightBytes()))
	}
	if v := math.Float64frombits(p.slotLag.Load()); !math.IsNaN(v) {
		gauge(descSlotLag, v)
	}
	for _, h := range []struct {
		d *prometheus.Desc
		h *lag.Histogram
	}{{descReadLag, &p.totals.ReadLag}, {descStoredLag, &p.totals.StoredLag}} {
		s := h.h.Snapshot()
		ch <- prometheus.MustNewConstHistogram(h.d, s.Count(), s.Sum(), s.Cumulative(lagBuckets))
	}
}

// observer is the publish latency histogram, or nil (not a nil
// prometheus.Histogram in an interface) while metrics are off.
func (p *probe) observer() rawstream.Observer {
	if p.publishLatency == nil {
		return nil
	}
	return p.publishLatency
}
