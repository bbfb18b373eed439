package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/shared/testca"
)

// Options configure StartWith beyond Start's defaults.
type Options struct {
	// Conf lines are appended to postgresql.conf, as Start's extraConf.
	Conf []string
	// TLS turns ssl on, with a server certificate for 127.0.0.1 and
	// localhost signed by a CA made for this cluster: clients verify it with
	// sslmode=verify-full sslrootcert=CAFile().
	TLS bool
	// HBA lines go before pg_hba.conf's own lines, which trust every local
	// connection: the first line matching a connection decides, so e.g.
	// "host all pgjet 127.0.0.1/32 scram-sha-256" makes role pgjet give its
	// password.
	HBA []string
}

// StartWith creates and starts a cluster as Start does, then applies o.
func StartWith(o Options) (*Cluster, error) {
	c, err := Start(o.Conf...)
	if err != nil {
		return nil, err
	}
	if !o.TLS && len(o.HBA) == 0 {
		return c, nil
	}
	if err := c.apply(o); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// RunWith starts a cluster with o for a test and stops it when the test ends.
func RunWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	c, err := StartWith(o)
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// CAFile is the PEM file of the CA that signed the server's certificate
// (with Options.TLS).
func (c *Cluster) CAFile() string { return filepath.Join(c.Dir, "ca.pem") }

func (c *Cluster) apply(o Options) error {
	if len(o.HBA) > 0 {
		hba := filepath.Join(c.dataDir(), "pg_hba.conf")
		old, err := os.ReadFile(hba)
		if err != nil {
			return err
		}
		// Rewriting the file in place keeps its owner, the server's OS user.
		if err := os.WriteFile(hba, []byte(strings.Join(o.HBA, "\n")+"\n"+string(old)), 0o600); err != nil {
			return err
		}
	}
	if o.TLS {
		if err := c.writeCerts(); err != nil {
			return fmt.Errorf("tls certificates: %w", err)
		}
		for _, sql := range []string{"ALTER SYSTEM SET ssl = on", "ALTER SYSTEM SET ssl_cert_file = 'server.crt'", "ALTER SYSTEM SET ssl_key_file = 'server.key'"} {
			if err := c.Exec(context.Background(), sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
	}
	if err := c.StopMode("fast"); err != nil {
		return err
	}
	return c.Restart()
}

// writeCerts writes ca.pem into the cluster's directory and server.crt and
// server.key (mode 0600: the server refuses a key others can read) into its
// data directory, owned by the server's OS user.
func (c *Cluster) writeCerts() error {
	ca, err := testca.New("pgtest CA " + filepath.Base(c.Dir))
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue("localhost", testca.Server)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		pem  []byte
		mode os.FileMode
	}{
		{c.CAFile(), ca.PEM, 0o644},
		{filepath.Join(c.dataDir(), "server.crt"), cert, 0o644},
		{filepath.Join(c.dataDir(), "server.key"), key, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.pem, f.mode); err != nil {
			return err
		}
	}
	return c.chownToOwner()
}
