package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmbeddedFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--dsn", "postgres://u@h/db", "--embedded", dir}
	for _, c := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "loopback without auth", args: []string{"--listen", "127.0.0.1:4222"}},
		{name: "beyond loopback without auth", args: []string{"--listen", "0.0.0.0:4222"}, wantErr: "reaches beyond loopback and the embedded server has no authentication"},
		{name: "beyond loopback, allowed", args: []string{"--listen", "0.0.0.0:4222", "--embedded-allow-unauthenticated"}},
		{name: "beyond loopback with a user", args: []string{"--listen", "0.0.0.0:4222", "--embedded-user", "r", "--embedded-password-file", pw}},
		{name: "user without password", args: []string{"--embedded-user", "r"}, wantErr: "--embedded-user needs a password"},
		{name: "two methods", args: []string{"--embedded-user", "r", "--embedded-password-file", pw, "--embedded-nkeys", "UX"}, wantErr: "give one"},
		{name: "leaf without domain", args: []string{"--embedded-leaf", "nats-leaf://h:7422"}, wantErr: "--embedded-leaf needs --embedded-domain"},
		{name: "leaf", args: []string{"--embedded-leaf", "nats-leaf://h:7422", "--embedded-domain", "edge1", "--embedded-leaf-user", "e", "--embedded-leaf-password-file", pw}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(append(append([]string{}, base...), c.args...))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(strings.Join(c.args, " "), "--embedded-user") && cfg.emb.cfg.Password != "s3cret" {
					t.Errorf("password %q", cfg.emb.cfg.Password)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.wantErr)
			}
		})
	}
	_, err := parseConfig([]string{"--dsn", "postgres://u@h/db", "--nats", "nats://h:4222", "--embedded-user", "r"})
	if err == nil || !strings.Contains(err.Error(), "--embedded-user: only with --embedded") {
		t.Errorf("embedded flag with --nats: %v", err)
	}
}

func TestEmbeddedFromPipelineFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "p.yaml")
	text := `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: t}
spec:
  source: {type: postgres, config: {dsn: "postgres://u@h/db"}}
  raw_stream:
    embedded:
      dir: ` + dir + `
      listen: 0.0.0.0:4222
      username: router
      password_file: ` + pw + `
      domain: edge1
      leaf: {url: "nats-leaf://hub:7422"}
  sinks:
    - {type: stdout, config: {id: s}}
`
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.emb.cfg
	if e.User != "router" || e.Password != "s3cret" || e.Domain != "edge1" || len(e.LeafURLs) != 1 || e.Listen != "0.0.0.0:4222" {
		t.Errorf("embedded config from the file: %+v", e)
	}
	// A flag wins over the file.
	if _, err := parseConfig([]string{"--config", file, "--embedded-user", ""}); err == nil || !strings.Contains(err.Error(), "password needs --embedded-user") {
		t.Errorf("user cleared by a flag: %v", err)
	}
}
