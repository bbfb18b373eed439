// Package natsconn connects to NATS the way both pgjet processes need it:
// reconnect forever, log connection changes, wait with backoff (saying so)
// while the server is unreachable at start, and stop at once when the server
// refuses the credentials or the TLS handshake, which only the user can fix.
package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/redact"
)

// Config says where and how to connect. Give at most one authentication
// method (User and Password, Token, NKeyFile or Creds); TLS goes with any.
type Config struct {
	URL      string // one URL or a comma-separated list
	Name     string // client name shown by the server
	User     string
	Password string
	Token    string
	NKeyFile string // nkey user seed file
	Creds    string // credentials file: user JWT and nkey seed
	TLS      TLSFiles
	Log      *slog.Logger
	// Extra options, e.g. nats.InProcessServer for an embedded server.
	Options []nats.Option
}

// TLSFiles are PEM files. CAFile replaces the system's roots for verifying
// the server; CertFile and KeyFile are the client certificate, for servers
// that require one (tls { verify: true }).
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

func (t TLSFiles) given() bool { return t != TLSFiles{} }

// Connect connects, retrying with backoff (1 s doubling to 30 s) until ctx
// ends while the server is unreachable. After the first connection the
// client reconnects by itself.
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
		// The server reports a refused publish or subscription (a
		// permissions violation) and a slow consumer here, not to the
		// call that caused it: without this they would go unseen, and a
		// refused publish would only look like a missing ack.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			args := []any{"err", err}
			if sub != nil {
				args = append(args, "subject", sub.Subject)
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				// The relay re-reads from its ack floor by itself.
				c.Log.Warn("nats: slow consumer, messages dropped", args...)
				return
			}
			c.Log.Error("nats error", args...)
		}),
	}
	auth, err := c.authOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	opts = append(opts, c.Options...)
	retry := backoff.New(time.Second, 30*time.Second)
	for {
		nc, err := nats.Connect(c.URL, opts...)
		if err == nil {
			return nc, nil
		}
		if refused := c.refused(err); refused != nil {
			return nil, refused
		}
		wait := retry.Next()
		c.Log.Warn(fmt.Sprintf("nats unreachable at %s, retrying in %s", redact.DSN(c.URL), wait), "err", err)
		if retry.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("connect to nats at %s: %w (is nats-server running and reachable?)", redact.DSN(c.URL), err)
		}
	}
}

// authOptions reads the files once, before the first attempt: a file
// error would otherwise come back from every attempt and look like an
// unreachable server.
func (c Config) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("bad --nats-nkey %s: %v", c.NKeyFile, err)
		}
		opts = append(opts, o)
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.TLS.given() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

func (t TLSFiles) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bad --nats-tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bad --nats-tls-ca %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("--nats-tls-cert and --nats-tls-key go together: give both")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("bad --nats-tls-cert/--nats-tls-key: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// refused returns the one-line error for a failure that retrying cannot
// fix (credentials or TLS), or nil for one it may (server down, network).
// The messages name flags and the server's reason, never a secret.
func (c Config) refused(err error) error {
	at := redact.DSN(c.URL)
	for _, authErr := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		if errors.Is(err, authErr) {
			return fmt.Errorf("nats at %s refused the credentials (%s): %s", at, strings.TrimPrefix(authErr.Error(), "nats: "), c.authHint())
		}
	}
	if errors.Is(err, nats.ErrSecureConnWanted) {
		return fmt.Errorf("nats at %s does not offer TLS, but --nats-tls-* was given: enable tls on the server or drop those flags", at)
	}
	// Our side rejected the server's certificate.
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) {
		return fmt.Errorf("nats at %s presented a TLS certificate this client does not trust (%s): check --nats-tls-ca", at, tlsCause(err))
	}
	// The server rejected ours: a TLS alert ("certificate required", "bad
	// certificate", "unknown certificate authority"), or a close right after
	// the handshake, which is how a server rejects a client certificate
	// under TLS 1.3.
	var op *net.OpError
	alert := errors.As(err, &op) && op.Op == "remote error"
	if alert || errors.Is(err, nats.ErrTLS) {
		cause := strings.TrimPrefix(err.Error(), nats.ErrTLS.Error()+": ")
		switch {
		case alert:
			cause = op.Err.Error()
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET):
			cause = "the server closed the connection after the handshake"
		}
		// Go's client sends no certificate unless one is signed by a CA the
		// server names, so a foreign certificate looks like none to the server.
		hint := "check --nats-tls-cert/--nats-tls-key: the server wants a client certificate signed by a CA it trusts (one of another CA is not even sent)"
		if c.TLS.CertFile == "" {
			hint = "the server requires a client certificate: give --nats-tls-cert and --nats-tls-key"
		}
		return fmt.Errorf("nats at %s failed the TLS handshake (%s): %s", at, cause, hint)
	}
	return nil
}

// tlsCause is a TLS verification error without nats' prefix.
func tlsCause(err error) string {
	return strings.TrimPrefix(err.Error(), nats.ErrTLS.Error()+": ")
}

// authHint names the flags of the method in use.
func (c Config) authHint() string {
	switch {
	case c.Creds != "":
		return "check --creds (the user JWT, its account and their expiry)"
	case c.NKeyFile != "":
		return "check --nats-nkey (the seed of a user the server knows)"
	case c.Token != "":
		return "check --nats-token"
	case c.User != "":
		return "check --nats-user/--nats-password"
	case strings.Contains(c.URL, "@"):
		return "check the credentials in the --nats URL"
	case c.TLS.CertFile != "":
		return "check --nats-tls-cert (the server maps client certificates to users)"
	}
	return "the server requires authentication: give --nats-user/--nats-password, --nats-token, --nats-nkey or --creds"
}

// Transient reports whether err is NATS being unreachable or slow for a
// moment (a timeout, a reconnect, no responders yet): the client
// reconnects by itself, so the caller retries. The one rule both processes
// use.
func Transient(err error) bool {
	// ErrReconnectBufExceeded: a connection without a reconnect buffer (the
	// router's) fails any request made while it reconnects with it.
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, context.DeadlineExceeded)
}
