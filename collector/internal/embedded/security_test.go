package embedded

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/testca"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeListen(t *testing.T) string {
	t.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// start runs the server of c (a temp dir and a free port unless given).
func start(t *testing.T, c Config) *Server {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.Listen == "" {
		c.Listen = freeListen(t)
	}
	s, err := Start(c, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// useJetStream creates a stream and stores a message through nc.
func useJetStream(t *testing.T, nc *nats.Conn, stream string) {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{strings.ToLower(stream) + ".>"}}); err != nil {
		t.Fatalf("create stream %s: %v", stream, err)
	}
	if _, err := js.Publish(ctx, strings.ToLower(stream)+".x", []byte("x")); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// inProcess connects as the collector does.
func inProcess(t *testing.T, s *Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", s.ClientOptions()...)
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func connect(url string, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
	if err == nil {
		nc.Close()
	}
	return nc, err
}

func refused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: connected, want refused", what)
	} else {
		t.Logf("%s: refused: %v", what, err)
	}
}

func TestUserPassword(t *testing.T) {
	s := start(t, Config{User: "router", Password: "pw-1"})
	useJetStream(t, inProcess(t, s), "RAW")
	refused(t, "no credentials", second(connect(s.ClientURL())))
	refused(t, "wrong password", second(connect(s.ClientURL(), nats.UserInfo("router", "pw-2"))))
	refused(t, "internal user over the network", second(connect(s.ClientURL(), nats.UserInfo(InternalUser, s.password))))
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("router", "pw-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The router's user sees the collector's stream: one account.
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), "RAW"); err != nil {
		t.Errorf("router user: %v", err)
	}
}

func second[A, B any](_ A, b B) B { return b }

func TestNKeys(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	other, _ := nkeys.CreateUser()
	s := start(t, Config{NKeys: []string{pub}})
	useJetStream(t, inProcess(t, s), "RAW")
	refused(t, "no credentials", second(connect(s.ClientURL())))
	otherPub, _ := other.PublicKey()
	refused(t, "unknown nkey", second(connect(s.ClientURL(), nats.Nkey(otherPub, other.Sign))))
	if _, err := connect(s.ClientURL(), nats.Nkey(pub, kp.Sign)); err != nil {
		t.Errorf("allowed nkey: %v", err)
	}
	if err := (&Config{Dir: "/d", Listen: "127.0.0.1:1", NKeys: []string{"SUxxx"}}).Check(); err == nil || !strings.Contains(err.Error(), "bad --embedded-nkeys") {
		t.Errorf("a seed as public key: %v", err)
	}
}

func TestAccountsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "accounts.conf")
	conf := `accounts {
  APP: { jetstream: enabled, users: [ {user: router, password: pw-r} ] }
  OTHER: { jetstream: enabled, users: [ {user: other, password: pw-o} ] }
}
`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&Config{Dir: "/d", Listen: "127.0.0.1:1", AccountsFile: file}).Check(); err == nil || !strings.Contains(err.Error(), "give --embedded-account") {
		t.Errorf("two accounts, none chosen: %v", err)
	}
	s := start(t, Config{AccountsFile: file, Account: "APP"})
	useJetStream(t, inProcess(t, s), "RAW")
	refused(t, "no credentials", second(connect(s.ClientURL())))
	refused(t, "wrong password", second(connect(s.ClientURL(), nats.UserInfo("router", "pw-o"))))
	for _, u := range []struct {
		user, pw string
		sees     bool
	}{{"router", "pw-r", true}, {"other", "pw-o", false}} {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(u.user, u.pw))
		if err != nil {
			t.Fatalf("%s: %v", u.user, err)
		}
		js, _ := jetstream.New(nc)
		_, err = js.Stream(context.Background(), "RAW")
		if sees := err == nil; sees != u.sees {
			t.Errorf("user %s sees the raw stream: %v (%v), want %v", u.user, sees, err, u.sees)
		}
		nc.Close()
	}
}

