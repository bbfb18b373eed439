// Package pipeline loads and validates a pipeline file, the YAML file both
// pgjet binaries read (--config): the collector its source, raw stream,
// batch and commit policy, routers the raw stream and the sinks. Its shape
// is DeltaForge's (apiVersion deltaforge/v1 files load as written) with
// pgjet's own keys added.
//
// Values may use ${VAR}, ${VAR:-default} (also used when VAR is empty) and
// $$ for a literal $. Expansion happens inside each scalar value after the
// YAML is parsed, so a variable can never change the file's structure: a
// value holding ": ", "#" or a newline stays one string. Keys are not
// expanded. A value that came from the environment, a password, a token
// and a DSN are never shown in a problem's message.
//
// Loading never stops at the first problem: Load and Parse return the File
// as far as it could be read, with defaults applied, and an *Errors listing
// every problem with its path (spec.sinks[1].config.subject). Each process
// keeps the problems of the parts it reads (Errors.For) and adds its own
// (subject templates, envelope settings) at the same paths.
//
// Files the pipeline names (password_file, token_file, hash_key.file, TLS
// and credentials files) are read or checked while loading, so that their
// problems come with the others; relative names are relative to the
// working directory, as on the command line.
package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgjet/pgjet/shared/memlimit"
	"github.com/pgjet/pgjet/shared/wire"
	"go.yaml.in/yaml/v3"
)

// Load reads and validates the file at path; lookup resolves ${VAR} (the
// mains pass os.LookupEnv). The error is nil or an *Errors; the File is
// never nil.
func Load(path string, lookup func(string) (string, bool)) (*File, error) {
	return LoadWith(path, lookup, nil)
}

// Parse validates a pipeline file's content; see Load.
func Parse(data []byte, lookup func(string) (string, bool)) (*File, error) {
	return ParseWith(data, lookup, nil)
}

// LoadWith is Load with the overrides ov (flags) applied to the file's
// structure before it is validated.
func LoadWith(path string, lookup func(string) (string, bool), ov *Overrides) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		f := empty()
		f.problems.Add("", "cannot read the pipeline file: %v", err)
		return f, f.problems
	}
	return ParseWith(data, lookup, ov)
}

// ParseWith is Parse with the overrides ov applied to the structure of
// data before it is validated: data may be a file the caller builds for
// flags alone (see Overrides).
func ParseWith(data []byte, lookup func(string) (string, bool), ov *Overrides) (*File, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	d := newDecoder(lookup)
	f := d.parse(data, ov)
	return f, f.problems.Err()
}

// empty is a File of defaults alone, for a file that could not be read.
func empty() *File {
	d := newDecoder(func(string) (string, bool) { return "", false })
	f := d.file(nil)
	f.problems = &Errors{at: f.at}
	return f
}

func newDecoder(lookup func(string) (string, bool)) *decoder {
	d := &decoder{lookup: lookup, at: map[string]pos{}, has: map[string]bool{}, budget: 100000, flags: map[*yaml.Node]string{}}
	d.errs = &Errors{at: d.at, flags: map[string]string{}}
	return d
}

func (d *decoder) parse(data []byte, ov *Overrides) *File {
	var root *yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.add("", "the file is empty: a pipeline has apiVersion, kind, metadata and spec")
	case err != nil:
		d.add("", "%v", err)
	default:
		if len(doc.Content) > 0 {
			root = doc.Content[0]
		}
		var next yaml.Node
		if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
			d.add("", "the file holds more than one YAML document (---): put one pipeline in a file")
		}
		var err error
		if root, err = ov.apply(root, d.flags, d.errs.flags); err != nil {
			d.add("", "%v", err)
		}
	}
	f := d.file(root)
	d.errs.rawFrom = f.rawFrom
	f.problems = d.errs
	return f
}

