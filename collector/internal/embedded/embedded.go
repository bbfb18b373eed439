// Package embedded runs an in-process nats-server with JetStream for a
// collector that has no NATS cluster to talk to. Routers connect to it over
// the listen address; with authentication configured they need credentials,
// while the collector's own in-process connection uses an internal user that
// only in-process connections can log in as.
//
// The server can also join a hub as a leaf node, in a JetStream domain of its
// own: its streams stay local (the collector's acknowledged writes do not
// depend on the link), and the hub reaches them through $JS.<domain>.API,
// e.g. to source the raw stream.
package embedded

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// MaxPayload of the embedded server: just under the 32 MiB that JetStream's
// file store keeps in one record, so that a single row with a value of tens
// of MB still fits in one raw message (and one output event). Ordinary raw
// messages stay a few MB (--max-message-bytes).
const MaxPayload = 31 << 20

// InternalUser is the user of the collector's own in-process connection when
// the server requires authentication. Its password is random, made at every
// start, and it may log in only in-process.
const InternalUser = "pgjet-collector-internal"

// Config is the embedded server's configuration. Errors of Check and Start
// name the collector's flags.
type Config struct {
	// Dir is the JetStream store directory; Listen the client address
	// (host:port).
	Dir, Listen string

	// Authentication: at most one of User (with Password), NKeys and
	// AccountsFile.
	User, Password string
	// NKeys are user public keys (U...); clients sign with their seeds.
	NKeys []string
	// AccountsFile is a nats-server config file whose accounts, authorization
	// and system_account are used (nothing else of it). Account is the
	// account the collector's connection, and so the raw stream, is in:
	// default the file's only account, or the global one when it has none.
	AccountsFile, Account string
	// AllowUnauthenticated lets the server listen beyond loopback without
	// authentication.
	AllowUnauthenticated bool

	// TLS for clients: certificate and key (PEM); with TLSCA, clients must
	// present a certificate signed by it.
	TLSCert, TLSKey, TLSCA string

	// Domain is the server's JetStream domain; required with a leaf link.
	Domain string
	// LeafURLs are the hub's leaf node URLs (nats-leaf://host:7422): the
	// server joins the hub as a leaf node. LeafCreds, or LeafUser and
	// LeafPassword, authenticate it; LeafCA verifies the hub's certificate
	// (the URL's scheme tls:// also asks for TLS).
	LeafURLs                          []string
	LeafCreds, LeafUser, LeafPassword string
	LeafCA                            string
	// LeafCert and LeafKey: a client certificate for hubs that require one.
	LeafCert, LeafKey string
}

// Authenticated says whether clients must authenticate.
func (c *Config) Authenticated() bool {
	return c.User != "" || len(c.NKeys) > 0 || c.AccountsFile != ""
}

// Check validates c without starting anything; Start checks it too.
func (c *Config) Check() error {
	_, err := c.options()
	return err
}

