package plan

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRouterMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	if err := m.Ready(); err == nil {
		t.Error("ready without routes")
	}
	r, err := relay.New(nil, relay.Config{RawStream: "RAW", Durable: "orders", Stream: "OUT", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m.addRoute("orders", r)
	m.latency("orders").Observe(0.004)
	m.replayProgress("orders", 3, 10)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	want := `
# HELP pgjet_router_replay_records_done Raw records of its range a running replay has handled.
# TYPE pgjet_router_replay_records_done gauge
pgjet_router_replay_records_done{route="orders"} 3
# HELP pgjet_router_consumer_pending Raw records left for the route's consumer, as of the last one delivered.
# TYPE pgjet_router_consumer_pending gauge
pgjet_router_consumer_pending{route="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pgjet_router_replay_records_done", "pgjet_router_consumer_pending"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount((*routeCollector)(m), "pgjet_router_events_total"); n != len(relay.EventOps) {
		t.Errorf("%d events series, want one per op", n)
	}
	if err := m.Ready(); err == nil || err.Error() != "route orders: setting up" {
		t.Errorf("Ready: %v", err)
	}
	var off *Metrics
	if off.latency("x") != nil {
		t.Error("a latency observer without metrics")
	}
	off.addRoute("x", r)
	off.replayProgress("x", 1, 2)
}