// file reads the whole tree; a nil root yields the defaults alone.
func (d *decoder) file(root *yaml.Node) *File {
	f := &File{at: d.at, has: d.has}
	m := d.mapping(root, "")
	if m.ok {
		if n, p := m.get("apiVersion"); n == nil {
			d.add(p, "is required: apiVersion: %s", APIVersion)
		} else if s, ok := d.str(n, p); ok {
			switch s.text {
			case APIVersion:
			case CompatAPIVersion:
				f.Compat = true
			default:
				d.add(p, "unknown value %s: use %s (or %s for a DeltaForge file)", s.show(), APIVersion, CompatAPIVersion)
			}
			f.APIVersion = s.text
		}
		if n, p := m.get("kind"); n == nil {
			d.add(p, "is required: kind: %s", Kind)
		} else {
			d.oneOf(n, p, Kind)
		}
	}
	d.metadata(m, &f.Metadata)
	spec, specPath := m.get("spec")
	if spec == nil && m.ok {
		d.add(specPath, "is required: it holds source, sinks and the other sections")
	}
	s := d.mapping(spec, specPath)
	d.source(s, &f.Source)
	d.rawStream(s, &f.RawStream)
	d.sinks(f, s)
	d.batch(s, &f.Batch)
	d.commitPolicy(s, &f.CommitPolicy)
	d.metrics(s, &f.Metrics)
	s.rest(nil)
	m.rest(nil)
	// By the keys given, not the values read: a url whose variable is unset
	// must not hand the sink's connection problems to the collector.
	if !d.has["spec.raw_stream.url"] && !d.has["spec.raw_stream.embedded"] {
		for _, sk := range f.Sinks {
			if sk.Type == TypeNATS {
				f.rawFrom = sk.Path
				break
			}
		}
	}
	return f
}

func (d *decoder) metadata(top *mapReader, md *Metadata) {
	n, p := top.get("metadata")
	if n == nil && top.ok {
		d.add(p, "is required: metadata: {name: ...}")
	}
	m := d.mapping(n, p)
	if n, p := m.get("name"); n != nil {
		if v, ok := d.name(n, p); ok {
			md.Name = v
		}
	} else if m.ok {
		d.add(p, "is required: it names the pipeline and, unless set, each sink's durable consumer (<name>-<sink id>)")
	}
	d.text(m, "tenant", &md.Tenant)
	d.text(m, "description", &md.Description)
	if n, p := m.get("labels"); n != nil {
		lm := d.mapping(n, p)
		md.Labels = map[string]string{}
		for _, k := range lm.order {
			v, vp := lm.get(k)
			if s, ok := d.str(v, vp); ok {
				md.Labels[k] = s.text
			} else if v == nil {
				md.Labels[k] = ""
			}
		}
	}
	m.rest(nil)
}

func (d *decoder) source(spec *mapReader, src *Source) {
	n, p := spec.get("source")
	if n == nil && spec.ok {
		d.add(p, "is required: the PostgreSQL database the collector reads (type: postgres, config: {dsn: ...})")
	}
	m := d.mapping(n, p)
	src.Type = defaultSourceType
	if tn, tp := m.get("type"); tn != nil {
		d.oneOf(tn, tp, defaultSourceType)
	} else if m.ok {
		d.add(tp, "is required: type: postgres")
	}
	cn, cp := m.get("config")
	if cn == nil && m.ok {
		d.add(cp, "is required: config: {dsn: ..., slot: ..., publication: ...}")
	}
	m.rest(nil)
	c := d.mapping(cn, cp)
	if dn, dp := c.get("dsn"); dn != nil {
		if s, ok := d.str(dn, dp); ok {
			if s.text == "" {
				d.add(dp, "is empty: give the PostgreSQL connection string")
			}
			src.DSN = s.text
		}
	} else if c.ok {
		d.add(dp, "is required: the PostgreSQL connection string, e.g. ${POSTGRES_DSN}")
	}
	src.Slot = DefaultSlot
	slotOK := true
	if sn, sp := c.get("slot"); sn != nil {
		slotOK = false
		if s, ok := d.str(sn, sp); ok {
			if err := wire.CheckSlotName(s.text); err != nil {
				d.add(sp, "bad slot name %s: %v", s.show(), err)
			} else {
				src.Slot, slotOK = s.text, true
			}
		}
	}
	src.Publication = DefaultPublication
	if pn, pp := c.get("publication"); pn != nil {
		if s, ok := d.str(pn, pp); ok {
			if s.text == "" {
				d.add(pp, "is empty: name the publication")
			} else {
				src.Publication = s.text
			}
		}
	}
	if in, ip := c.get("id"); in != nil {
		if v, ok := d.name(in, ip); ok {
			src.ID = v
		}
	} else if slotOK {
		src.ID = src.Slot
	}
	if tn, tp := c.get("tables"); tn != nil {
		for i, it := range d.list(tn, tp) {
			ipath := index(tp, i)
			s, ok := d.str(it, ipath)
			if !ok {
				continue
			}
			schema, table, dot := strings.Cut(s.text, ".")
			switch {
			case strings.ContainsAny(s.text, "*?["):
				d.add(ipath, "%s is a pattern: the publication lists tables, so name each one (sinks take globs)", s.show())
			case !dot || schema == "" || table == "":
				d.add(ipath, "%s: use schema.table, e.g. public.users", s.show())
			default:
				src.Tables = append(src.Tables, s.text)
			}
		}
	}
	src.StartPosition = defaultStartPosition
	d.enum(c, "start_position", &src.StartPosition, Earliest, Latest)
	if fn, fp := c.get("failover"); fn != nil {
		if v, ok := d.boolean(fn, fp); ok {
			src.Failover = v
		}
	}
	c.rest(nil)
}

