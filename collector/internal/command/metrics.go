package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/collector/internal/heartbeat"
	"github.com/pgjet/pgjet/collector/internal/lag"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/replication"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/collector/internal/stall"
	"github.com/pgjet/pgjet/shared/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// probe is what the collector's metrics, readiness and progress log read:
// the process's totals, and the figures of the current replication
// session, which the sessions hand over as they come and go.
type probe struct {
	totals rawstream.Totals
	// snapshots are the initial snapshot's and backfills' figures.
	snapshots snapshot.Stats
	ready     *metrics.Readiness
	nc        atomic.Pointer[nats.Conn]
	pub       atomic.Pointer[rawstream.Publisher]
	reader    atomic.Pointer[replication.Reader]
	// pgReconnects counts replication sessions started again after one
	// ended (Postgres restarted, the network failed).
	pgReconnects atomic.Uint64
	// slotLag is the slot's lag behind the WAL in bytes, as of the last
	// poll; NaN when that poll failed.
	slotLag atomic.Uint64 // math.Float64bits
	// heartbeats counts the heartbeats written and failed.
	heartbeats heartbeat.Stats
	// publishLatency is nil while metrics are off: then nothing is timed.
	publishLatency prometheus.Histogram
	// Failovers that left stored records the new primary never had, and
	// the WAL span of those records.
	phantomRanges, phantomBytes atomic.Uint64
	// stalled is why the replication session stands still although the
	// server has WAL for it ("" while it does not).
	stalled atomic.Pointer[string]

	// gaps are the gaps accepted by re-creating the slot; invalid is the
	// invalidation found, while the slot is not created again.
	mu      sync.Mutex
	gaps    map[string]gapCount // by Gap.Reason
	invalid *invalidation
}

type gapCount struct{ gaps, bytes uint64 }

type invalidation struct {
	reason string
	from   uint64
}

// SlotInvalidated: the slot was found invalidated.
func (p *probe) SlotInvalidated(reason string, from uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.invalid = &invalidation{reason: reason, from: from}
}

// Gap: the slot was created again, accepting g.
func (p *probe) Gap(g session.Gap) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gaps == nil {
		p.gaps = map[string]gapCount{}
	}
	c := p.gaps[g.Reason]
	c.gaps++
	c.bytes += g.Bytes()
	p.gaps[g.Reason] = c
	p.invalid = nil
}

func newProbe() *probe {
	// The reason pgjet itself names is there from the start, at 0: the
	// counters are always exported, and a rate over them sees the first
	// gap (Postgres's invalidation reasons appear with theirs).
	p := &probe{ready: metrics.NewReadiness("connecting to NATS"), gaps: map[string]gapCount{session.GapDropped: {}}}
	p.slotLag.Store(math.Float64bits(math.NaN()))
	return p
}

// Streaming: a session reads the slot with reader and stores with pub.
func (p *probe) Streaming(pub *rawstream.Publisher, reader *replication.Reader) {
	p.pub.Store(pub)
	p.reader.Store(reader)
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

// check is /readyz: a session streams (and moves when it has WAL to read),
// NATS is connected and the raw stream stores what is published.
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
	if pub := p.pub.Load(); pub != nil {
		if since, err := pub.Failing(); err != nil {
			return fmt.Errorf("raw publishes failing for %s, nothing is stored and the slot does not move: %w", time.Since(since).Round(time.Second), err)
		}
	}
	return nil
}

// serveMetrics starts the --metrics endpoint.
func serveMetrics(addr string, p *probe) (*metrics.Server, error) {
	srv, err := metrics.Start(addr, p.registry(), p.check)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return srv, nil
}

