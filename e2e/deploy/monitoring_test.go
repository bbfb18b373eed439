package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"go.yaml.in/yaml/v3"
)

const (
	alertsFile    = "deploy/monitoring/alerts.yaml"
	alertsTest    = "deploy/monitoring/alerts.test.yaml"
	dashboardFile = "deploy/monitoring/grafana-dashboard.json"
	runbookFile   = "deploy/monitoring/README.md"
)

// promtool is Debian's prometheus package's rule checker, which `make
// deploy-tools` installs as root.
func promtool(t *testing.T) string {
	t.Helper()
	tool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" || os.Geteuid() == 0 {
			t.Fatalf("promtool is missing: run `make deploy-tools` (apt-get install -y prometheus) — CI must check the alert rules")
		}
		t.Skip("SKIPPED LOUDLY: promtool is missing and this is no root shell, so the alert rules are NOT checked; `sudo apt-get install -y prometheus` to check them")
	}
	return tool
}

// Invariant: the alert rules are valid Prometheus rules, and promtool's
// unit tests fire and resolve every alert of the file (a new alert without
// a test fails here), each alert links to a runbook section that exists.
func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	dir := filepath.Join(root(t), "deploy/monitoring")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts.test.yaml"}} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	alerts := alertRules(t)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root(t), alertsTest)), &tests); err != nil {
		t.Fatal(err)
	}
	fires, resolves := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				resolves[at.Alertname] = true
			}
		}
	}
	runbook := string(readFile(t, filepath.Join(root(t), runbookFile)))
	for _, a := range alerts {
		if !fires[a.Alert] || !resolves[a.Alert] {
			t.Errorf("%s: %s needs a test that fires it and one that sees it resolved (fires %v, resolves %v)", alertsTest, a.Alert, fires[a.Alert], resolves[a.Alert])
		}
		anchor := strings.ToLower(a.Alert)
		if a.Annotations["runbook_url"] != runbookFile+"#"+anchor {
			t.Errorf("%s: %s's runbook_url is %q, want %s#%s", alertsFile, a.Alert, a.Annotations["runbook_url"], runbookFile, anchor)
		}
		if !strings.Contains(runbook, "\n### "+a.Alert+"\n") {
			t.Errorf("%s has no runbook section ### %s", runbookFile, a.Alert)
		}
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root(t), alertsFile)), &rules); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range rules.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", alertsFile)
	}
	return out
}

// dashboardQueries returns every PromQL expression of the dashboard, with
// Grafana's interval variables replaced so that promtool can parse them.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(root(t), dashboardFile)), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	queries := map[string]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for i, tg := range p.Targets {
			queries[fmt.Sprintf("%s #%d", p.Title, i)] = strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
		}
	}
	return queries
}

// Invariant: every query of the Grafana dashboard is valid PromQL (checked
// by promtool as recording rules), and the dashboard shows what an operator
// of pgjet looks at first.
func TestDashboardQueries(t *testing.T) {
	tool := promtool(t)
	queries := dashboardQueries(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	names := make([]string, 0, len(queries))
	for name := range queries {
		names = append(names, name)
	}
	sort.Strings(names)
	all := ""
	for i, name := range names {
		q, _ := json.Marshal(queries[name]) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
		all += queries[name] + "\n"
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries are not valid PromQL: %v\n%s\n%s", err, out, rules.String())
	}
	for _, shown := range []string{"pgjet_ready", "pgjet_collector_slot_lag_bytes", "pgjet_collector_confirmation_age_seconds",
		"pgjet_collector_changes_total", "pgjet_router_events_total", "pgjet_router_consumer_pending",
		"pgjet_router_dead_letters_total", "pgjet_router_publish_seconds_bucket", "pgjet_collector_raw_publish_seconds_bucket"} {
		if !strings.Contains(all, shown) {
			t.Errorf("%s does not show %s", dashboardFile, shown)
		}
	}
}

var metricName = regexp.MustCompile(`\bpgjet_[a-z0-9_]+\b`)

// Invariant: every metric the dashboard and the alert rules name is one the
// binaries export: read from the live /metrics of a collector and a router
// relaying a change (besides Prometheus's own up).
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	named := map[string][]string{} // metric: where
	for name, q := range dashboardQueries(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			named[m] = append(named[m], dashboardFile+": "+name)
		}
	}
	for _, a := range alertRules(t) {
		for _, m := range metricName.FindAllString(a.Expr, -1) {
			named[m] = append(named[m], alertsFile+": "+a.Alert)
		}
	}
	if len(named) == 0 {
		t.Fatal("no pgjet metric named by the dashboard or the rules")
	}

	exported := liveMetricNames(t)
	for m, where := range named {
		if !exported[m] {
			t.Errorf("%s is named by %s but neither binary exports it", m, strings.Join(where, ", "))
		}
	}
}

// liveMetricNames runs a collector and a router with --metrics against a
// real Postgres and nats-server, makes a change reach the output, and
// returns the names of the samples both /metrics serve.
func liveMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	pg := pgtest.Run(t)
	if err := pg.Exec(context.Background(), `CREATE TABLE watched (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	n := harness.StartNATS(t, "")
	col := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", pg.DSN(""), "--slot", "pgjet_watch", "--publication", "pgjet_watch", "--tables", "public.watched",
		"--nats", n.URL(), "--metrics", "127.0.0.1:0",
	}, nil)
	rt := harness.StartProcess(t, "pgjet-router", []string{"--nats", n.URL(), "--output-persist", "async", "--metrics", "127.0.0.1:0"}, nil)
	colURL, rtURL := servingURL(t, col), servingURL(t, rt)
	if !col.WaitForLog("msg=streaming", 30*time.Second) || !rt.WaitForLog("msg=relaying", 30*time.Second) {
		t.Fatal("the pipeline did not start")
	}
	if err := pg.Exec(context.Background(), `INSERT INTO watched VALUES (1, 'seen')`); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for k := range names {
			delete(names, k)
		}
		for _, u := range []string{colURL, rtURL} {
			for _, name := range scrapeNames(t, u) {
				names[name] = true
			}
		}
		// Relayed, and the slot lag polled: every metric has a sample.
		if names["pgjet_router_publish_seconds_count"] && names["pgjet_collector_slot_lag_bytes"] && names["pgjet_router_consumer_pending"] {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change was not relayed within 30s; metrics: %v", names)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var servingLine = regexp.MustCompile(`msg="serving metrics" url=(http://\S+)/metrics`)

func servingURL(t *testing.T, p *harness.Proc) string {
	t.Helper()
	if !p.WaitForLog(`msg="serving metrics"`, 30*time.Second) {
		t.Fatalf("%s does not serve metrics", p.Name)
	}
	m := servingLine.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("%s: no metrics URL in its log", p.Name)
	}
	return m[1]
}

// scrapeNames returns the sample names of base/metrics.
func scrapeNames(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var names []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names = append(names, line[:i])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
