// Package natsconn connects to NATS the way both pgjet processes need it:
// reconnect forever, log connection changes, and wait with backoff (saying
// so) while the server is unreachable at start.
package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pgjet/pgjet/shared/redact"
)

// Config says where and how to connect.
type Config struct {
	URL   string // one URL or a comma-separated list
	Name  string // client name shown by the server
	Creds string // optional credentials file
	Log   *slog.Logger
	// Extra options, e.g. nats.InProcessServer for an embedded server.
	Options []nats.Option
}

// Connect connects, retrying with backoff (1 s doubling to 30 s) until ctx
// ends. After the first connection the client reconnects by itself.
func Connect(ctx context.Context, c Config) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.Log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.Log.Info("nats reconnected", "url", redact.DSN(nc.ConnectedUrlRedacted()))
		}),
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	opts = append(opts, c.Options...)
	wait := time.Second
	for {
		nc, err := nats.Connect(c.URL, opts...)
		if err == nil {
			return nc, nil
		}
		c.Log.Warn(fmt.Sprintf("nats unreachable at %s, retrying in %s", redact.DSN(c.URL), wait), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to nats at %s: %w (is nats-server running and reachable?)", redact.DSN(c.URL), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}
