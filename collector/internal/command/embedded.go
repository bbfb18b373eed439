package command

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/pgjet/pgjet/collector/internal/embedded"
	"github.com/pgjet/pgjet/shared/pipeline"
)

// embeddedFlags are the embedded server's security and leaf flags (--embedded
// and --listen are config's).
type embeddedFlags struct {
	user, password, passwordFile   string
	nkeys                          string
	accounts, account              string
	allowUnauthenticated           bool
	tlsCert, tlsKey, tlsCA         string
	domain                         string
	leaf, leafCreds, leafUser      string
	leafPassword, leafPasswordFile string
	leafCA, leafCert, leafKey      string
	names                          []string // every flag's name
	cfg                            embedded.Config
}

func addEmbeddedFlags(fs *flag.FlagSet) *embeddedFlags {
	e := &embeddedFlags{}
	str := func(dst *string, name, usage string) {
		fs.StringVar(dst, name, "", usage)
		e.names = append(e.names, name)
	}
	str(&e.user, "embedded-user", "user that routers log in to the embedded server as, with --embedded-password-file or PGJET_EMBEDDED_PASSWORD")
	str(&e.password, "embedded-password", "password of --embedded-user: prefer PGJET_EMBEDDED_PASSWORD or --embedded-password-file, arguments show in process listings")
	str(&e.passwordFile, "embedded-password-file", "file holding the password of --embedded-user (a trailing newline is ignored)")
	str(&e.nkeys, "embedded-nkeys", "comma-separated user public keys (U...) that may log in to the embedded server (clients: --nats-nkey SEEDFILE)")
	str(&e.accounts, "embedded-accounts", "nats-server config file whose accounts, authorization and system_account the embedded server uses")
	str(&e.account, "embedded-account", "account of --embedded-accounts that holds the raw stream (default: the file's only account)")
	fs.BoolVar(&e.allowUnauthenticated, "embedded-allow-unauthenticated", false, "let the embedded server listen beyond loopback without authentication")
	e.names = append(e.names, "embedded-allow-unauthenticated")
	str(&e.tlsCert, "embedded-tls-cert", "certificate (PEM) of the embedded server: clients must use TLS")
	str(&e.tlsKey, "embedded-tls-key", "private key (PEM) of --embedded-tls-cert")
	str(&e.tlsCA, "embedded-tls-ca", "CA certificates (PEM) that clients' certificates must be signed by (clients must present one)")
	str(&e.domain, "embedded-domain", "JetStream domain of the embedded server (required with --embedded-leaf), e.g. edge1")
	str(&e.leaf, "embedded-leaf", "hub URL(s), comma-separated (nats-leaf://hub:7422): the embedded server joins that hub as a leaf node")
	str(&e.leafCreds, "embedded-leaf-creds", "credentials file the leaf link logs in to the hub with")
	str(&e.leafUser, "embedded-leaf-user", "user the leaf link logs in to the hub as, with --embedded-leaf-password-file or PGJET_EMBEDDED_LEAF_PASSWORD")
	str(&e.leafPassword, "embedded-leaf-password", "password of --embedded-leaf-user: prefer PGJET_EMBEDDED_LEAF_PASSWORD or --embedded-leaf-password-file")
	str(&e.leafPasswordFile, "embedded-leaf-password-file", "file holding the password of --embedded-leaf-user")
	str(&e.leafCA, "embedded-leaf-tls-ca", "CA certificates (PEM) that verify the hub's leaf node certificate")
	str(&e.leafCert, "embedded-leaf-tls-cert", "client certificate (PEM) of the leaf link, with --embedded-leaf-tls-key")
	str(&e.leafKey, "embedded-leaf-tls-key", "private key (PEM) of --embedded-leaf-tls-cert")
	return e
}

// applyFile sets the flags not given from the pipeline file's embedded
// section.
func (e *embeddedFlags) applyFile(given map[string]bool, em *pipeline.Embedded) {
	set := func(flag string, dst *string, v string) {
		if !given[flag] {
			*dst = v
		}
	}
	set("embedded-user", &e.user, em.Username)
	if !given["embedded-password"] && !given["embedded-password-file"] {
		e.password = em.Password
	}
	set("embedded-nkeys", &e.nkeys, strings.Join(em.NKeys, ","))
	set("embedded-accounts", &e.accounts, em.AccountsFile)
	set("embedded-account", &e.account, em.Account)
	if !given["embedded-allow-unauthenticated"] {
		e.allowUnauthenticated = em.AllowUnauthenticated
	}
	set("embedded-tls-cert", &e.tlsCert, em.TLS.CertFile)
	set("embedded-tls-key", &e.tlsKey, em.TLS.KeyFile)
	set("embedded-tls-ca", &e.tlsCA, em.TLS.CAFile)
	set("embedded-domain", &e.domain, em.Domain)
	if l := em.Leaf; l != nil {
		set("embedded-leaf", &e.leaf, l.URL())
		set("embedded-leaf-creds", &e.leafCreds, l.CredentialsFile)
		set("embedded-leaf-user", &e.leafUser, l.Username)
		if !given["embedded-leaf-password"] && !given["embedded-leaf-password-file"] {
			e.leafPassword = l.Password
		}
		set("embedded-leaf-tls-ca", &e.leafCA, l.TLS.CAFile)
		set("embedded-leaf-tls-cert", &e.leafCert, l.TLS.CertFile)
		set("embedded-leaf-tls-key", &e.leafKey, l.TLS.KeyFile)
	}
}

// check builds and validates the embedded server's config: dir and listen
// are --embedded and --listen; given are the flags set.
func (e *embeddedFlags) check(dir, listen string, given map[string]bool) error {
	if dir == "" {
		var set []string
		for _, n := range e.names {
			if given[n] {
				set = append(set, "--"+n)
			}
		}
		if len(set) > 0 {
			return fmt.Errorf("%s: only with --embedded", strings.Join(set, ", "))
		}
		return nil
	}
	password, err := fileSecret(e.password, e.passwordFile, "embedded-password")
	if err != nil {
		return err
	}
	leafPassword, err := fileSecret(e.leafPassword, e.leafPasswordFile, "embedded-leaf-password")
	if err != nil {
		return err
	}
	e.cfg = embedded.Config{
		Dir: dir, Listen: listen,
		User: e.user, Password: password,
		NKeys:        split(e.nkeys),
		AccountsFile: e.accounts, Account: e.account,
		AllowUnauthenticated: e.allowUnauthenticated,
		TLSCert:              e.tlsCert, TLSKey: e.tlsKey, TLSCA: e.tlsCA,
		Domain:   e.domain,
		LeafURLs: split(e.leaf), LeafCreds: e.leafCreds, LeafUser: e.leafUser, LeafPassword: leafPassword,
		LeafCA: e.leafCA, LeafCert: e.leafCert, LeafKey: e.leafKey,
	}
	return e.cfg.Check()
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fileSecret is the value of --name or the content of --name-file.
func fileSecret(value, file, name string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("--%s and --%s-file exclude each other: give one", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("bad --%s-file: %w", name, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("bad --" + name + "-file " + file + ": the file is empty")
	}
	return s, nil
}
