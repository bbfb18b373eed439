package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The committed cluster files make a working 3-node JetStream cluster: an R3
// stream keeps its acknowledged messages through kill -9 of its leader (a
// follower takes over) and a restart of that node, which catches up.
func TestClusterFromDeployFiles(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	names := map[string]bool{}
	for i, n := range c.Nodes {
		if want := "pgjet-" + string(rune('a'+i)); n.Name() != want {
			t.Errorf("node %d runs as %q, want %q (server_name of %s)", i, n.Name(), want, n.Config())
		}
		names[n.Name()] = true
		// What the server runs with: the file's fsync setting, the test's store.
		var varz struct {
			JetStream struct {
				Config struct {
					SyncAlways bool   `json:"sync_always"`
					StoreDir   string `json:"store_dir"`
				} `json:"config"`
			} `json:"jetstream"`
		}
		getJSON(t, n.MonitorURL()+"/varz", &varz)
		if cfg := varz.JetStream.Config; !cfg.SyncAlways || !strings.HasPrefix(cfg.StoreDir, n.Dir()) {
			t.Errorf("%s: JetStream runs with sync_always %v, store %q; want true (%s) and a store in %s", n.Name(), cfg.SyncAlways, cfg.StoreDir, n.Config(), n.Dir())
		}
	}
	_, js := c.Nodes[0].Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			for {
				_, err := js.Publish(ctx, "s.x", fmt.Appendf(nil, "m%d", i), jetstream.WithMsgID(fmt.Sprint(i)))
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	publish(0, 100)
	leader := c.WaitStreamLeader(js, "S", nil, time.Minute)
	leader.Kill()
	start := time.Now()
	next := c.WaitStreamLeader(js, "S", leader, time.Minute)
	t.Logf("leader %s killed, %s took over in %s", leader.Name(), next.Name(), time.Since(start).Round(time.Millisecond))
	publish(100, 200)
	leader.Restart()
	c.WaitStreamCurrent(js, "S", time.Minute)
	info, err := c.StreamInfo(ctx, js, "S")
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 || info.State.LastSeq != 200 {
		t.Fatalf("stream holds %d messages (last seq %d), want 200", info.State.Msgs, info.State.LastSeq)
	}
	if len(names) != 3 {
		t.Fatalf("server names %v, want three", names)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