// registry is what /metrics serves: the process's standard metrics, the
// probe's figures and the publish latency histogram, which it creates
// (metrics on: publishes are timed from then on).
func (p *probe) registry() *prometheus.Registry {
	reg := metrics.NewRegistry()
	p.publishLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgjet_collector_raw_publish_seconds",
		Help:    "Time from a raw message's first publish attempt to its acknowledgement by JetStream (retries included).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms to 8 s
	})
	reg.MustRegister(p.publishLatency, &probeCollector{p})
	return reg
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
		err := conn.QueryRow(qctx, `SELECT (w.lsn - s.confirmed_flush_lsn)::float8,
				(w.lsn - '0/0')::numeric::int8, coalesce((r.sent_lsn - '0/0')::numeric::int8, 0)
			FROM pg_replication_slots s
			CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w
			LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
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
	st, pub := p.reader.Load(), p.pub.Load()
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
	descConfirmAge   = prometheus.NewDesc("pgjet_collector_confirmation_age_seconds", "How long changes read from Postgres have waited for JetStream's acknowledgement with the confirmed position standing still; 0 when nothing waits.", nil, nil)
	descInFlight     = prometheus.NewDesc("pgjet_collector_inflight_bytes", "Bytes of decoded changes read and not yet acknowledged by JetStream.", nil, nil)
	descSlotLag      = prometheus.NewDesc("pgjet_collector_slot_lag_bytes", "WAL bytes Postgres keeps for the slot: pg_current_wal_lsn() (on a standby pg_last_wal_replay_lsn()) - confirmed_flush_lsn, polled every 2 s; absent while it cannot be read.", nil, nil)
	descReconnects   = prometheus.NewDesc("pgjet_collector_reconnects_total", "Connections established again: cause postgres, a new replication session after one ended; nats, the NATS client's reconnects.", []string{"cause"}, nil)
	descReadLag      = prometheus.NewDesc("pgjet_collector_read_lag_seconds", "Time from a transaction's commit (Postgres's clock) to its decoding by the collector.", nil, nil)
	descStoredLag    = prometheus.NewDesc("pgjet_collector_stored_lag_seconds", "Time from a transaction's commit (Postgres's clock) to its acknowledgement by JetStream.", nil, nil)
	descSnapRows     = prometheus.NewDesc("pgjet_collector_snapshot_rows_total", "Rows read by snapshots and stored in the raw stream: kind initial (the initial snapshot) or backfill.", []string{"kind"}, nil)
	descSnapChunks   = prometheus.NewDesc("pgjet_collector_snapshot_chunks_total", "Chunks of snapshot reads stored in the raw stream, by kind.", []string{"kind"}, nil)
	descSnapDropped  = prometheus.NewDesc("pgjet_collector_snapshot_dropped_rows_total", "Rows a backfill read but left out of its chunk because a change in the stream carries a newer version of them.", nil, nil)
	descSnapTables   = prometheus.NewDesc("pgjet_collector_snapshot_tables", "Tables of the running snapshot or backfill, by state: pending, running, done.", []string{"state"}, nil)
	descSnapLag      = prometheus.NewDesc("pgjet_collector_snapshot_lag_seconds", "How far the change stream is behind the running snapshot: during an initial snapshot, the time since its consistent point (the changes after it wait); during a backfill, from writing a chunk's high watermark to the stream emitting the chunk.", nil, nil)
	descInvalidated  = prometheus.NewDesc("pgjet_collector_slot_invalidated", "1 while the replication slot is invalidated and not created again (reason: wal_removed, idle_timeout, rows_removed, wal_level_insufficient, conflict), else 0 with reason none.", []string{"reason"}, nil)
	descLostFrom     = prometheus.NewDesc("pgjet_collector_slot_lost_from_lsn", "While the slot is invalidated: its confirmed position, as a byte position; the changes committed after it are lost to the stream.", nil, nil)
	descGaps         = prometheus.NewDesc("pgjet_collector_gaps_total", "Gaps accepted by creating the slot again (--recreate-slot, --auto-recreate-slot), each told to consumers by a pgjet.notice.gap notice; reason: dropped or the invalidation reason.", []string{"reason"}, nil)
	descGapBytes     = prometheus.NewDesc("pgjet_collector_gap_wal_bytes_total", "WAL bytes spanned by the gaps accepted (from the old slot's position to the new slot's start).", []string{"reason"}, nil)
	descHeartbeats   = prometheus.NewDesc("pgjet_collector_heartbeats_total", "Heartbeats (--heartbeat) by result: written, or failed (logged).", []string{"result"}, nil)
	descPhantoms     = prometheus.NewDesc("pgjet_collector_phantom_ranges_total", "Failovers after which the raw stream held records the new primary never had (phantoms); each is logged at ERROR and published as a pgjet.notice.phantoms notice.", nil, nil)
	descPhantomBytes = prometheus.NewDesc("pgjet_collector_phantom_wal_bytes_total", "WAL span of the phantom ranges: from the timeline's fork to the last phantom commit.", nil, nil)
)

// lagBuckets are edges of lag.Histogram's buckets.
var lagBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60}

func (c *probeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChanges, descTransactions, descMessages, descReceived, descConfirmed, descConfirmAge, descInFlight, descSlotLag, descReconnects, descReadLag, descStoredLag, descPhantoms, descPhantomBytes, descHeartbeats,
		descInvalidated, descLostFrom, descGaps, descGapBytes, descSnapRows, descSnapChunks, descSnapDropped, descSnapTables, descSnapLag} {
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
	counter(descHeartbeats, p.heartbeats.Written.Load(), "written")
	counter(descHeartbeats, p.heartbeats.Failed.Load(), "failed")
	counter(descPhantoms, p.phantomRanges.Load())
	counter(descPhantomBytes, p.phantomBytes.Load())
	var natsReconnects uint64
	if nc := p.nc.Load(); nc != nil {
		natsReconnects = nc.Stats().Reconnects
	}
	counter(descReconnects, natsReconnects, "nats")
	if s := p.reader.Load(); s != nil {
		gauge(descReceived, float64(s.Received()))
	}
	if pub := p.pub.Load(); pub != nil {
		gauge(descConfirmed, float64(pub.Confirmed()))
		gauge(descConfirmAge, pub.ConfirmationAge(time.Now()).Seconds())
		gauge(descInFlight, float64(pub.InFlightBytes()))
	}
	if v := math.Float64frombits(p.slotLag.Load()); !math.IsNaN(v) {
		gauge(descSlotLag, v)
	}
	sn := &p.snapshots
	counter(descSnapRows, sn.InitialRows.Load(), snapshot.KindInitial)
	counter(descSnapRows, sn.BackfillRows.Load(), snapshot.KindBackfill)
	counter(descSnapChunks, sn.InitialChunks.Load(), snapshot.KindInitial)
	counter(descSnapChunks, sn.BackfillChunks.Load(), snapshot.KindBackfill)
	counter(descSnapDropped, sn.Dropped.Load())
	for _, st := range []struct {
		state string
		n     int64
	}{{snapshot.StatePending, sn.TablesPending.Load()}, {snapshot.StateRunning, sn.TablesRunning.Load()}, {snapshot.StateDone, sn.TablesDone.Load()}} {
		ch <- prometheus.MustNewConstMetric(descSnapTables, prometheus.GaugeValue, float64(st.n), st.state)
	}
	gauge(descSnapLag, float64(sn.LagMicros.Load())/1e6)
	p.mu.Lock()
	if p.invalid != nil {
		ch <- prometheus.MustNewConstMetric(descInvalidated, prometheus.GaugeValue, 1, p.invalid.reason)
		gauge(descLostFrom, float64(p.invalid.from))
	} else {
		ch <- prometheus.MustNewConstMetric(descInvalidated, prometheus.GaugeValue, 0, "none")
	}
	for reason, c := range p.gaps {
		counter(descGaps, c.gaps, reason)
		counter(descGapBytes, c.bytes, reason)
	}
	p.mu.Unlock()
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
