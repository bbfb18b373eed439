package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSeedAsPgjet(t *testing.T) {
	data, err := os.ReadFile("testdata/seed-deltaforge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "apiVersion: deltaforge/v1", "apiVersion: pgjet/v1", 1)
	f, e := parse(t, text, seedEnv)
	expect(t, e)
	if f.Compat || f.APIVersion != APIVersion || f.Sinks[0].Stream.Name != "USERS" {
		t.Errorf("Compat %v, APIVersion %q, sink %+v", f.Compat, f.APIVersion, f.Sinks[0])
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name, value string
		env         []string
		want        string
		problem     string // "" if none
		also        string // a second problem
	}{
		{name: "plain", value: "abc", want: "abc"},
		{name: "var", value: "${X}", env: []string{"X", "x1"}, want: "x1"},
		{name: "inside", value: "a-${X}-${Y}-b", env: []string{"X", "1", "Y", "2"}, want: "a-1-2-b"},
		{name: "default unset", value: "${X:-dflt}", want: "dflt"},
		{name: "default empty", value: "${X:-dflt}", env: []string{"X", ""}, want: "dflt"},
		{name: "default set", value: "${X:-dflt}", env: []string{"X", "x"}, want: "x"},
		{name: "empty default", value: "${X:-}", want: ""},
		{name: "set empty", value: "${X}", env: []string{"X", ""}, want: ""},
		{name: "dollars", value: "p$$w$$", want: "p$w$"},
		{name: "lone dollar", value: "5$ or $1", want: "5$ or $1"},
		{name: "missing", value: "${NOPE}", problem: "environment variable NOPE is not set (set it, or write ${NOPE:-value})"},
		{name: "two missing", value: "${A}${B}", problem: "environment variable A is not set", also: "environment variable B is not set"},
		{name: "bare name", value: "$HOME/x", problem: "a $ is followed by a name: write ${NAME} to use a variable, or $$ for a literal $"},
		{name: "unclosed", value: "${X", problem: "a ${ has no closing }"},
		{name: "bad name", value: "${X:=y}", problem: "a ${...} is neither ${NAME} nor ${NAME:-default}"},
		// The structure is parsed before expansion: these stay one value.
		{name: "colon", value: "${X}", env: []string{"X", "a: b"}, want: "a: b"},
		{name: "newline", value: "${X}", env: []string{"X", "a\nb: c\n- d"}, want: "a\nb: c\n- d"},
		{name: "comment", value: "${X}", env: []string{"X", "a # b"}, want: "a # b"},
		{name: "flow", value: "${X}", env: []string{"X", "{a: [b]}"}, want: "{a: [b]}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, subject: '`+tt.value+`'}}`)
			f, e := parse(t, text, env(tt.env...))
			if tt.problem != "" {
				want := []string{"spec.sinks[0].config.subject: " + tt.problem}
				if tt.also != "" {
					want = append(want, "spec.sinks[0].config.subject: "+tt.also)
				}
				expect(t, e, want...)
				return
			}
			expect(t, e)
			if got := f.Sinks[0].Subject; got != tt.want {
				t.Errorf("subject %q, want %q", got, tt.want)
			}
		})
	}
}

