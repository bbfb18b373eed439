package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// TestMetrics scrapes both processes through a workload: /healthz answers
// throughout, /readyz only while streaming (not while NATS is unreachable
// at start, not once Postgres stops), the collector's changes counter is the
// rows written and the router's events counter the changes, and the slot's
// lag returns to about nothing.
func TestMetrics(t *testing.T) {
	pg := pgtest.Run(t)
	if err := pg.Exec(context.Background(), `CREATE TABLE metered (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	n := harness.StartNATS(t, "")
	// Down while the processes start: neither can be ready.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	col := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", pg.DSN(""), "--slot", "pgjet_metrics", "--publication", "pgjet_metrics", "--tables", "public.metered",
		"--nats", n.URL(), "--source", "e2e", "--metrics", "127.0.0.1:0",
	}, nil)
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", n.URL(), "--output-persist", "async", "--log-format", "json"},
		[]string{"PGJET_METRICS=127.0.0.1:0"})
	colURL, rtURL := metricsURL(t, col, `msg="serving metrics" url=`), metricsURL(t, rt, `"msg":"serving metrics","url":"`)

	for _, u := range []string{colURL, rtURL} {
		expectStatus(t, u+"/healthz", 200, "ok")
		expectStatus(t, u+"/readyz", 503, "not ready: connecting to NATS")
	}
	n.Restart()
	waitStatus(t, colURL+"/readyz", 200, 20*time.Second)
	waitStatus(t, rtURL+"/readyz", 200, 20*time.Second)

	const txs, perTx = 40, 25
	for i := range txs {
		if err := pg.Exec(context.Background(), `INSERT INTO metered SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) g`, i*perTx, (i+1)*perTx-1); err != nil {
			t.Fatal(err)
		}
	}
	rows := float64(txs * perTx)
	waitMetric(t, colURL, "pgjet_collector_changes_total", "", 15*time.Second, func(v float64) bool { return v == rows })
	waitMetric(t, rtURL, "pgjet_router_events_total", `op="insert"`, 15*time.Second, func(v float64) bool { return v == rows })
	c := scrape(t, colURL)
	if got := c.sum("pgjet_collector_transactions_total", ""); got != txs {
		t.Errorf("transactions_total %v, want %d", got, txs)
	}
	if got := c.sum("pgjet_collector_raw_publish_seconds_count", ""); got < 1 {
		t.Errorf("no raw publish latency observed")
	}
	if got := c.sum("pgjet_collector_stored_lag_seconds_count", ""); got != txs {
		t.Errorf("stored lag count %v, want %d", got, txs)
	}
	if c.sum("pgjet_collector_confirmed_lsn", "") <= 0 || c.sum("pgjet_collector_received_lsn", "") < c.sum("pgjet_collector_confirmed_lsn", "")-1 {
		t.Errorf("received %v, confirmed %v", c.sum("pgjet_collector_received_lsn", ""), c.sum("pgjet_collector_confirmed_lsn", ""))
	}
	r := scrape(t, rtURL)
	if got := r.sum("pgjet_router_events_total", ""); got != rows {
		t.Errorf("router events_total %v over all ops, want %v", got, rows)
	}
	if got := r.sum("pgjet_router_publish_seconds_count", `route="pgjet-router"`); got < 1 {
		t.Errorf("no router publish latency observed")
	}
	if got := r.sum("pgjet_router_consumer_pending", ""); got != 0 {
		t.Errorf("consumer pending %v once caught up", got)
	}
	waitMetric(t, colURL, "pgjet_collector_slot_lag_bytes", "", 15*time.Second, func(v float64) bool { return v < 64<<10 })
	for _, u := range []string{colURL, rtURL} {
		expectStatus(t, u+"/healthz", 200, "ok")
		expectStatus(t, u+"/readyz", 200, "ready")
	}

	if err := pg.StopMode("fast"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, colURL+"/readyz", 503, 10*time.Second)
	expectStatus(t, colURL+"/healthz", 200, "ok")
	waitMetric(t, colURL, "pgjet_collector_reconnects_total", `cause="postgres"`, 10*time.Second, func(v float64) bool { return v >= 1 })
	if got := scrape(t, colURL).sum("pgjet_collector_changes_total", ""); got != rows {
		t.Errorf("changes_total %v after the session ended: counters are for the process", got)
	}
	expectStatus(t, rtURL+"/readyz", 200, "ready")

	// The router's log is JSON lines.
	sc := bufio.NewScanner(strings.NewReader(rt.Log()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line["msg"] == nil {
			t.Fatalf("router log line is not a JSON object with msg: %q", sc.Text())
		}
	}
}

// metricsURL reads the --metrics address a process chose from its log.
func metricsURL(t *testing.T, p *harness.Proc, prefix string) string {
	t.Helper()
	if !p.WaitForLog(prefix, 10*time.Second) {
		t.Fatalf("no %q in the log:\n%s", prefix, p.Log())
	}
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `(http://[0-9.:]+)/metrics`).FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no metrics URL in the log:\n%s", p.Log())
	}
	return m[1]
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

func expectStatus(t *testing.T, url string, code int, body string) {
	t.Helper()
	c, b, err := httpGet(url)
	if err != nil || c != code || !strings.HasPrefix(b, body) {
		t.Fatalf("%s: %d %q (%v), want %d %q", url, c, b, err, code, body)
	}
}

func waitStatus(t *testing.T, url string, code int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, b, err := httpGet(url)
		if err == nil && c == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q (%v) after %s, want %d", url, c, b, err, timeout, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// series are the samples of one scrape, by name with labels.
type series map[string]float64

func scrape(t *testing.T, base string) series {
	t.Helper()
	c, body, err := httpGet(base + "/metrics")
	if err != nil || c != 200 {
		t.Fatalf("scrape %s: %d %v", base, c, err)
	}
	s := series{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad line %q", base, line)
		}
		s[line[:i]] = v
	}
	return s
}

// sum adds the samples of metric name whose labels contain label.
func (s series) sum(name, label string) float64 {
	var v float64
	for k, x := range s {
		if (k == name || strings.HasPrefix(k, name+"{")) && strings.Contains(k, label) {
			v += x
		}
	}
	return v
}

func waitMetric(t *testing.T, base, name, label string, timeout time.Duration, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := scrape(t, base)
		v := s.sum(name, label)
		_, present := s[name]
		if (present || label != "") && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} = %v (present %v) after %s", name, label, v, present, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
