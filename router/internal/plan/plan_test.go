package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/shared/pipeline"
)

// base is a valid pipeline file; each case below breaks one thing.
const base = `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: shop}
spec:
  source:
    type: postgres
    config: {id: shop, dsn: "${POSTGRES_DSN}", tables: [public.users]}
  sinks:
    - type: nats
      config:
        id: events
        url: ${NATS_URL}
        %s
    - type: nats
      config:
        id: other
        url: ${NATS_URL}
        stream: OTHER
        prefix: other
`

// Every configuration error is one line that names its path, whether the
// pipeline package or the router's own checks (templates, envelopes,
// streams, overlaps) find it.
func TestConfigErrorsNameTheirPath(t *testing.T) {
	env := map[string]string{"POSTGRES_DSN": "postgres://localhost/app", "NATS_URL": "nats://127.0.0.1:4222"}
	tests := []struct {
		name, sink string
		stream     string // the first sink's stream, default EVENTS
		unset      string // an environment variable to leave unset
		want       string
	}{
		{name: "valid", sink: "subject: '{prefix}.{schema}.{table}.{op}'"},
		{name: "unknown envelope", sink: "envelope: {type: avro}",
			want: `spec.sinks[0].config.envelope.type: unknown envelope "avro": use cloudevents`},
		{name: "bad envelope setting", sink: "envelope: {type: cloudevents, type_prefix: 'com..acme'}",
			want: `spec.sinks[0].config.envelope.type_prefix: "com..acme": use dot-separated words`},
		{name: "unknown envelope setting", sink: "envelope: {type: cloudevents, colour: red}",
			want: `spec.sinks[0].config.envelope.colour: unknown key`},
		{name: "encoding the envelope lacks", sink: "envelope: {type: cloudevents}\n        encoding: msgpack",
			want: `spec.sinks[0].config.encoding: "msgpack": the cloudevents envelope is JSON only`},
		{name: "bad template token", sink: "subject: '{prefix}.{tabel}.{op}'",
			want: `spec.sinks[0].config.subject: `},
		{name: "wildcard in a subject", sink: "subject: 'cdc.*.{table}'",
			want: `spec.sinks[0].config.subject: `},
		{name: "subject on the raw stream", sink: "subject: 'pgjet.raw.{table}'",
			want: `spec.sinks[0].config.subject: `},
		{name: "unknown key", sink: "colour: red",
			want: `spec.sinks[0].config.colour: unknown key`},
		{name: "stream subjects that miss the route's", sink: "subject: 'cdc.{table}'", stream: "{name: EVENTS, subjects: ['other.>']}",
			want: `spec.sinks[0].config.stream.subjects: does not capture cdc.*, a subject of this route`},
		{name: "missing environment variable", sink: "subject: x.y", unset: "NATS_URL",
			want: `spec.sinks[0].config.url: environment variable NATS_URL is not set`},
		{name: "bad glob", sink: "tables: ['public.[x']",
			want: `spec.sinks[0].config.tables`},
		{name: "glob without a schema", sink: "tables: ['users']",
			want: `spec.sinks[0].config.tables`},
		{name: "overlapping routes", sink: "prefix: other",
			want: `spec.sinks[1].config.subject: other.*.*.* overlaps other.*.*.* of spec.sinks[0].config (stream EVENTS)`},
		{name: "bad operation", sink: "operations: [insert, upsert]",
			want: `spec.sinks[0].config.operations[1]: `},
		{name: "hash without a key", sink: "columns: [{table: public.users, hash: [email]}]",
			want: `spec.sinks[0].config.hash_key: `},
		{name: "partition", sink: "partition: 0/2"},
		{name: "bad partition", sink: "partition: 2/2",
			want: `spec.sinks[0].config.partition: `},
		{name: "group with binary cloudevents", sink: "group: transaction\n        envelope: {type: cloudevents, mode: binary}",
			want: `spec.sinks[0].config.group: binary CloudEvents have no batch format`},
		{name: "group with transaction events", sink: "group: transaction\n        transactions: true",
			want: `spec.sinks[0].config.transactions: a route that groups transactions`},
		{name: "relation events in debezium", sink: "relations: true\n        envelope: {type: debezium}",
			want: `spec.sinks[0].config.relations: the debezium envelope has no relation events`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok && k != tt.unset
			}
			stream := tt.stream
			if stream == "" {
				stream = "EVENTS"
			}
			src := strings.Replace(base, "%s", tt.sink+"\n        stream: "+stream, 1)
			file, err := pipeline.Parse([]byte(src), lookup)
			errs := &pipeline.Errors{}
			if err != nil && !errors.As(err, &errs) {
				t.Fatal(err)
			}
			errs = errs.For(pipeline.ScopeRouter)
			if file != nil {
				FromFile(file, errs, nil)
			}
			got := ""
			if errs.Len() > 0 {
				got = errs.Error()
			}
			if tt.want == "" {
				if got != "" {
					t.Fatalf("valid file:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("want a line with %q, got:\n%s", tt.want, got)
			}
			for _, line := range strings.Split(got, "\n") {
				if !strings.HasPrefix(line, "spec.") && !strings.HasPrefix(line, "metadata") {
					t.Errorf("line without a path: %q", line)
				}
			}
		})
	}
}

