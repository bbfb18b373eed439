package pipeline

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/testca"
)

// authMethod is one nats-server that requires exactly one way of proving
// who the client is, and what pgjet and a reader are given for it.
type authMethod struct {
	name    string
	conf    string // nats-server config lines
	col, rt launch
	reader  []nats.Option // for the test's own client
	secrets []string      // never in any output
	bad     []badCredential
}

// launch is what a binary gets besides --nats: flags and PGJET_* variables.
type launch struct{ args, env []string }

// badCredential is a way to get the method wrong, given to both binaries;
// want is what their one line must say.
type badCredential struct {
	name     string
	userinfo string // put into the --nats URL, user:password@ or token@
	launch
	want string
}

// Invariants, for user/password, token, nkey, JWT credentials (operator mode)
// and TLS with client certificates, each against a nats-server requiring
// exactly that method:
//   - collector and router given the method's flags (or PGJET_* variables, or
//     -file flags) carry a committed INSERT into the output stream;
//   - given a wrong or missing credential, or a TLS certificate the other side
//     does not trust, each of them exits non-zero within seconds instead of
//     retrying, printing exactly one line that names what to check, with no
//     stack trace (shared/natsconn's tests check that an unreachable server
//     is still retried);
//   - no output, good or bad, ever contains a password, token, seed or key.
func TestAuthMethods(t *testing.T) {
	dir := t.TempDir()
	pg := pgtest.Run(t)
	conn := pg.Connect(t)

	var methods []authMethod
	methods = append(methods, userPassword(t, dir), token(t, dir), nkey(t, dir), creds(t, dir), clientTLS(t, dir))
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			start := time.Now()
			e := &env{t: t, pg: pg, conn: conn, nats: harness.StartNATSWith(t, "", m.conf)}
			table := "auth_" + m.name
			e.exec(fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, note text)`, table))
			col := harness.StartProcess(t, "pgjet-collector", append([]string{"--dsn", pg.DSN(""), "--slot", table, "--publication", table,
				"--tables", "public." + table, "--nats", e.nats.URL(), "--source", "e2e"}, m.col.args...), m.col.env)
			rt := harness.StartProcess(t, "pgjet-router", append([]string{"--nats", e.nats.URL()}, m.rt.args...), m.rt.env)
			if !col.WaitForLog("msg=streaming", 30*time.Second) {
				t.Fatal("collector did not start streaming")
			}
			if !rt.WaitForLog("msg=relaying", 30*time.Second) {
				t.Fatal("router did not start relaying")
			}
			marker := "committed through " + m.name
			e.exec(fmt.Sprintf(`INSERT INTO %s VALUES (1, $1)`, table), marker)
			waitForEvent(t, e.nats, m.reader, "postgres.public."+table+".insert", marker)
			for _, p := range []*harness.Proc{col, rt} {
				noSecret(t, p, m.secrets)
			}

			for _, b := range m.bad {
				t.Run(b.name, func(t *testing.T) {
					url := e.nats.URL()
					if b.userinfo != "" {
						url = strings.Replace(url, "//", "//"+b.userinfo+"@", 1)
					}
					// Both mains, at once: each wires the flags on its own.
					procs := []*harness.Proc{
						harness.StartProcess(t, "pgjet-collector", append([]string{"--dsn", pg.DSN(""), "--slot", table, "--nats", url}, b.args...), b.env),
						harness.StartProcess(t, "pgjet-router", append([]string{"--nats", url}, b.args...), b.env),
					}
					for _, p := range procs {
						oneLineFailure(t, p, b.want, m.secrets)
					}
				})
			}
			t.Logf("%s: %s", m.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// waitForEvent waits for the output stream's last event on subject to carry
// marker, reading as an authenticated client.
func waitForEvent(t *testing.T, n *harness.NATS, opts []nats.Option, subject, marker string) {
	t.Helper()
	_, js := n.Connect(t, opts...)
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, "PGJET_EVENTS")
		if err == nil {
			m, err := s.GetLastMsgForSubject(ctx, subject)
			if err == nil && strings.Contains(string(m.Data), marker) {
				cancel()
				return
			}
			last = err
		} else {
			last = err
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no event with %q on %s within 30 s (last error: %v)", marker, subject, last)
}

func oneLineFailure(t *testing.T, p *harness.Proc, want string, secrets []string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10 s after a refused credential: it must not retry\n%s", p.Name, p.Log())
	}
	if p.Wait() == nil {
		t.Fatalf("%s exited with status 0, want non-zero", p.Name)
	}
	out := strings.TrimSpace(p.Log())
	if strings.Contains(out, "\n") || !strings.HasPrefix(out, p.Name+": ") || !strings.Contains(out, want) {
		t.Fatalf("%s printed, want one line with %q:\n%s", p.Name, want, out)
	}
	noSecret(t, p, append(secrets, "goroutine ", "panic"))
	t.Logf("%s: %s", p.Name, out)
}

func noSecret(t *testing.T, p *harness.Proc, secrets []string) {
	t.Helper()
	out := p.Log()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Fatalf("%s output contains %q:\n%s", p.Name, s, out)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func userPassword(t *testing.T, dir string) authMethod {
	const pw, wrong = "pw-Ohz4aiqu", "pw-wrong-Ee7x"
	refused := "refused the credentials (authorization violation): check --nats-user/--nats-password"
	return authMethod{
		name: "user_password",
		conf: fmt.Sprintf("authorization { user: pgjet, password: %q }", pw),
		// The collector reads the password from the environment, the router from a file.
		col:     launch{args: []string{"--nats-user", "pgjet"}, env: []string{"PGJET_NATS_PASSWORD=" + pw}},
		rt:      launch{args: []string{"--nats-user", "pgjet", "--nats-password-file", writeFile(t, dir, "password", pw+"\n")}},
		reader:  []nats.Option{nats.UserInfo("pgjet", pw)},
		secrets: []string{pw, wrong},
		bad: []badCredential{
			{name: "wrong password", launch: launch{args: []string{"--nats-user", "pgjet", "--nats-password", wrong}}, want: refused},
			{name: "wrong password file", launch: launch{args: []string{"--nats-user", "pgjet", "--nats-password-file", writeFile(t, dir, "wrong-password", wrong)}}, want: refused},
			// The client uses a password in the URL: it is redacted like any other.
			{name: "wrong password in url", userinfo: "pgjet:" + wrong, want: "refused the credentials (authorization violation): check the credentials in the --nats URL"},
			{name: "no credentials", want: "the server requires authentication: give --nats-user/--nats-password"},
		},
	}
}

func token(t *testing.T, dir string) authMethod {
	const tok, wrong = "tok-Xae3shoo", "tok-wrong-Aing8"
	return authMethod{
		name: "token",
		conf: fmt.Sprintf("authorization { token: %q }", tok),
		// The collector reads the token from a file named in the environment;
		// the router gets it as a plain flag, which works but shows in
		// process listings.
		col:     launch{env: []string{"PGJET_NATS_TOKEN_FILE=" + writeFile(t, dir, "token", tok+"\n")}},
		rt:      launch{args: []string{"--nats-token", tok}},
		reader:  []nats.Option{nats.Token(tok)},
		secrets: []string{tok, wrong},
		bad: []badCredential{
			{name: "wrong token", launch: launch{env: []string{"PGJET_NATS_TOKEN=" + wrong}}, want: "refused the credentials (authorization violation): check --nats-token"},
			{name: "wrong token in url", userinfo: wrong, want: "refused the credentials (authorization violation): check the credentials in the --nats URL"},
		},
	}
}

func nkey(t *testing.T, dir string) authMethod {
	pub, seed := newUser(t)
	_, otherSeed := newUser(t)
	seedFile := writeFile(t, dir, "user.nk", seed+"\n")
	reader, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return authMethod{
		name:    "nkey",
		conf:    fmt.Sprintf("authorization { users: [ { nkey: %s } ] }", pub),
		col:     launch{args: []string{"--nats-nkey", seedFile}},
		rt:      launch{env: []string{"PGJET_NATS_NKEY=" + seedFile}},
		reader:  []nats.Option{reader},
		secrets: []string{seed, otherSeed},
		bad: []badCredential{
			{name: "unknown nkey", launch: launch{args: []string{"--nats-nkey", writeFile(t, dir, "other.nk", otherSeed)}}, want: "refused the credentials (authorization violation): check --nats-nkey"},
		},
	}
}

// newUser returns a user nkey's public key and seed.
func newUser(t *testing.T) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	return pub, string(seed)
}

// creds runs the server in operator mode: an operator, its system account and
// an application account with JetStream, preloaded in a memory resolver, and
// a user of that account in a .creds file (what nsc hands out).
func creds(t *testing.T, dir string) authMethod {
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	sys, _ := nkeys.CreateAccount()
	sysPub, _ := sys.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "pgjet-e2e"
	oc.SystemAccount = sysPub
	opJWT := must(oc.Encode(op))
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT := must(sc.Encode(op))

	account := func(name string) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		// Without JetStream limits an account has no JetStream.
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		return kp, pub, must(ac.Encode(op))
	}
	userCreds := func(acct nkeys.KeyPair, file string) (string, string) {
		pub, seed := newUser(t)
		uc := jwt.NewUserClaims(pub)
		uc.Name = "pgjet"
		b, err := jwt.FormatUserConfig(must(uc.Encode(acct)), []byte(seed))
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, file, string(b)), seed
	}
	app, appPub, appJWT := account("APP")
	// An account this server never heard of: its users are refused.
	stranger, _, _ := account("STRANGER")
	good, seed := userCreds(app, "user.creds")
	bad, badSeed := userCreds(stranger, "stranger.creds")

	return authMethod{
		name: "creds",
		conf: fmt.Sprintf("operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
			opJWT, sysPub, sysPub, sysJWT, appPub, appJWT),
		col:     launch{args: []string{"--creds", good}},
		rt:      launch{env: []string{"PGJET_CREDS=" + good}},
		reader:  []nats.Option{nats.UserCredentials(good)},
		secrets: []string{seed, badSeed},
		bad: []badCredential{
			{name: "user of an unknown account", launch: launch{args: []string{"--creds", bad}}, want: "refused the credentials (authorization violation): check --creds"},
		},
	}
}

// clientTLS requires TLS with a client certificate signed by the test's CA.
func clientTLS(t *testing.T, dir string) authMethod {
	ca := newCA(t, "pgjet e2e CA")
	other := newCA(t, "some other CA")
	caFile := writeFile(t, dir, "ca.pem", ca.certPEM)
	srvCert, srvKey := ca.issue(t, "nats-server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, "pgjet", x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := other.issue(t, "pgjet", x509.ExtKeyUsageClientAuth)
	files := func(prefix, cert, key string) (string, string) {
		return writeFile(t, dir, prefix+".pem", cert), writeFile(t, dir, prefix+".key", key)
	}
	srvCertFile, srvKeyFile := files("server", srvCert, srvKey)
	cliCertFile, cliKeyFile := files("client", cliCert, cliKey)
	strangerCertFile, strangerKeyFile := files("stranger", strangerCert, strangerKey)
	keyBody := func(k string) string { return strings.Split(k, "\n")[1] }
	return authMethod{
		name:    "tls",
		conf:    fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", srvCertFile, srvKeyFile, caFile),
		col:     launch{args: []string{"--nats-tls-ca", caFile, "--nats-tls-cert", cliCertFile, "--nats-tls-key", cliKeyFile}},
		rt:      launch{args: []string{"--nats-tls-ca", caFile, "--nats-tls-cert", cliCertFile, "--nats-tls-key", cliKeyFile}},
		reader:  []nats.Option{nats.RootCAs(caFile), nats.ClientCert(cliCertFile, cliKeyFile)},
		secrets: []string{keyBody(cliKey), keyBody(strangerKey)},
		bad: []badCredential{
			{name: "no client certificate", launch: launch{args: []string{"--nats-tls-ca", caFile}},
				// The cause is the server's alert or its close, whichever the client sees first.
				want: "the server requires a client certificate: give --nats-tls-cert and --nats-tls-key"},
			{name: "client certificate of an untrusted CA", launch: launch{args: []string{"--nats-tls-ca", caFile, "--nats-tls-cert", strangerCertFile, "--nats-tls-key", strangerKeyFile}},
				want: "check --nats-tls-cert/--nats-tls-key: the server wants a client certificate signed by a CA it trusts"},
			{name: "server CA not trusted", launch: launch{args: []string{"--nats-tls-cert", cliCertFile, "--nats-tls-key", cliKeyFile}},
				want: "presented a TLS certificate this client does not trust (tls: failed to verify certificate: x509: certificate signed by unknown authority): check --nats-tls-ca"},
		},
	}
}

// testCA is the tests' CA with PEM strings, the form the tests write.
type testCA struct {
	*testca.CA
	certPEM string
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := testca.New(name)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{CA: ca, certPEM: string(ca.PEM)}
}

// issue returns a certificate for 127.0.0.1 and its key, both PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	cert, key, err := ca.Issue(name, usage)
	if err != nil {
		t.Fatal(err)
	}
	return string(cert), string(key)
}