func (d *decoder) rawStream(spec *mapReader, rs *RawStream) {
	n, p := spec.get("raw_stream")
	m := d.mapping(n, p)
	rs.Name = wire.DefaultRawStream
	if nn, np := m.get("name"); nn != nil {
		if v, ok := d.name(nn, np); ok {
			rs.Name = v
		}
	}
	d.conn(m, &rs.Conn)
	if en, ep := m.get("embedded"); en != nil {
		rs.Embedded = d.embedded(en, ep)
		if d.has[join(p, "url")] {
			d.add(ep, "url and embedded exclude each other: the collector either connects to a NATS server or runs one")
		}
	}
	if !d.has[join(p, "url")] {
		// Without url, the raw stream is on the first nats sink's server
		// (or the embedded one) and that connection's keys are used.
		for _, k := range connKeys[1:] {
			if d.has[join(p, k)] {
				d.add(join(p, k), "applies only with url: without it the raw stream uses the embedded server or the first nats sink's connection")
			}
		}
	}
	rs.MaxAge = DefaultRawMaxAge
	d.duration(m, "max_age", &rs.MaxAge)
	rs.DuplicateWindow = DefaultRawDuplicates
	d.duration(m, "duplicate_window", &rs.DuplicateWindow)
	rs.Replicas = defaultReplicas
	d.intRange(m, "replicas", 1, maxReplicas, &rs.Replicas)
	m.rest(nil)
}

func (rs *RawStream) hasURL() bool { return len(rs.Conn.URLs) > 0 }

// conn reads the connection keys of m into c.
func (d *decoder) conn(m *mapReader, c *Conn) {
	if n, p := m.get("url"); n != nil {
		var parts []string
		read := true
		if n.Kind == yaml.SequenceNode {
			before := d.errs.Len()
			parts = d.strList(n, p)
			read = d.errs.Len() == before
		} else if s, ok := d.str(n, p); ok {
			parts = strings.Split(s.text, ",")
		} else {
			read = false
		}
		for _, u := range parts {
			if u = strings.TrimSpace(u); u != "" {
				c.URLs = append(c.URLs, u)
			}
		}
		if read && len(c.URLs) == 0 {
			d.add(p, "is empty: give the NATS server URL, e.g. nats://127.0.0.1:4222")
		}
	}
	file := func(key string, dst *string) {
		n, p := m.get(key)
		if s, ok := d.str(n, p); ok {
			d.checkFile(s, p)
			*dst = s.text
		}
	}
	file("credentials_file", &c.CredentialsFile)
	file("nkey_file", &c.NKeyFile)
	d.text(m, "username", &c.Username)
	secret := func(key, fileKey string, dst *string) {
		n, p := m.get(key)
		fn, fp := m.get(fileKey)
		if n != nil && fn != nil {
			d.add(fp, "%s and %s exclude each other: give one", key, fileKey)
		}
		if s, ok := d.str(n, p); ok {
			*dst = s.text
		}
		if s, ok := d.str(fn, fp); ok {
			if b, ok := d.readFile(s, fp); ok && n == nil {
				*dst = string(b)
			}
		}
	}
	secret("password", "password_file", &c.Password)
	secret("token", "token_file", &c.Token)
	if n, p := m.get("tls"); n != nil {
		tm := d.mapping(n, p)
		tfile := func(key string, dst *string) {
			n, p := tm.get(key)
			if s, ok := d.str(n, p); ok {
				d.checkFile(s, p)
				*dst = s.text
			}
		}
		tfile("ca_file", &c.TLS.CAFile)
		tfile("cert_file", &c.TLS.CertFile)
		tfile("key_file", &c.TLS.KeyFile)
		if d.has[join(p, "cert_file")] != d.has[join(p, "key_file")] {
			d.add(p, "cert_file and key_file go together: give both (the client certificate and its key)")
		}
		tm.rest(nil)
	}
	has := func(k string) bool { return d.has[join(m.path, k)] }
	hasPassword := has("password") || has("password_file")
	switch {
	case has("username") && !hasPassword:
		d.add(join(m.path, "username"), "needs password or password_file")
	case hasPassword && !has("username"):
		key := "password"
		if !has(key) {
			key = "password_file"
		}
		d.add(join(m.path, key), "needs username")
	}
	// The server authenticates a client one way; a second method given
	// would be ignored, and the user could not tell which one is used.
	var methods []string
	for _, ks := range [][]string{{"username"}, {"token", "token_file"}, {"nkey_file"}, {"credentials_file"}} {
		for _, k := range ks {
			if has(k) {
				methods = append(methods, k)
				break
			}
		}
	}
	if len(methods) > 1 {
		d.add(join(m.path, methods[1]), "%s and %s are two authentication methods: give one (username and password, token, nkey_file or credentials_file)", methods[0], methods[1])
	}
}

