// Package metrics serves a pgjet process's Prometheus metrics and its
// health over HTTP (--metrics HOST:PORT): /metrics, /healthz (200 as long
// as the process answers) and /readyz (200 only while the process does its
// job, 503 with the reason otherwise), for scrapers and orchestrators.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime's and the
// process's standard metrics, for a process to add its own to.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Readiness is whether a process does its job, and if not, why. The zero
// value is not ready.
type Readiness struct {
	why atomic.Pointer[string]
}

// NewReadiness returns a Readiness that is not ready, for the reason why.
func NewReadiness(why string) *Readiness {
	r := &Readiness{}
	r.NotReady(why)
	return r
}

// Ready marks the process ready.
func (r *Readiness) Ready() { r.why.Store(new(string)) }

// NotReady marks the process not ready, for the reason why.
func (r *Readiness) NotReady(why string) { r.why.Store(&why) }

// Check returns nil when ready, else the reason.
func (r *Readiness) Check() error {
	why := r.why.Load()
	switch {
	case why == nil:
		return errors.New("starting")
	case *why != "":
		return errors.New(*why)
	}
	return nil
}

// Server is the HTTP server of /metrics, /healthz and /readyz.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// ReadyMetric is the gauge /metrics adds for /readyz: 1 while ready, else 0.
// Both binaries serve it under this one name; their job label tells them
// apart.
const ReadyMetric = "pgjet_ready"

// Start listens on addr and serves g's metrics on /metrics, 200 on
// /healthz, and on /readyz 200 while ready returns nil, else 503 with its
// error as the body; /metrics adds ReadyMetric, so that a dashboard sees
// what an orchestrator sees. It listens before returning, so that an
// address in use is an error at start-up rather than a log line later.
func Start(addr string, g prometheus.Gatherer, ready func() error) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	readiness := prometheus.NewRegistry()
	readiness.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: ReadyMetric,
		Help: "1 while the process is ready (its /readyz answers 200), else 0.",
	}, func() float64 {
		if ready() != nil {
			return 0
		}
		return 1
	}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{g, readiness}, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s := &Server{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // ends with Close
	}()
	return s, nil
}

// Addr is the address the server listens on (with the port chosen when
// addr asked for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting requests in progress finish for a moment.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// CheckAddr reports what is wrong with a metrics address (--metrics,
// spec.metrics.listen): it must be HOST:PORT, HOST possibly empty for
// every interface, PORT a number. The error does not repeat the address,
// which the caller may not show (a value from the environment).
func CheckAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return errors.New("is not host:port (e.g. 127.0.0.1:9464, or :9464 for every interface)")
	}
	return nil
}
