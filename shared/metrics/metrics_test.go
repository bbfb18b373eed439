package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestServer(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pgjet_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	ready := NewReadiness("connecting to PostgreSQL")
	s, err := Start("127.0.0.1:0", reg, ready.Check)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || body != "not ready: connecting to PostgreSQL\n" {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "\npgjet_ready 0\n") {
		t.Errorf("/metrics while not ready lacks pgjet_ready 0:\n%s", body)
	}
	ready.Ready()
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "\npgjet_ready 1\n") {
		t.Errorf("/metrics while ready lacks pgjet_ready 1:\n%s", body)
	}
	ready.NotReady("replication session ended")
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "replication session ended") {
		t.Errorf("/readyz after: %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "pgjet_test_things_total 3\n") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, base+"/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
}

func TestStartAddressInUse(t *testing.T) {
	s, err := Start("127.0.0.1:0", NewRegistry(), func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Start(s.Addr(), NewRegistry(), func() error { return nil }); err == nil {
		t.Fatal("a second server on the same address started")
	}
}

func TestReadinessZero(t *testing.T) {
	var r Readiness
	if err := r.Check(); err == nil {
		t.Fatal("the zero Readiness is ready")
	}
	r.Ready()
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	r.NotReady("nats disconnected")
	if err := r.Check(); err == nil || err.Error() != "nats disconnected" {
		t.Fatal(err)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9464", ":9464", "[::1]:9464", "localhost:0"} {
		if err := CheckAddr(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"9464", "127.0.0.1", "127.0.0.1:x9", "", "h:http", "h:65536"} {
		if err := CheckAddr(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
