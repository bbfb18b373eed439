package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Invariant: a second collector started with --standby on the same slot
// waits while the first holds it, and takes over when the first is killed
// (kill -9, mid-workload), with nothing lost and nothing doubled. In the full
// mode the roles swap several times.
func TestStandbyTakesOver(t *testing.T) {
	t.Parallel()
	handovers := pick(1, 4)
	e := workEnv(t)
	rng := newRand(t, "test")
	active := e.collector()
	e.router()
	w := e.startWorkload(defaultWorkload())
	for i := range handovers {
		standby := e.startCollector([]string{"--standby"})
		if !standby.WaitForLog("standing by", 30*time.Second) {
			t.Fatalf("the --standby collector does not say it stands by:\n%s", tail(standby.Log(), 20))
		}
		if strings.Contains(standby.Log(), "msg=streaming") {
			t.Fatalf("the standby streams while the first collector holds the slot:\n%s", tail(standby.Log(), 20))
		}
		if i%2 == 1 {
			w.bigNow()
		}
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		alive(t, active, "active collector")
		alive(t, standby, "standby collector")
		active.Kill()
		killed := time.Now()
		if !standby.WaitForLog("msg=streaming", 60*time.Second) {
			t.Fatalf("the standby did not take over within 60 s of the kill:\n%s", tail(standby.Log(), 20))
		}
		t.Logf("handover %d: the standby streams %s after the kill", i+1, time.Since(killed).Round(100*time.Millisecond))
		active, e.col = standby, standby
	}
	time.Sleep(2 * time.Second)
	w.Stop()
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")
	e.verify(fmt.Sprintf("standby collector took over after kill -9 of the active one, %s", plural(handovers, "time")))
}