func TestRefusesUnauthenticatedBeyondLoopback(t *testing.T) {
	for _, c := range []struct {
		listen string
		cfg    Config
		ok     bool
	}{
		{listen: "0.0.0.0:4222"},
		{listen: ":4222"},
		{listen: "192.0.2.1:4222"},
		{listen: "[::]:4222"},
		{listen: "0.0.0.0:4222", cfg: Config{AllowUnauthenticated: true}, ok: true},
		{listen: "0.0.0.0:4222", cfg: Config{User: "u", Password: "p"}, ok: true},
		{listen: "127.0.0.1:4222", ok: true},
		{listen: "localhost:4222", ok: true},
		{listen: "[::1]:4222", ok: true},
	} {
		c.cfg.Dir, c.cfg.Listen = "/d", c.listen
		err := c.cfg.Check()
		switch {
		case c.ok && err != nil:
			t.Errorf("%s %+v: %v", c.listen, c.cfg, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "beyond loopback") || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: %v, want one line refusing it", c.listen, err)
		}
	}
	_, err := Start(Config{Dir: t.TempDir(), Listen: "0.0.0.0:0"}, quiet())
	if err == nil || !strings.Contains(err.Error(), "--embedded-allow-unauthenticated") {
		t.Errorf("Start: %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	serverCert, serverKey := ca.issue(t, dir, "server", true)
	clientCert, clientKey := ca.issue(t, dir, "client", false)
	caFile, err := ca.WriteCA(dir, "ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t)
	otherCert, otherKey := other.issue(t, dir, "intruder", false)

	s := start(t, Config{User: "router", Password: "pw", TLSCert: serverCert, TLSKey: serverKey, TLSCA: caFile})
	// The collector's own connection needs no TLS: it is in-process.
	useJetStream(t, inProcess(t, s), "RAW")
	creds := nats.UserInfo("router", "pw")
	url := "tls://" + s.Addr().String()
	if _, err := connect(url, creds, nats.RootCAs(caFile), nats.ClientCert(clientCert, clientKey)); err != nil {
		t.Errorf("client with a certificate of the CA: %v", err)
	}
	refused(t, "client without a certificate", second(connect(url, creds, nats.RootCAs(caFile))))
	refused(t, "client with a certificate of another CA", second(connect(url, creds, nats.RootCAs(caFile), nats.ClientCert(otherCert, otherKey))))
	refused(t, "client that does not trust the server", second(connect(url, creds, nats.ClientCert(clientCert, clientKey))))
	refused(t, "plain client", second(connect("nats://"+s.Addr().String(), creds)))

	// Without a client CA, any TLS client with credentials is served.
	s2 := start(t, Config{User: "router", Password: "pw", TLSCert: serverCert, TLSKey: serverKey})
	if _, err := connect("tls://"+s2.Addr().String(), creds, nats.RootCAs(caFile)); err != nil {
		t.Errorf("TLS without client certificates: %v", err)
	}
	if err := (&Config{Dir: "/d", Listen: "127.0.0.1:1", TLSCA: caFile}).Check(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("CA without a certificate: %v", err)
	}
}

// Leaf link: the embedded server joins a hub as a leaf node in its own
// domain; the hub sources the raw stream across domains, keeping subjects.
func TestLeafSourcedByHub(t *testing.T) {
	leafPort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hubOpts := &server.Options{ServerName: "hub", Host: "127.0.0.1", Port: -1, JetStream: true, JetStreamDomain: "hub",
		StoreDir: t.TempDir(), NoSigs: true}
	hubOpts.LeafNode.Host, hubOpts.LeafNode.Port = "127.0.0.1", leafPort
	hubOpts.LeafNode.Username, hubOpts.LeafNode.Password = "edge", "leaf-pw"
	hub, err := server.NewServer(hubOpts)
	if err != nil {
		t.Fatal(err)
	}
	go hub.Start()
	defer hub.Shutdown()
	if !hub.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	if err := (&Config{Dir: "/d", Listen: "127.0.0.1:1", LeafURLs: []string{"nats-leaf://h:1"}}).Check(); err == nil || !strings.Contains(err.Error(), "--embedded-domain") {
		t.Errorf("leaf without a domain: %v", err)
	}
	edge := start(t, Config{User: "router", Password: "pw", Domain: "edge1",
		LeafURLs: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort)}, LeafUser: "edge", LeafPassword: "leaf-pw"})
	deadline := time.Now().Add(10 * time.Second)
	for hub.NumLeafNodes() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if hub.NumLeafNodes() != 1 {
		t.Fatal("the edge did not connect to the hub")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ejs, _ := jetstream.New(inProcess(t, edge))
	if _, err := ejs.CreateStream(ctx, jetstream.StreamConfig{Name: "PGJET_RAW", Subjects: []string{"pgjet.raw.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := ejs.Publish(ctx, "pgjet.raw.src", []byte{byte(i)}, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	hnc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	// The edge's stream is not the hub's: same name, other domain.
	if _, err := hjs.Stream(ctx, "PGJET_RAW"); err == nil {
		t.Error("the hub's JetStream answers for the edge's stream")
	}
	hs, err := hjs.CreateStream(ctx, jetstream.StreamConfig{Name: "PGJET_RAW_EDGE1",
		Sources: []*jetstream.StreamSource{{Name: "PGJET_RAW", External: &jetstream.ExternalStream{APIPrefix: "$JS.edge1.API"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(deadline.Add(20*time.Second)) && hs.CachedInfo().State.Msgs < 5 {
		time.Sleep(100 * time.Millisecond)
		if _, err := hs.Info(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := hs.CachedInfo().State.Msgs; n != 5 {
		t.Fatalf("hub sourced %d messages, want 5", n)
	}
	m, err := hs.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "pgjet.raw.src" {
		t.Errorf("sourced subject %q, want pgjet.raw.src", m.Subject)
	}
	t.Logf("sourced message headers: %v", m.Header)
}

// newCA is a test CA; issue writes a certificate of it (server or client)
// and its key, returning their paths.
func newCA(t *testing.T) *ca {
	t.Helper()
	c, err := testca.New("pgjet test CA")
	if err != nil {
		t.Fatal(err)
	}
	return &ca{c}
}

type ca struct{ *testca.CA }

func (c *ca) issue(t *testing.T, dir, name string, server bool) (string, string) {
	t.Helper()
	usage := testca.Client
	if server {
		usage = testca.Server
	}
	certFile, keyFile, err := c.WriteIssued(dir, name, usage)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
