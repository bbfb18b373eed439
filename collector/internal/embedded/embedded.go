// Package embedded runs an in-process nats-server with JetStream for a
// collector that has no NATS cluster to talk to. Routers connect to it over
// the listen address.
package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload of the embedded server: just under the 32 MiB that JetStream's
// file store keeps in one record, so that a single row with a value of tens
// of MB still fits in one raw message (and one output event). Ordinary raw
// messages stay a few MB (--max-message-bytes).
const MaxPayload = 31 << 20

// Start runs a server storing JetStream data in dir and listening on listen
// (host:port). Every write is fsynced before it is acknowledged
// (sync_interval: always): acknowledged means durable, which is what allows
// the collector to confirm the slot on an ack.
func Start(dir, listen string, log *slog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("bad --listen %q: use host:port", listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("bad --listen %q: port must be a number", listen)
	}
	opts := &server.Options{
		ServerName: "pgjet-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		MaxPayload: MaxPayload,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.SetLoggerV2(&logger{log: log.With("component", "nats-server")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats server did not start listening on %s (port in use? choose another --listen)", listen)
	}
	return s, nil
}

// logger forwards nats-server's log lines to slog.
type logger struct{ log *slog.Logger }

func (l *logger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Debugf(format string, v ...any)  {}
func (l *logger) Tracef(format string, v ...any)  {}
