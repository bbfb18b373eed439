package pipeline

import (
	"net"
	"strings"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"
)

// embedded reads spec.raw_stream.embedded: the collector's in-process
// JetStream server, its clients' authentication and TLS, and its leaf link
// to a hub.
func (d *decoder) embedded(en *yaml.Node, ep string) *Embedded {
	em := d.mapping(en, ep)
	e := &Embedded{Listen: DefaultListen}
	if dn, dp := em.get("dir"); dn != nil {
		if s, ok := d.str(dn, dp); ok {
			if s.text == "" {
				d.add(dp, "is empty: give the directory the embedded server stores its data in")
			}
			e.Dir = s.text
		}
	} else if em.ok {
		d.add(dp, "is required: the directory the embedded server stores its data in")
	}
	if ln, lp := em.get("listen"); ln != nil {
		if s, ok := d.str(ln, lp); ok {
			if _, _, err := net.SplitHostPort(s.text); err != nil {
				d.add(lp, "%s is not host:port (e.g. 127.0.0.1:4222)", s.show())
			} else {
				e.Listen = s.text
			}
		}
	}
	has := func(k string) bool { return d.has[join(ep, k)] }

	// Clients' authentication.
	d.text(em, "username", &e.Username)
	pn, pp := em.get("password")
	fn, fp := em.get("password_file")
	if pn != nil && fn != nil {
		d.add(fp, "password and password_file exclude each other: give one")
	}
	if s, ok := d.str(pn, pp); ok {
		e.Password = s.text
	}
	if s, ok := d.str(fn, fp); ok {
		if b, ok := d.readFile(s, fp); ok && pn == nil {
			e.Password = string(b)
		}
	}
	hasPassword := has("password") || has("password_file")
	switch {
	case has("username") && !hasPassword:
		d.add(join(ep, "username"), "needs password or password_file")
	case hasPassword && !has("username"):
		d.add(join(ep, "username"), "is required with a password")
	}
	if kn, kp := em.get("nkeys"); kn != nil {
		for i, k := range d.strList(kn, kp) {
			if !nkeys.IsValidPublicUserKey(k) {
				d.add(index(kp, i), "is not a user public key (U..., e.g. from nk -gen user -pubout): give public keys, never seeds")
				continue
			}
			e.NKeys = append(e.NKeys, k)
		}
		if len(e.NKeys) == 0 && kn.Kind == yaml.SequenceNode && len(kn.Content) == 0 {
			d.add(kp, "is empty: give the public keys of the users that may connect")
		}
	}
	if an, ap := em.get("accounts_file"); an != nil {
		if s, ok := d.str(an, ap); ok {
			d.checkFile(s, ap)
			e.AccountsFile = s.text
		}
	}
	d.text(em, "account", &e.Account)
	if has("account") && !has("accounts_file") {
		d.add(join(ep, "account"), "applies only with accounts_file")
	}
	var methods []string
	for _, k := range []string{"username", "nkeys", "accounts_file"} {
		if has(k) {
			methods = append(methods, k)
		}
	}
	if len(methods) > 1 {
		d.add(join(ep, methods[1]), "%s and %s are two authentication methods: give one (username and password, nkeys or accounts_file)", methods[0], methods[1])
	}
	if un, up := em.get("allow_unauthenticated"); un != nil {
		if v, ok := d.boolean(un, up); ok {
			e.AllowUnauthenticated = v
		}
	}

	// TLS for clients.
	if tn, tp := em.get("tls"); tn != nil {
		tm := d.mapping(tn, tp)
		tfile := func(key string, dst *string) {
			n, p := tm.get(key)
			if s, ok := d.str(n, p); ok {
				d.checkFile(s, p)
				*dst = s.text
			}
		}
		tfile("cert_file", &e.TLS.CertFile)
		tfile("key_file", &e.TLS.KeyFile)
		tfile("ca_file", &e.TLS.CAFile)
		if tm.ok && (!d.has[join(tp, "cert_file")] || !d.has[join(tp, "key_file")]) {
			d.add(tp, "needs cert_file and key_file (the server's certificate and key); ca_file, when given, verifies clients' certificates")
		}
		tm.rest(nil)
	}

	// The leaf link to a hub.
	if dn, dp := em.get("domain"); dn != nil {
		if s, ok := d.str(dn, dp); ok {
			if s.text == "" || strings.ContainsAny(s.text, ". *>\t") {
				d.add(dp, "%s is not a JetStream domain: a word without dots, spaces or wildcards, e.g. edge1", s.show())
			}
			e.Domain = s.text
		}
	}
	if ln, lp := em.get("leaf"); ln != nil {
		lm := d.mapping(ln, lp)
		e.Leaf = &Conn{}
		d.conn(lm, e.Leaf)
		for _, k := range []string{"token", "token_file", "nkey_file"} {
			if d.has[join(lp, k)] {
				d.add(join(lp, k), "is not supported for the leaf link: use credentials_file, or username and password")
			}
		}
		if lm.ok && !d.has[join(lp, "url")] {
			d.add(join(lp, "url"), "is required: the hub's leaf node URL, e.g. nats-leaf://hub:7422")
		}
		if !has("domain") {
			d.add(join(ep, "domain"), "is required with leaf: the edge's JetStream domain, unique among the hub's leaf nodes (its streams stay local; the hub reaches them as $JS.<domain>.API)")
		}
		lm.rest(nil)
	}
	em.rest(nil)
	return e
}