// TestExpandTypes: a value from the environment is read as the key's type;
// the key is not expanded.
func TestExpandTypes(t *testing.T) {
	text := doc("  batch: {max_ms: '${MS:-250}', max_events: '${EV}'}\n  raw_stream: {max_age: '${AGE:-2d}', replicas: '${R}'}\n",
		`{type: nats, config: {id: a, url: "${URL}", stream: '${S:-OUT}', send_timeout_secs: '${T}', required: '${REQ:-true}', envelope: {type: cloudevents, n: '${N}', m: 5}, '${K}': 1}}`)
	f, e := parse(t, text, env("EV", "9", "T", "7", "N", "12", "R", "3", "URL", "nats://a:1, nats://b:2"))
	expect(t, e, "spec.sinks[0].config.${K}: unknown key")
	if *f.Batch.MaxMS != 250 || f.Batch.MaxEvents != 9 || f.RawStream.MaxAge != 48*time.Hour || f.RawStream.Replicas != 3 {
		t.Errorf("batch %+v raw %+v", f.Batch, f.RawStream)
	}
	s := f.Sinks[0]
	if s.SendTimeout != 7*time.Second || s.Stream.Name != "OUT" || !reflect.DeepEqual(s.Conn.URLs, []string{"nats://a:1", "nats://b:2"}) {
		t.Errorf("sink %+v", s)
	}
	// Settings keep YAML's types, and what came from the environment is a string.
	if !reflect.DeepEqual(s.Envelope.Settings, map[string]any{"n": "12", "m": 5}) {
		t.Errorf("settings %#v", s.Envelope.Settings)
	}

	_, e = parse(t, doc("  batch: {max_ms: '${MS}'}\n", `{type: nats, config: {id: a, url: "nats://h", stream: A, encoding: '${ENC}', required: '${REQ}'}}`),
		env("MS", "from-env-value", "ENC", "from-env-value", "REQ", "from-env-value"))
	expect(t, e,
		"spec.batch.max_ms: must be an integer: the value from the environment is not",
		"spec.sinks[0].config.encoding: unknown value the value from the environment: use json or msgpack",
		"spec.sinks[0].config.required: must be true or false: the value from the environment is not")
}

// TestSecretsNeverShown: secrets and expanded values stay out of messages
// (asErrors checks every message against the secrets list).
func TestSecretsNeverShown(t *testing.T) {
	_, e := parse(t, doc("", `{type: nats, config: {id: '${ID}', url: "${URL}", stream: '${ST}', username: u, password: "hunter2", partition: '${P}', tables: ['${G}']}}`),
		env("ID", "from-env-value.", "URL", "", "ST", "from-env-value*", "P", "from-env-value", "G", "from-env-value"))
	expect(t, e,
		"spec.sinks[0].config.id: the value from the environment is not a valid name",
		"spec.sinks[0].config.url: is empty",
		"spec.sinks[0].config.stream: the value from the environment is not a valid name",
		"spec.sinks[0].config.partition: the value from the environment is not i/N",
		"spec.sinks[0].config.tables[0]: the value from the environment is not schema.table")
}

func TestDefaults(t *testing.T) {
	f, e := parse(t, doc("", natsA, `{type: stdout, config: {id: out, send_timeout_secs: 90}}`), nil)
	expect(t, e)
	want := Source{Type: "postgres", ID: "pgjet", DSN: "postgres://u:s3cret@h/db", Slot: "pgjet", Publication: "pgjet", StartPosition: Earliest}
	if !reflect.DeepEqual(f.Source, want) {
		t.Errorf("source %+v", f.Source)
	}
	fo, e := parse(t, strings.Replace(doc("", natsA), "{dsn:", "{failover: true, dsn:", 1), nil)
	expect(t, e)
	if !fo.Source.Failover {
		t.Error("source.config.failover: true not read")
	}
	if f.RawStream.Name != "PGJET_RAW" || f.RawStream.MaxAge != 168*time.Hour || f.RawStream.DuplicateWindow != time.Hour ||
		f.RawStream.Replicas != 1 || f.RawStream.Embedded != nil || len(f.RawStream.Conn.URLs) != 0 {
		t.Errorf("raw stream %+v", f.RawStream)
	}
	if f.Batch.MaxEvents != 0 || f.Batch.MaxMS != nil || !f.Batch.RespectSourceTx || f.CommitPolicy.Mode != "required" {
		t.Errorf("batch %+v, commit %+v", f.Batch, f.CommitPolicy)
	}
	a := f.Sinks[0]
	wantA := Sink{Type: "nats", Path: "spec.sinks[0].config", ID: "a", Conn: Conn{URLs: []string{"nats://h:4222"}},
		Prefix: "postgres", Stream: Stream{Name: "A", Replicas: 1, Storage: "file", Persist: "default"}, Durable: "p-a",
		Envelope: Envelope{Type: "native"}, Encoding: "json", SendTimeout: 10 * time.Second, BatchTimeout: 60 * time.Second,
		StartPosition: Earliest, Operations: Operations}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("sink\n%+v, want\n%+v", a, wantA)
	}
	out := f.Sinks[1]
	// The default batch timeout grows with a longer send timeout.
	if out.Format != "json" || out.Durable != "p-out" || out.SendTimeout != 90*time.Second || out.BatchTimeout != 90*time.Second || out.Prefix != "postgres" {
		t.Errorf("stdout sink %+v", out)
	}
	if &a.Operations[0] == &Operations[0] {
		t.Error("sinks share the Operations slice")
	}
}