// loopback says whether host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// options builds the server's options from c, without the internal user.
func (c *Config) options() (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("bad --listen %q: use host:port", c.Listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("bad --listen %q: port must be a number", c.Listen)
	}
	opts := &server.Options{
		ServerName: "pgjet-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   c.Dir,
		SyncAlways: true,
		MaxPayload: MaxPayload,
		NoSigs:     true,
	}
	var methods []string
	for _, m := range []struct {
		flag string
		set  bool
	}{{"--embedded-user", c.User != ""}, {"--embedded-nkeys", len(c.NKeys) > 0}, {"--embedded-accounts", c.AccountsFile != ""}} {
		if m.set {
			methods = append(methods, m.flag)
		}
	}
	switch {
	case len(methods) > 1:
		return nil, fmt.Errorf("%s are authentication methods of the embedded server: give one", strings.Join(methods, " and "))
	case c.User != "" && c.Password == "":
		return nil, errors.New("--embedded-user needs a password: give --embedded-password-file or PGJET_EMBEDDED_PASSWORD")
	case c.User == "" && c.Password != "":
		return nil, errors.New("an embedded server password needs --embedded-user")
	case len(methods) == 0 && !loopback(host) && !c.AllowUnauthenticated:
		return nil, fmt.Errorf("--listen %s reaches beyond loopback and the embedded server has no authentication: give --embedded-user, --embedded-nkeys or --embedded-accounts, or --embedded-allow-unauthenticated to serve anyone who reaches the port", c.Listen)
	case c.User == InternalUser:
		return nil, fmt.Errorf("--embedded-user %s is the collector's internal user: choose another name", InternalUser)
	case c.Account != "" && c.AccountsFile == "":
		return nil, errors.New("--embedded-account goes with --embedded-accounts")
	}
	if c.User != "" {
		opts.Users = []*server.User{{Username: c.User, Password: c.Password}}
	}
	for _, k := range c.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("bad --embedded-nkeys %q: not a user public key (U..., from nk -gen user -pubout; give the public key, never the seed)", k)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if c.AccountsFile != "" {
		if err := c.accounts(opts); err != nil {
			return nil, err
		}
	}
	if c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" {
		if c.TLSCert == "" || c.TLSKey == "" {
			return nil, errors.New("--embedded-tls-cert and --embedded-tls-key go together: give both (--embedded-tls-ca needs them too)")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSCA, Verify: c.TLSCA != ""})
		if err != nil {
			return nil, fmt.Errorf("embedded server TLS (--embedded-tls-cert, --embedded-tls-key, --embedded-tls-ca): %w", err)
		}
		opts.TLS, opts.TLSVerify, opts.TLSConfig, opts.TLSTimeout = true, c.TLSCA != "", tc, 5
	}
	if c.Domain != "" {
		if strings.ContainsAny(c.Domain, ". *>\t") {
			return nil, fmt.Errorf("bad --embedded-domain %q: a JetStream domain has no dots, spaces or wildcards", c.Domain)
		}
		opts.JetStreamDomain = c.Domain
	}
	if err := c.leaf(opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// accounts reads the accounts file into opts.
func (c *Config) accounts(opts *server.Options) error {
	fo, err := server.ProcessConfigFile(c.AccountsFile)
	if err != nil {
		return fmt.Errorf("bad --embedded-accounts %s: %w", c.AccountsFile, err)
	}
	if len(fo.TrustedOperators) > 0 || len(fo.TrustedKeys) > 0 {
		return fmt.Errorf("bad --embedded-accounts %s: operator (JWT) mode is not supported; define accounts and users in the file", c.AccountsFile)
	}
	opts.Accounts, opts.Users, opts.Nkeys = fo.Accounts, fo.Users, fo.Nkeys
	opts.SystemAccount, opts.NoAuthUser = fo.SystemAccount, fo.NoAuthUser
	if fo.Username != "" {
		// authorization {user, password}: one user, as a users list so that
		// the internal user fits next to it.
		opts.Users = append(opts.Users, &server.User{Username: fo.Username, Password: fo.Password})
	}
	if fo.Authorization != "" {
		return fmt.Errorf("bad --embedded-accounts %s: token authorization is not supported; use users or nkeys", c.AccountsFile)
	}
	if len(opts.Users) == 0 && len(opts.Nkeys) == 0 {
		return fmt.Errorf("bad --embedded-accounts %s: it defines no users or nkeys, so anyone could connect", c.AccountsFile)
	}
	var names []string
	for _, a := range opts.Accounts {
		if a.Name != opts.SystemAccount && a.Name != server.DEFAULT_SYSTEM_ACCOUNT {
			names = append(names, a.Name)
		}
	}
	switch {
	case c.Account != "" && !slices.Contains(names, c.Account) && c.Account != server.DEFAULT_GLOBAL_ACCOUNT:
		return fmt.Errorf("bad --embedded-account %q: %s defines accounts %v", c.Account, c.AccountsFile, names)
	case c.Account == "" && len(names) > 1:
		return fmt.Errorf("--embedded-accounts %s defines accounts %v: give --embedded-account, the one the raw stream is in (and routers log in to)", c.AccountsFile, names)
	}
	return nil
}

// leaf adds the link to the hub to opts.
func (c *Config) leaf(opts *server.Options) error {
	if len(c.LeafURLs) == 0 {
		if c.LeafCreds != "" || c.LeafUser != "" || c.LeafPassword != "" || c.LeafCA != "" || c.LeafCert != "" || c.LeafKey != "" {
			return errors.New("--embedded-leaf-creds, --embedded-leaf-user, --embedded-leaf-password and --embedded-leaf-tls-* need --embedded-leaf URL")
		}
		return nil
	}
	switch {
	case c.Domain == "":
		return errors.New("--embedded-leaf needs --embedded-domain: the edge's JetStream domain, unique across the hub's leaf nodes, so that its streams stay local and the hub reaches them as $JS.<domain>.API")
	case c.LeafCreds != "" && c.LeafUser != "":
		return errors.New("--embedded-leaf-creds and --embedded-leaf-user are two ways to log in to the hub: give one")
	case c.LeafUser != "" && c.LeafPassword == "":
		return errors.New("--embedded-leaf-user needs a password: give --embedded-leaf-password-file or PGJET_EMBEDDED_LEAF_PASSWORD")
	case c.LeafUser == "" && c.LeafPassword != "":
		return errors.New("a leaf password needs --embedded-leaf-user")
	}
	r := &server.RemoteLeafOpts{Credentials: c.LeafCreds}
	for _, s := range c.LeafURLs {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("bad --embedded-leaf %q: use nats-leaf://host:port (or tls://host:port)", s)
		}
		if c.LeafUser != "" {
			u.User = url.UserPassword(c.LeafUser, c.LeafPassword)
		}
		if u.Scheme == "tls" {
			r.TLS = true
		}
		r.URLs = append(r.URLs, u)
	}
	if (c.LeafCert == "") != (c.LeafKey == "") {
		return errors.New("--embedded-leaf-tls-cert and --embedded-leaf-tls-key go together: give both")
	}
	if c.LeafCA != "" || c.LeafCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CaFile: c.LeafCA, CertFile: c.LeafCert, KeyFile: c.LeafKey})
		if err != nil {
			return fmt.Errorf("leaf link TLS (--embedded-leaf-tls-*): %w", err)
		}
		// GenTLSConfig puts the CA among the client CAs: on a link this
		// server dials it verifies the hub.
		tc.RootCAs = tc.ClientCAs
		r.TLS, r.TLSConfig, r.TLSTimeout = true, tc, 5
	}
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{r}
	opts.LeafNode.ReconnectInterval = time.Second
	return nil
}

