package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// FlagNames are the names of the flags AddFlags registers, in the order a
// --help shows them.
var FlagNames = []string{"creds", "nats-user", "nats-password", "nats-password-file", "nats-token", "nats-token-file", "nats-nkey",
	"nats-tls-ca", "nats-tls-cert", "nats-tls-key"}

// FileFlags are those of FlagNames whose value is a path.
var FileFlags = []string{"creds", "nats-password-file", "nats-token-file", "nats-nkey", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"}

// Auth holds the NATS authentication and TLS flags. Call Check after
// parsing, then Apply.
type Auth struct {
	Creds        string
	User         string
	Password     string
	PasswordFile string
	Token        string
	TokenFile    string
	NKey         string
	TLSCA        string
	TLSCert      string
	TLSKey       string

	password, token string // from the flag, the environment or the file
}

// AddFlags registers the NATS authentication and TLS flags on fs. Like every
// flag they can be given as PGJET_<NAME> (shared/flagenv): secrets belong
// there or in the -file flags, since arguments show in process listings.
func AddFlags(fs *flag.FlagSet) *Auth {
	a := &Auth{}
	fs.StringVar(&a.Creds, "creds", "", "NATS credentials file (user JWT and nkey seed, e.g. from nsc)")
	fs.StringVar(&a.User, "nats-user", "", "NATS user, with --nats-password-file or PGJET_NATS_PASSWORD")
	fs.StringVar(&a.Password, "nats-password", "", "NATS password: prefer PGJET_NATS_PASSWORD or --nats-password-file, arguments show in process listings")
	fs.StringVar(&a.PasswordFile, "nats-password-file", "", "file holding the NATS password (a trailing newline is ignored)")
	fs.StringVar(&a.Token, "nats-token", "", "NATS token: prefer PGJET_NATS_TOKEN or --nats-token-file, arguments show in process listings")
	fs.StringVar(&a.TokenFile, "nats-token-file", "", "file holding the NATS token (a trailing newline is ignored)")
	fs.StringVar(&a.NKey, "nats-nkey", "", "NATS nkey user seed file (SU...)")
	fs.StringVar(&a.TLSCA, "nats-tls-ca", "", "CA certificates (PEM) that verify the NATS server, instead of the system's")
	fs.StringVar(&a.TLSCert, "nats-tls-cert", "", "client certificate (PEM) for NATS, with --nats-tls-key")
	fs.StringVar(&a.TLSKey, "nats-tls-key", "", "private key (PEM) of --nats-tls-cert")
	return a
}

// Given lists the flags of a that are set, as --name.
func (a *Auth) Given() []string {
	var given []string
	for _, f := range []struct {
		name, v string
	}{{"creds", a.Creds}, {"nats-user", a.User}, {"nats-password", a.Password}, {"nats-password-file", a.PasswordFile},
		{"nats-token", a.Token}, {"nats-token-file", a.TokenFile}, {"nats-nkey", a.NKey},
		{"nats-tls-ca", a.TLSCA}, {"nats-tls-cert", a.TLSCert}, {"nats-tls-key", a.TLSKey}} {
		if f.v != "" {
			given = append(given, "--"+f.name)
		}
	}
	return given
}

// Check validates the combination and reads the files, so that a mistake is
// one line at start rather than a refused connection later. Its errors name
// the flag and never include a secret.
func (a *Auth) Check() error {
	var err error
	if a.password, err = secret(a.Password, a.PasswordFile, "nats-password"); err != nil {
		return err
	}
	if a.token, err = secret(a.Token, a.TokenFile, "nats-token"); err != nil {
		return err
	}
	switch {
	case a.User != "" && a.password == "":
		return errors.New("--nats-user needs a password: give --nats-password-file or PGJET_NATS_PASSWORD")
	case a.User == "" && a.password != "":
		return errors.New("a NATS password needs --nats-user")
	}
	var methods []string
	for _, m := range []struct{ name, v string }{{"--nats-user", a.User}, {"--nats-token", a.token}, {"--nats-nkey", a.NKey}, {"--creds", a.Creds}} {
		if m.v != "" {
			methods = append(methods, m.name)
		}
	}
	if len(methods) > 1 {
		return fmt.Errorf("%s are NATS authentication methods: give one", strings.Join(methods, " and "))
	}
	if a.NKey != "" {
		if err := checkSeed(a.NKey); err != nil {
			return err
		}
	}
	if a.Creds != "" {
		if err := checkCreds(a.Creds); err != nil {
			return err
		}
	}
	if a.TLSCert != "" && a.TLSKey == "" || a.TLSCert == "" && a.TLSKey != "" {
		return errors.New("--nats-tls-cert and --nats-tls-key go together: give both")
	}
	_, err = a.tls().config()
	return err
}

// Apply returns c with the authentication and TLS of the flags checked by
// Check (c unchanged for a nil a).
func (a *Auth) Apply(c Config) Config {
	if a == nil {
		return c
	}
	c.User, c.Password = a.User, a.password
	c.Token = a.token
	c.NKeyFile = a.NKey
	c.Creds = a.Creds
	c.TLS = a.tls()
	return c
}

func (a *Auth) tls() TLSFiles {
	return TLSFiles{CAFile: a.TLSCA, CertFile: a.TLSCert, KeyFile: a.TLSKey}
}

// secret is the value of --name or the content of --name-file.
func secret(value, file, name string) (string, error) {
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
		return "", fmt.Errorf("bad --%s-file %s: the file is empty", name, file)
	}
	return s, nil
}

func checkSeed(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("bad --nats-nkey: %w", err)
	}
	// nkeys' errors are fixed strings: they never echo the seed.
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("bad --nats-nkey %s: %v (want a user seed, SU...)", file, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return fmt.Errorf("bad --nats-nkey %s: not a user seed (SU...)", file)
	}
	return nil
}

func checkCreds(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("bad --creds: %w", err)
	}
	// Without the armour ParseDecoratedJWT returns the whole file: decoding
	// it as a user JWT tells a creds file from anything else.
	token, err := nkeys.ParseDecoratedJWT(b)
	if err == nil {
		_, err = jwt.DecodeUserClaims(token)
	}
	if err != nil {
		return fmt.Errorf("bad --creds %s: no user JWT in it (want a .creds file, e.g. from nsc)", file)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("bad --creds %s: no user nkey seed in it: %v", file, err)
	}
	kp.Wipe()
	return nil
}
