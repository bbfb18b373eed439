package pipeline

import "github.com/pgjet/pgjet/shared/natsconn"

// NATS is c as natsconn's configuration; Name, Log and Options are the
// caller's to set.
func (c Conn) NATS() natsconn.Config {
	return natsconn.Config{
		URL:      c.URL(),
		User:     c.Username,
		Password: c.Password,
		Token:    c.Token,
		NKeyFile: c.NKeyFile,
		Creds:    c.CredentialsFile,
		TLS:      natsconn.TLSFiles{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile},
	}
}