// Each sink becomes a route with its own durable, stream settings and
// connection; a stdout sink publishes nothing.
func TestFromFileBuildsRoutes(t *testing.T) {
	src := `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: shop}
spec:
  source: {type: postgres, config: {dsn: x}}
  raw_stream: {url: "nats://raw:4222", name: RAW}
  sinks:
    - type: nats
      config:
        id: a
        url: nats://out:4222
        username: u
        password: p
        stream: {name: A, replicas: 3, storage: memory, max_age: 1d, duplicate_window: 30s, persist: async}
        start_position: latest
        send_timeout_secs: 3
        batch_timeout_secs: 9
    - type: stdout
      config: {id: b, format: text}
`
	file, err := pipeline.Parse([]byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	errs := &pipeline.Errors{}
	p := FromFile(file, errs, nil)
	if errs.Len() > 0 {
		t.Fatal(errs)
	}
	if p.Raw.URL != "nats://raw:4222" || p.RawStream != "RAW" || len(p.Routes) != 2 {
		t.Fatalf("plan %+v", p)
	}
	a, b := p.Routes[0], p.Routes[1]
	if a.Conn.URL != "nats://out:4222" || a.Conn.User != "u" || a.Conn.Password != "p" {
		t.Errorf("route a connects with %+v", a.Conn)
	}
	r := a.Relay
	if r.Durable != "shop-a" || r.Stream != "A" || !r.StartNew || !r.PersistAsync || r.Duplicates.Seconds() != 30 ||
		r.Output.Replicas != 3 || !r.Output.Memory || r.Output.MaxAge.Hours() != 24 || r.PublishTimeout.Seconds() != 3 || r.AckWait.Seconds() != 9 {
		t.Errorf("route a: %+v", r)
	}
	if b.Relay.Stream != "" || b.Stdout == 0 || b.Relay.Durable != "shop-b" || b.Relay.StartNew {
		t.Errorf("route b: %+v", b)
	}
}

// A router must know where the raw stream is: a file with neither
// spec.raw_stream.url nor a nats sink is an error, not a silent default.
func TestRawStreamServerRequired(t *testing.T) {
	src := `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: shop}
spec:
  source: {type: postgres, config: {dsn: x}}
  sinks: [{type: stdout, config: {id: out}}]
`
	file, err := pipeline.Parse([]byte(src), func(string) (string, bool) { return "", false })
	errs := &pipeline.Errors{}
	if err != nil && !errors.As(err, &errs) {
		t.Fatal(err)
	}
	errs = errs.For(pipeline.ScopeRouter)
	FromFile(file, errs, nil)
	if !strings.Contains(errs.Error(), "spec.raw_stream.url: the router needs the raw stream's server") {
		t.Fatalf("got:\n%s", errs.Error())
	}
}