func (d *decoder) batch(spec *mapReader, b *Batch) {
	n, p := spec.get("batch")
	m := d.mapping(n, p)
	if en, ep := m.get("max_events"); en != nil {
		if v, ok := d.integer(en, ep); ok {
			if v < 1 || v > 1<<31-1 {
				d.add(ep, "must be at least 1 (leave it out for no cap)")
			} else {
				b.MaxEvents = int(v)
			}
		}
	}
	if mn, mp := m.get("max_ms"); mn != nil {
		if v, ok := d.integer(mn, mp); ok {
			if v < 0 || v > maxBatchMS {
				d.add(mp, "%d is out of range: use 0 to %d (milliseconds a raw publish waits for more transactions)", v, maxBatchMS)
			} else {
				ms := int(v)
				b.MaxMS = &ms
			}
		}
	}
	b.RespectSourceTx = true
	if rn, rp := m.get("respect_source_tx"); rn != nil {
		if v, ok := d.boolean(rn, rp); ok && !v {
			d.add(rp, "cannot be false: pgjet keeps transactions whole and in commit order in the raw stream, and every event carries its transaction's xid, commit LSN and index; remove the key or set true")
		}
	}
	m.rest(nil)
}

func (d *decoder) commitPolicy(spec *mapReader, c *CommitPolicy) {
	n, p := spec.get("commit_policy")
	m := d.mapping(n, p)
	c.Mode = DefaultCommitPolicy
	if mn, mp := m.get("mode"); mn != nil {
		if s, ok := d.str(mn, mp); ok {
			switch s.text {
			case CommitRequired, CommitAll:
				c.Mode = s.text
			default:
				d.add(mp, "unknown value %s: pgjet confirms the slot only after JetStream stored the raw record, and each route acknowledges a raw record only after storing its events, which is what required and all mean: use required or all", s.show())
			}
		}
	}
	m.rest(nil)
}

// Keys of one sink type only.
var (
	natsOnlyKeys = append([]string{"subject", "message_subject", "dead_letter_subject", "transaction_subject", "relation_subject", "group", "group_subject", "prefix", "stream", "partition"}, connKeys...)
	stdoutKeys   = []string{"format"}
)

func (d *decoder) sinks(f *File, spec *mapReader) {
	n, p := spec.get("sinks")
	items := d.list(n, p)
	if len(items) == 0 && spec.ok && (n == nil || n.Kind == yaml.SequenceNode) {
		if n == nil {
			d.add(p, "is required: at least one sink (type: nats or stdout), each a route of the router")
		} else {
			d.add(p, "has no sink: give at least one (type: nats or stdout)")
		}
	}
	for i, it := range items {
		f.Sinks = append(f.Sinks, d.sink(f, it, index(p, i)))
	}
	// Later sinks are the ones reported, next to the key to change.
	ids := map[string]string{}
	streams := map[string]string{}
	durables := map[string]string{}
	for _, s := range f.Sinks {
		if s.ID != "" {
			if other, dup := ids[s.ID]; dup {
				d.add(s.Path+".id", "%q is also the id of %s: sink ids must be unique", s.ID, other)
			} else {
				ids[s.ID] = s.Path
			}
		}
		if s.Stream.Name != "" {
			sp := s.Path + ".stream"
			if d.has[sp+".name"] {
				sp += ".name"
			}
			switch other, dup := streams[s.Stream.Name]; {
			case s.Stream.Name == f.RawStream.Name:
				d.add(sp, "%s is the raw stream: give the sink its own output stream", s.Stream.Name)
			case dup:
				d.add(sp, "%s is also the stream of %s: two sinks may not share a stream, since the events of one change carry one id (Nats-Msg-Id) in both and the stream would drop the second sink's as duplicates", s.Stream.Name, other)
			default:
				streams[s.Stream.Name] = s.Path
			}
		}
		if s.Durable != "" {
			if other, dup := durables[s.Durable]; dup {
				d.add(s.Path+".durable", "%s is also the durable consumer of %s: each sink needs its own (set durable on one of them)", s.Durable, other)
			} else {
				durables[s.Durable] = s.Path
			}
		}
	}
}