func TestStream(t *testing.T) {
	f, e := parse(t, doc("", natsA,
		`{type: nats, config: {id: b, url: "nats://h", stream: {name: B, subjects: [b.>, c.*], replicas: 3, storage: memory, max_age: 7d, max_bytes: 1GiB, max_msgs: 1000, duplicate_window: 2m, persist: async}}}`,
		`{type: nats, config: {id: c, url: "nats://h", stream: {name: C, max_bytes: 4096}}}`,
		`{type: nats, config: {id: d, url: "nats://h", stream: {subjects: x, max_bytes: lots, max_msgs: 0}}}`,
		`{type: nats, config: {id: e, url: "nats://h", stream: [E]}}`), nil)
	expect(t, e,
		"spec.sinks[3].config.stream.name: is required",
		"spec.sinks[3].config.stream.subjects: must be a list",
		`spec.sinks[3].config.stream.max_bytes: "lots" is not a size`,
		"spec.sinks[3].config.stream.max_msgs: must be positive",
		"spec.sinks[4].config.stream: must be a stream name or {name: NAME, ...}, not a list")
	if got := f.Sinks[0].Stream; !reflect.DeepEqual(got, Stream{Name: "A", Replicas: 1, Storage: "file", Persist: "default"}) {
		t.Errorf("string form: %+v", got)
	}
	want := Stream{Name: "B", Subjects: []string{"b.>", "c.*"}, Replicas: 3, Storage: "memory", MaxAge: 7 * 24 * time.Hour,
		MaxBytes: 1 << 30, MaxMsgs: 1000, DuplicateWindow: 2 * time.Minute, Persist: "async"}
	if !reflect.DeepEqual(f.Sinks[1].Stream, want) {
		t.Errorf("mapping form: %+v", f.Sinks[1].Stream)
	}
	if f.Sinks[2].Stream.MaxBytes != 4096 {
		t.Errorf("max_bytes %d", f.Sinks[2].Stream.MaxBytes)
	}
}

