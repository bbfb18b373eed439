package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The charts come out of a results.json as pgjet-bench writes it.
func TestWriteCharts(t *testing.T) {
	w := workloadResult{Name: "oltp"}
	for round := 1; round <= 2; round++ {
		w.Ceiling = append(w.Ceiling, ceilingRun{PerSec: 20000})
		w.Collector = append(w.Collector, collectorRun{PerSec: 30000, CPU: 3})
		w.Embedded = append(w.Embedded, collectorRun{PerSec: 28000, CPU: 4})
		w.Traced = append(w.Traced, collectorRun{PerSec: 29000, CPU: 3.3})
		for i, v := range routerVariants {
			w.Routers = append(w.Routers, routerRun{Round: round, Envelope: v.name, Persist: "async", PerSec: 60000 - float64(i)*5000,
				CPU: 2 + float64(i)/4, Events: 200001, Msgs: 200001, Secs: 4})
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "results.json")
	data, err := json.Marshal(results{Workloads: []workloadResult{w}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeCharts(file, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ratio-to-ceiling.svg", "router-vs-collector.svg", "envelope-costs.svg", "tracing-cost.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); !strings.Contains(s, "<svg") || !strings.Contains(s, "oltp") {
			t.Errorf("%s is not a chart of workload oltp", name)
		}
	}
}
