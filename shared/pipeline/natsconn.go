package pipeline

import (
	"strings"

	"github.com/pgjet/pgjet/shared/natsconn"
)

// NATS is the connection c describes, for natsconn.Connect.
func (c Conn) NATS() natsconn.Config {
	return natsconn.Config{
		URL:      strings.Join(c.URLs, ","),
		User:     c.Username,
		Password: c.Password,
		Token:    c.Token,
		NKeyFile: c.NKeyFile,
		Creds:    c.CredentialsFile,
		TLS:      natsconn.TLSFiles{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile},
	}
}