var partitionRE = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)

// ParsePartition reads a sink's partition, "i/N" with 0 <= i < N: a
// router's share of a route's output; "" is the whole output (0, 0).
func ParsePartition(s string) (part, parts int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	mm := partitionRE.FindStringSubmatch(s)
	var i, n uint64
	if mm != nil {
		i, _ = strconv.ParseUint(mm[1], 10, 32)
		n, _ = strconv.ParseUint(mm[2], 10, 32)
	}
	if mm == nil || n < 1 || i >= n {
		return 0, 0, fmt.Errorf("%q: use i/N with 0 <= i < N, e.g. 0/2 for the first of two routers", s)
	}
	return int(i), int(n), nil
}

func (d *decoder) sink(f *File, n *yaml.Node, ip string) Sink {
	sm := d.mapping(n, ip)
	var s Sink
	if tn, tp := sm.get("type"); tn != nil {
		s.Type, _ = d.oneOf(tn, tp, TypeNATS, TypeStdout)
	} else if sm.ok {
		d.add(tp, "is required: nats or stdout")
	}
	cn, cp := sm.get("config")
	s.Path = cp
	if cn == nil && sm.ok {
		d.add(cp, "is required: config: {id: ..., ...}")
	}
	sm.rest(nil)
	m := d.mapping(cn, cp)

	if in, ipath := m.get("id"); in != nil {
		s.ID, _ = d.name(in, ipath)
	} else if m.ok {
		d.add(ipath, "is required: it names the sink (and its durable consumer, <metadata.name>-<id>)")
	}

	s.Prefix = DefaultPrefix
	switch s.Type {
	case TypeNATS:
		d.natsSink(m, &s)
	case TypeStdout:
		s.Format = defaultStdoutFormat
		d.enum(m, "format", &s.Format, "json", "json-pretty", "text")
	default:
		m.skip(natsOnlyKeys...)
		m.skip(stdoutKeys...)
	}

	if dn, dp := m.get("durable"); dn != nil {
		s.Durable, _ = d.name(dn, dp)
	} else if f.Metadata.Name != "" && s.ID != "" {
		s.Durable = f.Metadata.Name + "-" + s.ID
		if wire.CheckName(s.Durable) != nil {
			d.add(dp, "the default <metadata.name>-<id> is longer than 255 bytes: set durable")
			s.Durable = ""
		}
	}

	s.Envelope.Type = DefaultEnvelope
	if en, ep := m.get("envelope"); en != nil {
		em := d.mapping(en, ep)
		for _, k := range em.order {
			v, p := em.get(k)
			if k == "type" {
				if t, ok := d.str(v, p); ok && t.text != "" {
					s.Envelope.Type = t.text
				} else if ok || v == nil {
					d.add(p, "is empty: native, cloudevents or debezium")
				}
				continue
			}
			if s.Envelope.Settings == nil {
				s.Envelope.Settings = map[string]any{}
			}
			s.Envelope.Settings[k] = d.toAny(v, p)
		}
	}
	s.Encoding = defaultEncoding
	d.enum(m, "encoding", &s.Encoding, "json", "msgpack")
	d.atLeast(m, "standby_ttl", time.Second, &s.StandbyTTL)
	for _, b := range []struct {
		key string
		dst *bool
	}{{"transactions", &s.Transactions}, {"relations", &s.Relations}, {"standby", &s.Standby}} {
		if n, p := m.get(b.key); n != nil {
			if v, ok := d.boolean(n, p); ok {
				*b.dst = v
			}
		}
	}
	if rn, rp := m.get("required"); rn != nil {
		if v, ok := d.boolean(rn, rp); ok && !v {
			d.add(rp, "cannot be false: pgjet never skips a sink's events: each route has its own consumer, so a slow or unreachable sink holds back only itself; remove the key or set true")
		}
	}
	s.SendTimeout = DefaultSendTimeout
	sendPath := d.seconds(m, "send_timeout_secs", &s.SendTimeout)
	// The one rule relating the two timeouts: a raw record must not be
	// redelivered while its events' publishes may still be acknowledged.
	s.BatchTimeout = max(DefaultBatchTimeout, s.SendTimeout)
	if bn, bp := m.get("batch_timeout_secs"); bn != nil {
		if v, ok := d.integer(bn, bp); ok {
			if send := s.SendTimeout; v < int64((send+time.Second-1)/time.Second) || v > maxTimeoutSecs {
				what := fmt.Sprintf("send_timeout_secs (%d)", int64((send+time.Second-1)/time.Second))
				if flag := d.errs.Flag(sendPath); flag != "" {
					what = fmt.Sprintf("%s (%s)", flag, send)
				}
				d.add(bp, "%d is out of range: use %s to %d, since a raw record must not be redelivered while its events' publishes may still be acknowledged", v, what, maxTimeoutSecs)
			} else {
				s.BatchTimeout = secs(int(v))
			}
		}
	}
	s.StartPosition = f.Source.StartPosition
	d.enum(m, "start_position", &s.StartPosition, Earliest, Latest)

	if tn, tp := m.get("tables"); tn != nil {
		if tn.Kind == yaml.MappingNode {
			tm := d.mapping(tn, tp)
			in, inp := tm.get("include")
			s.Include = d.globs(in, inp, true)
			ex, exp := tm.get("exclude")
			s.Exclude = d.globs(ex, exp, true)
			tm.rest(nil)
		} else if tn.Kind == yaml.SequenceNode {
			s.Include = d.globs(tn, tp, true)
		} else {
			d.add(tp, "must be a list of table globs or {include: [...], exclude: [...]}, not %s", describe(tn))
		}
	}
	if on, op := m.get("operations"); on != nil {
		seen := map[string]bool{}
		for i, it := range d.list(on, op) {
			v, ok := d.oneOf(it, index(op, i), Operations...)
			if !ok {
				continue
			}
			if seen[v] {
				d.add(index(op, i), "%s is listed twice", v)
				continue
			}
			seen[v] = true
			s.Operations = append(s.Operations, v)
		}
		if len(s.Operations) == 0 && d.has[op] {
			d.add(op, "is empty: leave it out to take every operation")
		}
	} else {
		s.Operations = append([]string(nil), Operations...)
	}
	if pn, pp := m.get("message_prefixes"); pn != nil {
		s.MessagePrefixes = d.globs(pn, pp, false)
	}
	hashes := false
	if cln, clp := m.get("columns"); cln != nil {
		for i, it := range d.list(cln, clp) {
			r := d.columnRule(it, index(clp, i))
			hashes = hashes || len(r.Hash) > 0
			s.Columns = append(s.Columns, r)
		}
	}
	if hn, hp := m.get("hash_key"); hn != nil {
		s.HashKeyBytes = d.hashKey(hn, hp)
	} else if hashes {
		d.add(hp, "is required: a column rule hashes, and the hash is keyed (HMAC-SHA256) so that values cannot be found by hashing guesses: hash_key: {env: NAME} or {file: PATH}")
	}

	m.rest(func(k string) string {
		for _, nk := range natsOnlyKeys {
			if k == nk {
				return k + " applies to nats sinks"
			}
		}
		if k == "format" {
			return "format applies to stdout sinks"
		}
		return ""
	})
	return s
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// maxTimeoutSecs bounds the sinks' timeouts: a day.
const maxTimeoutSecs = 86400

// seconds reads a timeout in whole seconds (1 to a day) into dst; a flag
// gives it as a duration (--ack-timeout 2s, 500ms). It returns the key's
// path.
func (d *decoder) seconds(m *mapReader, key string, dst *time.Duration) string {
	n, p := m.get(key)
	if n == nil {
		return p
	}
	if s, ok := d.str(n, p); ok && s.flag != "" {
		switch v, err := time.ParseDuration(s.text); {
		case err != nil:
			d.errs.AddValue(p, "", strconv.Quote(s.text), "use a duration, e.g. 10s")
		case v <= 0 || v > maxTimeoutSecs*time.Second:
			d.errs.AddValue(p, "", s.text, "use more than 0s, at most 24h")
		default:
			*dst = v
		}
		return p
	}
	v := int(dst.Seconds())
	d.intRange(m, key, 1, maxTimeoutSecs, &v)
	*dst = secs(v)
	return p
}

func (d *decoder) natsSink(m *mapReader, s *Sink) {
	d.conn(m, &s.Conn)
	if !d.has[join(m.path, "url")] {
		_, p := m.get("url")
		d.add(p, "is required for a nats sink: the NATS server URL(s), e.g. nats://127.0.0.1:4222")
	}
	d.text(m, "subject", &s.Subject)
	d.text(m, "message_subject", &s.MessageSubject)
	d.text(m, "dead_letter_subject", &s.DeadLetterSubject)
	d.text(m, "transaction_subject", &s.TransactionSubject)
	d.text(m, "relation_subject", &s.RelationSubject)
	d.text(m, "group_subject", &s.GroupSubject)
	group := GroupNone
	d.enum(m, "group", &group, GroupNone, GroupTransaction)
	s.Group = group == GroupTransaction
	d.text(m, "prefix", &s.Prefix)
	if sn, sp := m.get("stream"); sn != nil {
		d.stream(sn, sp, &s.Stream)
	} else {
		d.add(sp, "is required for a nats sink: the output stream, created when missing (stream: NAME or {name: NAME, ...})")
	}
	if pn, pp := m.get("partition"); pn != nil {
		if v, ok := d.str(pn, pp); ok {
			if _, _, err := ParsePartition(v.text); err != nil {
				d.add(pp, "%s is not i/N with 0 <= i < N (e.g. 0/3 for the first of three routers)", v.show())
			} else {
				s.Partition = v.text
			}
		}
	}
}

func (d *decoder) stream(n *yaml.Node, p string, st *Stream) {
	st.Replicas = defaultReplicas
	st.Storage = defaultStorage
	st.Persist = defaultPersist
	if n.Kind != yaml.MappingNode {
		if n.Kind != yaml.ScalarNode {
			d.add(p, "must be a stream name or {name: NAME, ...}, not %s", describe(n))
			return
		}
		st.Name, _ = d.name(n, p)
		return
	}
	m := d.mapping(n, p)
	if nn, np := m.get("name"); nn != nil {
		st.Name, _ = d.name(nn, np)
	} else if m.ok {
		d.add(np, "is required: the output stream's name")
	}
	if sn, sp := m.get("subjects"); sn != nil {
		st.Subjects = d.strList(sn, sp)
	}
	d.intRange(m, "replicas", 1, maxReplicas, &st.Replicas)
	d.enum(m, "storage", &st.Storage, "file", "memory")
	d.duration(m, "max_age", &st.MaxAge)
	if bn, bp := m.get("max_bytes"); bn != nil {
		if s, ok := d.scalar(bn, bp, "a size"); ok {
			v, err := memlimit.Parse(s.text)
			switch {
			case err != nil || s.typed() && bn.ShortTag() != "!!int" && bn.ShortTag() != "!!str":
				d.add(bp, "%s is not a size: use bytes or e.g. 512MiB, 10GiB, 1GB", s.show())
			case v <= 0:
				d.add(bp, "must be positive (leave it out for no limit)")
			default:
				st.MaxBytes = v
			}
		}
	}
	if mn, mp := m.get("max_msgs"); mn != nil {
		if v, ok := d.integer(mn, mp); ok {
			if v <= 0 {
				d.add(mp, "must be positive (leave it out for no limit)")
			} else {
				st.MaxMsgs = v
			}
		}
	}
	d.atLeast(m, "duplicate_window", time.Second, &st.DuplicateWindow)
	d.enum(m, "persist", &st.Persist, "default", "async")
	m.rest(nil)
}

// globs reads "schema.table" globs (tables) or plain globs (message
// prefixes), each checked with path.Match's syntax.
func (d *decoder) globs(n *yaml.Node, p string, tables bool) []string {
	var out []string
	for i, it := range d.list(n, p) {
		ip := index(p, i)
		s, ok := d.str(it, ip)
		if !ok {
			continue
		}
		if d.glob(s, ip, tables) {
			out = append(out, s.text)
		}
	}
	return out
}

func (d *decoder) glob(s scalar, p string, table bool) bool {
	sides := []string{s.text}
	if table {
		schema, tbl, ok := strings.Cut(s.text, ".")
		if !ok || schema == "" || tbl == "" {
			d.add(p, "%s is not schema.table: use e.g. public.users, public.*, *.*", s.show())
			return false
		}
		sides = []string{schema, tbl}
	}
	for _, side := range sides {
		if _, err := path.Match(side, ""); err != nil {
			d.add(p, "%s is not a valid glob (*, ?, [a-z], \\ escapes)", s.show())
			return false
		}
	}
	return true
}

func (d *decoder) columnRule(n *yaml.Node, p string) ColumnRule {
	var r ColumnRule
	m := d.mapping(n, p)
	if tn, tp := m.get("table"); tn != nil {
		if s, ok := d.str(tn, tp); ok && d.glob(s, tp, true) {
			r.Table = s.text
		}
	} else if m.ok {
		d.add(tp, "is required: the tables (a schema.table glob) the rule applies to")
	}
	where := map[string]string{}
	claim := func(col, list, path string) bool {
		if other, dup := where[col]; dup {
			if other == list {
				d.add(path, "column %s is listed twice", col)
			} else {
				d.add(path, "column %s is also in %s: a rule does one thing to a column", col, other)
			}
			return false
		}
		where[col] = list
		return true
	}
	// In file order, so that the later of two lists naming a column is the
	// one reported.
	m.skip("drop", "mask", "hash")
	for _, k := range m.order {
		switch k {
		case "drop":
			dn, dp := m.get(k)
			for i, c := range d.strList(dn, dp) {
				if claim(c, "drop", index(dp, i)) {
					r.Drop = append(r.Drop, c)
				}
			}
		case "hash":
			hn, hp := m.get(k)
			for i, c := range d.strList(hn, hp) {
				if claim(c, "hash", index(hp, i)) {
					r.Hash = append(r.Hash, c)
				}
			}
		case "mask":
			mn, mp := m.get(k)
			if mn == nil {
				continue
			}
			mm := d.mapping(mn, mp)
			r.Mask = map[string]string{}
			for _, col := range mm.order {
				v, vp := mm.get(col)
				if v == nil {
					d.add(vp, "needs the replacement value, e.g. \"***\" (\"\" for an empty string)")
					continue
				}
				if s, ok := d.str(v, vp); ok && claim(col, "mask", vp) {
					r.Mask[col] = s.text
				}
			}
		}
	}
	if len(where) == 0 && m.ok {
		d.add(p, "does nothing: give drop, mask or hash")
	}
	m.rest(nil)
	return r
}

func (d *decoder) hashKey(n *yaml.Node, p string) []byte {
	m := d.mapping(n, p)
	en, ep := m.get("env")
	fn, fp := m.get("file")
	m.rest(nil)
	var key []byte
	switch {
	case en != nil && fn != nil:
		d.add(fp, "env and file exclude each other: give one")
		return nil
	case en != nil:
		s, ok := d.str(en, ep)
		if !ok {
			return nil
		}
		if !isName(s.text) {
			d.add(ep, "must be an environment variable's name (letters, digits and '_')")
			return nil
		}
		v, set := d.lookup(s.text)
		if !set {
			d.add(ep, "environment variable %s is not set: it holds the hash key", s.text)
			return nil
		}
		key = []byte(strings.TrimRight(v, "\r\n"))
	case fn != nil:
		s, ok := d.str(fn, fp)
		if !ok {
			return nil
		}
		b, ok := d.readFile(s, fp)
		if !ok {
			return nil
		}
		key = b
	default:
		if n.Kind == yaml.MappingNode {
			d.add(p, "give env: NAME or file: PATH")
		}
		return nil
	}
	if len(key) < MinHashKeyBytes {
		d.add(p, "the key has %d bytes: use at least %d (e.g. openssl rand -hex 32)", len(key), MinHashKeyBytes)
		return nil
	}
	return key
}

// Has reports whether the file gives path a value (not null), e.g.
// "spec.raw_stream.url": flags the user gave win, and a file value applies
// only to the others.
func (f *File) Has(path string) bool { return f.has[path] }

// Problems returns the problems found while loading (possibly none), to
// filter with For and add to; never nil.
func (f *File) Problems() *Errors {
	return f.problems.For(ScopeAll)
}

// RawConn is the raw stream's connection and the path it comes from:
// spec.raw_stream when it has a url; spec.raw_stream.embedded for an
// embedded server (the URL routers connect to, nats://listen); else the
// first nats sink's ("spec.sinks[0].config"); else an empty Conn and "".
func (f *File) RawConn() (Conn, string) {
	rs := &f.RawStream
	switch {
	case rs.hasURL():
		return rs.Conn, "spec.raw_stream"
	case rs.Embedded != nil:
		// A router reading the same file logs in as the embedded server's
		// user; other methods and TLS need the router's own flags.
		return Conn{URLs: []string{"nats://" + rs.Embedded.Listen}, Username: rs.Embedded.Username, Password: rs.Embedded.Password}, "spec.raw_stream.embedded"
	}
	for _, s := range f.Sinks {
		if s.Type == TypeNATS {
			return s.Conn, s.Path
		}
	}
	return Conn{}, ""
}

// URL is the URLs comma-separated, as nats.Connect takes them.
func (c Conn) URL() string { return strings.Join(c.URLs, ",") }

// String is the problem in one line: "path: message", or for a value a
// flag gave, "bad --flag: message" ("bad --flag "x": ..." when the message
// starts with the value).
func (p Problem) String() string {
	switch {
	case p.Flag != "" && p.valueFirst:
		return "bad " + p.Flag + " " + p.Message
	case p.Flag != "":
		return "bad " + p.Flag + ": " + p.Message
	case p.Path == "":
		return p.Message
	}
	return p.Path + ": " + p.Message
}
