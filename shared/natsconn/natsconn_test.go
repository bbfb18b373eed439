package natsconn

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariant: every bad combination of authentication flags is one line that
// names the flag, and no error ever contains the secret.
func TestAuthCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	account, _ := nkeys.CreateAccount()
	accountSeed, _ := account.Seed()
	pwFile := write("pw", "s3cret-pw\n")
	seedFile := write("user.nk", string(seed)+"\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // error substring, "" for success
		cfg  Config // with want "": what Apply fills in
	}{
		{name: "none", cfg: Config{}},
		{name: "user and password file", args: []string{"--nats-user", "u", "--nats-password-file", pwFile}, cfg: Config{User: "u", Password: "s3cret-pw"}},
		{name: "password from env", args: []string{"--nats-user", "u"}, env: map[string]string{"PGJET_NATS_PASSWORD": "s3cret-pw"}, cfg: Config{User: "u", Password: "s3cret-pw"}},
		{name: "token file", args: []string{"--nats-token-file", pwFile}, cfg: Config{Token: "s3cret-pw"}},
		{name: "nkey", args: []string{"--nats-nkey", seedFile}, cfg: Config{NKeyFile: seedFile}},
		{name: "user without password", args: []string{"--nats-user", "u"}, want: "--nats-user needs a password"},
		{name: "password without user", args: []string{"--nats-password", "s3cret-pw"}, want: "needs --nats-user"},
		{name: "password and file", args: []string{"--nats-user", "u", "--nats-password", "s3cret-pw", "--nats-password-file", pwFile}, want: "--nats-password and --nats-password-file exclude each other"},
		{name: "token and file", args: []string{"--nats-token", "s3cret-pw", "--nats-token-file", pwFile}, want: "--nats-token and --nats-token-file exclude each other"},
		{name: "missing password file", args: []string{"--nats-user", "u", "--nats-password-file", filepath.Join(dir, "nope")}, want: "bad --nats-password-file"},
		{name: "empty token file", args: []string{"--nats-token-file", write("empty", "\n")}, want: "the file is empty"},
		{name: "two methods", args: []string{"--nats-token", "s3cret-pw", "--nats-nkey", seedFile}, want: "--nats-token and --nats-nkey are NATS authentication methods: give one"},
		{name: "account seed", args: []string{"--nats-nkey", write("acct.nk", string(accountSeed))}, want: "bad --nats-nkey"},
		{name: "garbage seed", args: []string{"--nats-nkey", write("junk.nk", "s3cret-pw")}, want: "bad --nats-nkey"},
		{name: "missing creds", args: []string{"--creds", filepath.Join(dir, "nope.creds")}, want: "bad --creds"},
		{name: "creds without jwt", args: []string{"--creds", seedFile}, want: "bad --creds"},
		{name: "cert without key", args: []string{"--nats-tls-cert", pwFile}, want: "--nats-tls-cert and --nats-tls-key go together"},
		{name: "bad key pair", args: []string{"--nats-tls-cert", pwFile, "--nats-tls-key", pwFile}, want: "bad --nats-tls-cert/--nats-tls-key"},
		{name: "bad ca", args: []string{"--nats-tls-ca", pwFile}, want: "bad --nats-tls-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			a := AddFlags(fs)
			if err := flagenv.Parse(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			err := a.Check()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Check = %v, want an error with %q", err, tt.want)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), string(seed)) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error leaks a secret or spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := a.Apply(Config{})
			if c.User != tt.cfg.User || c.Password != tt.cfg.Password || c.Token != tt.cfg.Token || c.NKeyFile != tt.cfg.NKeyFile || c.Creds != tt.cfg.Creds {
				t.Fatalf("Apply = %+v, want %+v", c, tt.cfg)
			}
		})
	}
}

// Invariant: a server that refuses the credentials ends Connect at once with
// one line naming the method's flags and never the secret, while an
// unreachable server is retried until the context ends.
func TestAuthRefusedFailsFastUnreachableRetries(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Username: "pgjet", Password: "right-pw", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	log := slog.New(slog.DiscardHandler)

	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"wrong password", Config{URL: s.ClientURL(), User: "pgjet", Password: "wr0ng-pw"}, "refused the credentials (authorization violation): check --nats-user/--nats-password"},
		{"wrong password in url", Config{URL: strings.Replace(s.ClientURL(), "//", "//pgjet:wr0ng-pw@", 1)}, "check the credentials in the --nats URL"},
		{"token in url", Config{URL: strings.Replace(s.ClientURL(), "//", "//wr0ng-pw@", 1)}, "check the credentials in the --nats URL"},
		{"none", Config{URL: s.ClientURL()}, "the server requires authentication"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Log = log
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			nc, err := Connect(ctx, tt.cfg)
			if err == nil {
				nc.Close()
				t.Fatal("connected with wrong credentials")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s: a refusal must not be retried", d)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "wr0ng") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line with %q and no secret", msg, tt.want)
			}
		})
	}

	t.Run("right password", func(t *testing.T) {
		nc, err := Connect(context.Background(), Config{URL: s.ClientURL(), User: "pgjet", Password: "right-pw", Log: log})
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
	})

	t.Run("unreachable", func(t *testing.T) {
		port, err := pgtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		_, err = Connect(ctx, Config{URL: fmt.Sprintf("nats://pgjet:wr0ng-pw@127.0.0.1:%d", port), User: "pgjet", Password: "x", Log: log})
		if err == nil || !strings.Contains(err.Error(), "is nats-server running") || ctx.Err() == nil {
			t.Fatalf("Connect = %v before the context ended: want retries until then", err)
		}
		if strings.Contains(err.Error(), "wr0ng") {
			t.Fatalf("error leaks the password: %q", err)
		}
	})
}