// Server is a running embedded server.
type Server struct {
	*server.Server
	password string // the internal user's; "" without authentication
}

// Start runs the server. Every write is fsynced before it is acknowledged
// (sync_interval: always): acknowledged means durable, which is what allows
// the collector to confirm the slot on an ack.
func Start(c Config, log *slog.Logger) (*Server, error) {
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	srv := &Server{}
	if c.Authenticated() {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		srv.password = hex.EncodeToString(b)
		u := &server.User{Username: InternalUser, Password: srv.password,
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}}}
		if name := c.internalAccount(opts); name != "" {
			i := slices.IndexFunc(opts.Accounts, func(a *server.Account) bool { return a.Name == name })
			u.Account = opts.Accounts[i]
		}
		opts.Users = append(opts.Users, u)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.SetLoggerV2(&logger{log: log.With("component", "nats-server")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats server did not start listening on %s (port in use? choose another --listen)", c.Listen)
	}
	srv.Server = s
	return srv, nil
}

// internalAccount is the account of the internal user: "" for the global
// one.
func (c *Config) internalAccount(opts *server.Options) string {
	if c.Account != "" {
		if c.Account == server.DEFAULT_GLOBAL_ACCOUNT {
			return ""
		}
		return c.Account
	}
	for _, a := range opts.Accounts {
		if a.Name != opts.SystemAccount && a.Name != server.DEFAULT_SYSTEM_ACCOUNT {
			return a.Name
		}
	}
	return ""
}

// ClientOptions connect a client in-process, as the internal user when the
// server requires authentication.
func (s *Server) ClientOptions() []nats.Option {
	opts := []nats.Option{nats.InProcessServer(s.Server)}
	if s.password != "" {
		opts = append(opts, nats.UserInfo(InternalUser, s.password))
	}
	return opts
}

// logger forwards nats-server's log lines to slog.
type logger struct{ log *slog.Logger }

func (l *logger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Maximum payloads over") {
		// The server's advice against MaxPayload, which is chosen
		// (above): a warning at every start that asks nothing of anyone.
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}
func (l *logger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Debugf(format string, v ...any) {}
func (l *logger) Tracef(format string, v ...any) {}
