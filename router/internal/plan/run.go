package plan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/tracing"
)

// Run connects and runs every route of p until ctx ends (nil) or one fails
// for good, which stops the others: a router is healthy only when all its
// routes are. The routes read the raw stream on one connection, and each
// publishes on a connection of its own: a connection's publish acks (and
// raw deliveries) are read by one goroutine of the client, which a single
// shared connection made the router's busiest. Printing routes write to
// out.
func Run(ctx context.Context, p *Plan, log *slog.Logger, out io.Writer) error {
	// Tracing, when the environment turns it on (shared/tracing).
	tr, err := tracing.Setup(ctx, "pgjet-router", log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing", "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := map[string]*nats.Conn{}
	defer func() {
		for _, nc := range conns {
			// Let acks and naks of the last raw records reach the server.
			_ = nc.FlushTimeout(2 * time.Second)
			nc.Close()
		}
	}()
	connect := func(c natsconn.Config, role string) (*nats.Conn, error) {
		key := role + "|" + connKey(c)
		if nc := conns[key]; nc != nil {
			return nc, nil
		}
		c.Name, c.Log = "pgjet-router "+role, log
		// No reconnect buffer: a publish during a reconnect fails at once
		// instead of being sent after the reconnect, ahead of earlier events
		// that were lost with the connection. The relays republish in order.
		c.Options = append(c.Options, nats.ReconnectBufSize(-1))
		nc, err := natsconn.Connect(ctx, c)
		if err != nil {
			return nil, err
		}
		// ConnectedUrlRedacted keeps a token URL's token: redact it too.
		log.Info("connected to nats", "url", redact.DSN(nc.ConnectedUrlRedacted()))
		conns[key] = nc
		p.Metrics.addConn(nc)
		return nc, nil
	}
	rawNC, err := connect(p.Raw, "raw")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	sharedOut := &lockedWriter{w: out}
	relays := make([]*relay.Relay, 0, len(p.Routes))
	for i := range p.Routes {
		rt := &p.Routes[i]
		rc := rt.Relay
		rc.Log = log
		if len(p.Routes) > 1 {
			rc.Log = log.With("route", rt.ID)
		}
		rawJS, err := jetstream.New(rawNC, jetstream.WithPublishAsyncTimeout(rc.PublishTimeout))
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		outJS := rawJS
		if rc.Stream != "" {
			nc, err := connect(rt.Conn, "route "+rt.ID)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("route %s: %w", rt.ID, err)
			}
			if outJS, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(rc.PublishTimeout)); err != nil {
				return fmt.Errorf("jetstream: %w", err)
			}
		}
		if rt.Stdout != stdout.Off {
			rc.Stdout = stdout.New(sharedOut, rt.Stdout, nil)
		}
		rc.PublishLatency = p.Metrics.latency(rt.ID)
		rc.Tracer = tr.Tracer
		r, err := relay.NewWithOutput(rawJS, outJS, rc)
		if err != nil {
			return fmt.Errorf("route %s: %w", rt.ID, err)
		}
		relays = append(relays, r)
		p.Metrics.addRoute(rt.ID, r)
	}

	errs := make(chan error, len(relays))
	var wg sync.WaitGroup
	for i, r := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Run(ctx)
			if err != nil && len(relays) > 1 {
				err = fmt.Errorf("route %s: %w", p.Routes[i].ID, err)
			}
			errs <- err
		}()
	}
	var first error
	for range relays {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	wg.Wait()
	return first
}

// connKey identifies a connection: the same servers with the same
// credentials.
func connKey(c natsconn.Config) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s|%s", c.URL, c.Creds, c.User, c.Password, c.Token, c.NKeyFile, c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
}

// lockedWriter lets several routes print to one stdout: each buffered
// flush is one Write.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
