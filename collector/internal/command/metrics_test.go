package command

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorMetricsLint(t *testing.T) {
	p := newProbe()
	p.totals.Changes.Add(7)
	p.totals.Transactions.Add(3)
	p.totals.StoredLag.Observe(time.Now().Add(-3*time.Millisecond).UnixMicro(), time.Now())
	p.pub.Store(rawstream.NewPublisher(nil, rawstream.PublisherConfig{Checkpoint: checkpoint.New(0x16B3748), Log: slog.New(slog.DiscardHandler)}))
	// The registry /metrics serves, with every histogram observed once so
	// that each family has a sample to lint.
	reg := p.registry()
	p.observer().Observe(0.004)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("%s: %s", pr.Metric, pr.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range families {
		served[f.GetName()] = true
	}
	for _, name := range []string{"pgjet_collector_raw_publish_seconds", "pgjet_collector_stored_lag_seconds", "pgjet_collector_read_lag_seconds", "pgjet_collector_changes_total"} {
		if !served[name] {
			t.Errorf("%s: not served by the registry /metrics uses", name)
		}
	}
	c := &probeCollector{p}

	want := `
# HELP pgjet_collector_changes_total Changes stored in the raw stream (acknowledged by JetStream).
# TYPE pgjet_collector_changes_total counter
pgjet_collector_changes_total 7
# HELP pgjet_collector_confirmed_lsn WAL position confirmed to Postgres (everything before it is stored), as a byte position.
# TYPE pgjet_collector_confirmed_lsn gauge
pgjet_collector_confirmed_lsn 2.3803720e+07
# HELP pgjet_collector_reconnects_total Connections established again: cause postgres, a new replication session after one ended; nats, the NATS client's reconnects.
# TYPE pgjet_collector_reconnects_total counter
pgjet_collector_reconnects_total{cause="nats"} 0
pgjet_collector_reconnects_total{cause="postgres"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pgjet_collector_changes_total", "pgjet_collector_confirmed_lsn", "pgjet_collector_reconnects_total"); err != nil {
		t.Error(err)
	}
	// Not polled yet: no slot lag rather than a made-up one.
	if n := testutil.CollectAndCount(c, "pgjet_collector_slot_lag_bytes"); n != 0 {
		t.Errorf("%d slot lag samples before a poll", n)
	}
	if n := testutil.CollectAndCount(c, "pgjet_collector_stored_lag_seconds"); n != 1 {
		t.Errorf("%d stored lag histograms", n)
	}

	// An invalidated slot: flagged with its reason and lost position until
	// it is created again; then the gap is counted.
	p.SlotInvalidated("wal_removed", 0x1000)
	invalid := `
# HELP pgjet_collector_slot_lost_from_lsn While the slot is invalidated: its confirmed position, as a byte position; the changes committed after it are lost to the stream.
# TYPE pgjet_collector_slot_lost_from_lsn gauge
pgjet_collector_slot_lost_from_lsn 4096
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(invalid), "pgjet_collector_slot_lost_from_lsn"); err != nil {
		t.Error(err)
	}
	if got := gaugeWith(t, reg, "pgjet_collector_slot_invalidated", "reason", "wal_removed"); got != 1 {
		t.Errorf("slot_invalidated{reason=wal_removed} = %v", got)
	}
	p.Gap(session.Gap{Reason: "wal_removed", From: 0x1000, To: 0x3000})
	if got := gaugeWith(t, reg, "pgjet_collector_slot_invalidated", "reason", "none"); got != 0 {
		t.Errorf("slot_invalidated{reason=none} = %v after the slot was created again", got)
	}
	if n := testutil.CollectAndCount(c, "pgjet_collector_slot_lost_from_lsn"); n != 0 {
		t.Errorf("%d lost-from samples after the slot was created again", n)
	}
	if got := gaugeWith(t, reg, "pgjet_collector_gaps_total", "reason", "wal_removed"); got != 1 {
		t.Errorf("gaps_total = %v", got)
	}
	if got := gaugeWith(t, reg, "pgjet_collector_gap_wal_bytes_total", "reason", "wal_removed"); got != 0x2000 {
		t.Errorf("gap_wal_bytes_total = %v", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint with a gap: %v %v", problems, err)
	}
}

// gaugeWith is the value of the sample of family name whose label has
// value, -1 when there is none.
func gaugeWith(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestCollectorEndpoint(t *testing.T) {
	p := newProbe()
	srv, err := serveMetrics("127.0.0.1:0", p)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := serveMetrics(srv.Addr(), newProbe()); err == nil || !strings.HasPrefix(err.Error(), "--metrics "+srv.Addr()+": ") {
		t.Errorf("address in use: %v", err)
	}
	if p.observer() == nil {
		t.Fatal("no publish latency histogram with metrics on")
	}
	if newProbe().observer() != nil {
		t.Fatal("a publish latency observer with metrics off")
	}
	resp, err := http.Get("http://" + srv.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != "not ready: connecting to NATS\n" {
		t.Errorf("/readyz: %d %q", resp.StatusCode, body)
	}
	p.Streaming(nil, nil)
	if err := p.check(); err != nil {
		t.Errorf("streaming: %v", err)
	}
}

func TestLogFormat(t *testing.T) {
	for _, args := range [][]string{{"--log-format", "yaml"}, {"--metrics", "9464"}} {
		_, err := parseConfig(append(args, "--dsn", "postgres://h/db", "--nats", "nats://h"))
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
	c, err := parseConfig([]string{"--log-format", "json", "--metrics", ":9464", "--dsn", "postgres://h/db", "--nats", "nats://h"})
	if err != nil || !c.logJSON || c.metrics != ":9464" {
		t.Errorf("%+v %v", c, err)
	}
}