func TestSinkSelection(t *testing.T) {
	f, e := parse(t, doc("", `{type: stdout, config: {id: a, format: json-pretty, start_position: latest, tables: [public.*, "s.t?"], operations: [insert, message], message_prefixes: [outbox*], columns: [{table: public.users, drop: [bio], mask: {email: "***", ssn: ""}, hash: [phone]}], hash_key: {env: HK}, envelope: {type: debezium, schema: true, nested: {a: [1, x]}}, encoding: msgpack}}`,
		`{type: stdout, config: {id: b, tables: {include: ["*.*"], exclude: [audit.*]}}}`), env("HK", "0123456789abcdef0123456789abcdef"))
	expect(t, e)
	a := f.Sinks[0]
	if a.Format != "json-pretty" || a.StartPosition != Latest || !reflect.DeepEqual(a.Include, []string{"public.*", "s.t?"}) || a.Exclude != nil ||
		!reflect.DeepEqual(a.Operations, []string{"insert", "message"}) || !reflect.DeepEqual(a.MessagePrefixes, []string{"outbox*"}) ||
		string(a.HashKeyBytes) != "0123456789abcdef0123456789abcdef" || a.Encoding != "msgpack" || a.Envelope.Type != "debezium" {
		t.Errorf("sink %+v", a)
	}
	wantRule := ColumnRule{Table: "public.users", Drop: []string{"bio"}, Mask: map[string]string{"email": "***", "ssn": ""}, Hash: []string{"phone"}}
	if len(a.Columns) != 1 || !reflect.DeepEqual(a.Columns[0], wantRule) {
		t.Errorf("columns %+v", a.Columns)
	}
	if !reflect.DeepEqual(a.Envelope.Settings, map[string]any{"schema": true, "nested": map[string]any{"a": []any{1, "x"}}}) {
		t.Errorf("settings %#v", a.Envelope.Settings)
	}
	if b := f.Sinks[1]; !reflect.DeepEqual(b.Include, []string{"*.*"}) || !reflect.DeepEqual(b.Exclude, []string{"audit.*"}) {
		t.Errorf("include/exclude %+v / %+v", b.Include, b.Exclude)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	pass := filepath.Join(dir, "pass")
	tok := filepath.Join(dir, "tok")
	for p, c := range map[string]string{key: "0123456789abcdef-key-material\r\n", pass: "hunter2\n\n", tok: "t0ken"} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, e := parse(t, doc("  raw_stream: {url: [nats://r1, nats://r2], token_file: '${TOK}', tls: {ca_file: "+key+"}}\n",
		`{type: nats, config: {id: a, url: "nats://h", stream: A, username: u, password_file: `+pass+`, columns: [{table: "*.*", hash: [x]}], hash_key: {file: `+key+`}}}`),
		env("TOK", tok))
	expect(t, e)
	if got := string(f.Sinks[0].HashKeyBytes); got != "0123456789abcdef-key-material" {
		t.Errorf("hash key %q", got)
	}
	if f.Sinks[0].Conn.Password != "hunter2" || f.RawStream.Conn.Token != "t0ken" || f.RawStream.Conn.TLS.CAFile != key {
		t.Errorf("conn %+v / %+v", f.Sinks[0].Conn, f.RawStream.Conn)
	}
	c, from := f.RawConn()
	if from != "spec.raw_stream" || c.URL() != "nats://r1,nats://r2" || c.Token != "t0ken" {
		t.Errorf("RawConn %+v from %q", c, from)
	}

	_, e = parse(t, doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, token_file: '${TOK}'}}`), env("TOK", filepath.Join(dir, "from-env-value")))
	expect(t, e, "spec.sinks[0].config.token_file: cannot read file the value from the environment: no such file or directory")
}

func TestRawConn(t *testing.T) {
	f, e := parse(t, doc("  raw_stream: {embedded: {dir: /var/lib/pgjet}}\n", natsA), nil)
	expect(t, e)
	c, from := f.RawConn()
	if from != "spec.raw_stream.embedded" || c.URL() != "nats://127.0.0.1:4222" || f.RawStream.Embedded.Dir != "/var/lib/pgjet" {
		t.Errorf("embedded: %+v from %q", c, from)
	}
	f, e = parse(t, doc("", `{type: stdout, config: {id: s}}`, `{type: nats, config: {id: b, url: "nats://b", stream: B}}`), nil)
	expect(t, e)
	if c, from := f.RawConn(); from != "spec.sinks[1].config" || c.URL() != "nats://b" {
		t.Errorf("first nats sink: %+v from %q", c, from)
	}
	f, _ = parse(t, doc("", `{type: stdout, config: {id: s}}`), nil)
	if c, from := f.RawConn(); from != "" || len(c.URLs) != 0 {
		t.Errorf("no nats sink: %+v from %q", c, from)
	}
}

// TestAnchors: anchors, aliases and merge keys work as YAML says; explicit
// keys win over merged ones.
func TestAnchors(t *testing.T) {
	text := head + source + `  sinks:
    - type: nats
      config: &base
        id: a
        url: nats://shared:4222
        stream: A
        tables: &t [public.*]
    - type: nats
      config:
        <<: *base
        id: b
        stream: B
        tables: *t
`
	f, e := parse(t, text, nil)
	expect(t, e)
	b := f.Sinks[1]
	if b.ID != "b" || b.Stream.Name != "B" || b.Conn.URL() != "nats://shared:4222" || !reflect.DeepEqual(b.Include, []string{"public.*"}) {
		t.Errorf("merged sink %+v", b)
	}
}

func TestHas(t *testing.T) {
	f, e := parse(t, doc("  raw_stream:\n    url: nats://r\n    max_age:\n  batch: {max_ms: 0}\n", natsA), nil)
	expect(t, e)
	for path, want := range map[string]bool{
		"spec.raw_stream": true, "spec.raw_stream.url": true, "spec.raw_stream.max_age": false, "spec.raw_stream.name": false,
		"spec.batch.max_ms": true, "spec.batch.max_events": false, "spec.sinks[0].config.stream": true, "spec.sinks[1]": false,
	} {
		if f.Has(path) != want {
			t.Errorf("Has(%q) = %v", path, !want)
		}
	}
	if f.Batch.MaxMS == nil || *f.Batch.MaxMS != 0 || f.RawStream.MaxAge != DefaultRawMaxAge {
		t.Errorf("batch %+v raw %+v", f.Batch, f.RawStream)
	}
}

func TestLoadMissingFile(t *testing.T) {
	f, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	e := asErrors(t, err)
	if f == nil || e.Len() != 1 || !strings.HasPrefix(e.Error(), "cannot read the pipeline file: open ") || f.RawStream.Name != "PGJET_RAW" {
		t.Errorf("file %v, error %v", f, err)
	}
	if e.For(ScopeRouter).Len() != 1 || e.For(ScopeCollector).Len() != 1 {
		t.Error("a file that cannot be read is every process's problem")
	}
}

// TestFull: a file with every key loads, and each lands in its field.
func TestFull(t *testing.T) {
	f, err := Load("testdata/full.yaml", env("POSTGRES_DSN", "postgres://u:s3cret@h/db", "RAW_PASSWORD", "hunter2", "OUT_TOKEN", "t0ken", "HASH_KEY", "key-material-0123456789"))
	expect(t, asErrors(t, err))
	if f.Metadata.Labels["tier"] != "1" || f.Source.StartPosition != Latest || f.Source.ID != "main-db" ||
		f.RawStream.Name != "RAW_FULL" || f.RawStream.Conn.Password != "hunter2" || f.RawStream.MaxAge != 14*24*time.Hour ||
		f.RawStream.Replicas != 3 || f.Batch.MaxEvents != 1000 || *f.Batch.MaxMS != 50 || f.CommitPolicy.Mode != CommitAll {
		t.Errorf("file %+v", f)
	}
	o, c := f.Sinks[0], f.Sinks[1]
	if o.Conn.Token != "t0ken" || o.Prefix != "shop" || o.Durable != "orders-router" || o.Partition != "1/3" ||
		o.Stream.MaxMsgs != 1000000 || o.Stream.MaxBytes != 10<<30 || o.BatchTimeout != 2*time.Minute ||
		o.StartPosition != Earliest || o.DeadLetterSubject != "{prefix}.dead" || o.Envelope.Settings["mode"] != "binary" ||
		len(o.Operations) != 4 || string(o.HashKeyBytes) != "key-material-0123456789" {
		t.Errorf("nats sink %+v", o)
	}
	if c.Format != "text" || c.Durable != "console-router" || c.StartPosition != Latest || c.Envelope.Settings != nil ||
		!reflect.DeepEqual(c.Operations, []string{"truncate"}) {
		t.Errorf("stdout sink %+v", c)
	}
	if conn, from := f.RawConn(); from != "spec.raw_stream" || conn.Username != "collector" {
		t.Errorf("RawConn %+v from %q", conn, from)
	}
}
