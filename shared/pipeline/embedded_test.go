package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEmbeddedSecurityAndLeaf(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	accounts := filepath.Join(dir, "accounts.conf")
	for _, f := range []string{pw, accounts} {
		if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const pub = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
	f, e := parse(t, doc(`  raw_stream:
    embedded:
      dir: /d
      listen: 0.0.0.0:4222
      username: pgjet
      password_file: `+pw+`
      tls: {cert_file: `+pw+`, key_file: `+pw+`, ca_file: `+pw+`}
      domain: edge1
      leaf: {url: "nats-leaf://hub:7422", credentials_file: `+pw+`}
`, natsA), nil)
	expect(t, e)
	em := f.RawStream.Embedded
	if em.Username != "pgjet" || em.Password != "s3cret" || em.TLS.CAFile != pw || em.Domain != "edge1" ||
		em.Leaf == nil || em.Leaf.URL() != "nats-leaf://hub:7422" || em.Leaf.CredentialsFile != pw {
		t.Errorf("embedded: %+v, leaf %+v", em, em.Leaf)
	}
	if c, _ := f.RawConn(); c.Username != "pgjet" || c.Password != "s3cret" || c.URL() != "nats://0.0.0.0:4222" {
		t.Errorf("raw conn: %+v", c)
	}

	f, e = parse(t, doc("  raw_stream: {embedded: {dir: /d, nkeys: ["+pub+"], allow_unauthenticated: true}}\n", natsA), nil)
	expect(t, e)
	if em := f.RawStream.Embedded; len(em.NKeys) != 1 || !em.AllowUnauthenticated {
		t.Errorf("embedded: %+v", em)
	}

	_, e = parse(t, doc(`  raw_stream:
    embedded:
      dir: /d
      username: u
      nkeys: [SUAKYRHVIOREXV7EUZTBHUHL7NUMHPMAS7QMDU3GTIUWEI5LDNOXD43IZY, `+pub+`]
      accounts_file: /nonexistent.conf
      account: A
      tls: {ca_file: `+pw+`}
      domain: a.b
      leaf: {token: x, credentials_file: `+pw+`}
`, natsA), nil)
	expect(t, e,
		"spec.raw_stream.embedded.username: needs password or password_file",
		"spec.raw_stream.embedded.nkeys[0]: is not a user public key",
		`spec.raw_stream.embedded.accounts_file: cannot read file "/nonexistent.conf"`,
		"spec.raw_stream.embedded.nkeys: username and nkeys are two authentication methods",
		"spec.raw_stream.embedded.tls: needs cert_file and key_file",
		`spec.raw_stream.embedded.domain: "a.b" is not a JetStream domain`,
		"spec.raw_stream.embedded.leaf.token: is not supported for the leaf link",
		"spec.raw_stream.embedded.leaf.url: is required",
		"spec.raw_stream.embedded.leaf.credentials_file: token and credentials_file are two authentication methods",
	)

	_, e = parse(t, doc("  raw_stream: {embedded: {dir: /d, account: A, leaf: {url: nats-leaf://h:7422}}}\n", natsA), nil)
	expect(t, e,
		"spec.raw_stream.embedded.account: applies only with accounts_file",
		"spec.raw_stream.embedded.domain: is required with leaf",
	)
}
