package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProblems: each file has exactly the problems listed, at their paths.
func TestProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	creds := write("nats.creds", "creds")
	pass := write("pass", "hunter2\n")
	emptyFile := write("empty", "\n")
	missing := filepath.Join(dir, "missing")
	shortKey := write("short", "key-material\n")

	tests := []struct {
		name string
		text string
		env  []string
		want []string
	}{
		{name: "minimal", text: doc("", natsA)},

		// Unknown keys, at several depths.
		{name: "unknown top", text: doc("", natsA) + "extra: 1\n", want: []string{"extra: unknown key"}},
		{name: "unknown spec", text: doc("  sink: []\n", natsA), want: []string{"spec.sink: unknown key (did you mean sinks?)"}},
		{name: "unknown metadata", text: strings.Replace(doc("", natsA), "{name: p}", "{name: p, nmae: q}", 1),
			want: []string{"metadata.nmae: unknown key (did you mean name?)"}},
		{name: "unknown source config", text: strings.Replace(doc("", natsA), "{dsn:", "{sloth: x, dsn:", 1),
			want: []string{"spec.source.config.sloth: unknown key (did you mean slot?)"}},
		{name: "unknown sink config", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, subjet: x}}`),
			want: []string{"spec.sinks[0].config.subjet: unknown key (did you mean subject?)"}},
		{name: "unknown sink key", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A}, name: x}`),
			want: []string{"spec.sinks[0].name: unknown key"}},
		{name: "unknown deep", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: {name: A, replica: 3}, tls: {ca: x}, columns: [{table: a.b, drop: [c], mask2: {}}]}}`),
			want: []string{
				"spec.sinks[0].config.stream.replica: unknown key (did you mean replicas?)",
				"spec.sinks[0].config.tls.ca: unknown key",
				"spec.sinks[0].config.columns[0].mask2: unknown key (did you mean mask?)",
			}},
		{name: "unknown raw and batch", text: doc("  raw_stream: {max_agee: 1h}\n  batch: {max_event: 1}\n  commit_policy: {moda: all}\n", natsA),
			want: []string{
				"spec.raw_stream.max_agee: unknown key (did you mean max_age?)",
				"spec.batch.max_event: unknown key (did you mean max_events?)",
				"spec.commit_policy.moda: unknown key (did you mean mode?)",
			}},

		// Keys of the other sink type.
		{name: "format on nats", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, format: text}}`),
			want: []string{"spec.sinks[0].config.format: format applies to stdout sinks"}},
		{name: "nats keys on stdout", text: doc("", `{type: stdout, config: {id: a, subject: x, url: "nats://h", stream: S, partition: 0/2}}`),
			want: []string{
				"spec.sinks[0].config.subject: subject applies to nats sinks",
				"spec.sinks[0].config.url: url applies to nats sinks",
				"spec.sinks[0].config.stream: stream applies to nats sinks",
				"spec.sinks[0].config.partition: partition applies to nats sinks",
			}},

		// YAML types.
		{name: "types", text: head + "  source: [postgres]\n  sinks: {a: b}\n  batch: {max_events: \"5\", max_ms: [1]}\n",
			want: []string{
				"spec.source: must be a mapping (key: value), not a list",
				"spec.sinks: must be a list (- item lines, or [a, b]), not a mapping",
				"spec.batch.max_events: must be an integer, not a string",
				"spec.batch.max_ms: must be an integer, not a list",
			}},
		{name: "sink types", text: doc("", `{type: nats, config: {id: [a], url: "nats://h", stream: A, required: "yes", send_timeout_secs: 1.5, tables: public.users, subject: {a: b}}}`),
			want: []string{
				"spec.sinks[0].config.id: must be a string, not a list",
				"spec.sinks[0].config.required: must be true or false, not a string",
				"spec.sinks[0].config.send_timeout_secs: must be an integer, not a number",
				"spec.sinks[0].config.tables: must be a list of table globs or {include: [...], exclude: [...]}, not a string",
				"spec.sinks[0].config.subject: must be a string, not a mapping",
			}},
		{name: "metadata missing", text: "apiVersion: pgjet/v1\nkind: Pipeline\nspec:\n" + source + "  sinks: [" + natsA + "]\n",
			want: []string{"metadata: is required"}},
		{name: "required keys", text: "kind: Pipeline\nmetadata: {tenant: x}\nspec:\n  source: {config: {}}\n  sinks: [{config: {}}, {type: nats, config: {}}, {type: stdout}]\n",
			want: []string{
				"apiVersion: is required: apiVersion: pgjet/v1",
				"metadata.name: is required",
				"spec.source.type: is required: type: postgres",
				"spec.source.config.dsn: is required",
				"spec.sinks[0].type: is required: nats or stdout",
				"spec.sinks[0].config.id: is required",
				"spec.sinks[1].config.id: is required",
				"spec.sinks[1].config.url: is required for a nats sink",
				"spec.sinks[1].config.stream: is required for a nats sink",
				"spec.sinks[2].config: is required",
			}},
		{name: "no sinks", text: doc("  sinks: []\n"), want: []string{"spec.sinks: has no sink"}},
		{name: "no spec", text: "apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: p}\n", want: []string{"spec: is required"}},

		// Every enum.
		{name: "enums", text: strings.NewReplacer("pgjet/v1", "pgjet/v2", "kind: Pipeline", "kind: pipeline", "type: postgres", "type: mysql").Replace(
			doc("  commit_policy: {mode: none}\n",
				`{type: kafka, config: {id: k}}`,
				`{type: nats, config: {id: a, url: "nats://h", stream: {name: A, storage: disk, persist: sync}, encoding: avro, start_position: middle, operations: [insert, upsert]}}`,
				`{type: stdout, config: {id: s, format: yaml}}`)),
			want: []string{
				`apiVersion: unknown value "pgjet/v2": use pgjet/v1 (or deltaforge/v1 for a DeltaForge file)`,
				`kind: unknown value "pipeline": use Pipeline`,
				`spec.source.type: unknown value "mysql": use postgres`,
				`spec.sinks[0].type: unknown value "kafka": use nats or stdout`,
				`spec.sinks[1].config.stream.storage: unknown value "disk": use file or memory`,
				`spec.sinks[1].config.stream.persist: unknown value "sync": use default or async`,
				`spec.sinks[1].config.encoding: unknown value "avro": use json or msgpack`,
				`spec.sinks[1].config.start_position: unknown value "middle": use earliest or latest`,
				`spec.sinks[1].config.operations[1]: unknown value "upsert": use insert, update, delete, truncate or message`,
				`spec.sinks[2].config.format: unknown value "yaml": use json, json-pretty or text`,
				`spec.commit_policy.mode: unknown value "none": pgjet confirms the slot only after JetStream stored the raw record`,
			}},
		{name: "source start position", text: strings.Replace(doc("", natsA), "{dsn:", "{start_position: now, dsn:", 1),
			want: []string{`spec.source.config.start_position: unknown value "now": use earliest or latest`}},
		{name: "source failover", text: strings.Replace(doc("", natsA), "{dsn:", "{failover: sometimes, dsn:", 1),
			want: []string{`spec.source.config.failover: must be true or false`}},

		// pgjet's guarantees replace DeltaForge's options.
		{name: "required false", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, required: false}}`),
			want: []string{"spec.sinks[0].config.required: cannot be false: pgjet never skips a sink's events: each route has its own consumer, so a slow or unreachable sink holds back only itself; remove the key or set true"}},
		{name: "respect_source_tx false", text: doc("  batch: {respect_source_tx: false}\n", natsA),
			want: []string{"spec.batch.respect_source_tx: cannot be false: pgjet keeps transactions whole and in commit order in the raw stream, and every event carries its transaction's xid, commit LSN and index"}},
		{name: "batch ranges", text: doc("  batch: {max_events: 0, max_ms: 1001}\n", natsA),
			want: []string{"spec.batch.max_events: must be at least 1", "spec.batch.max_ms: 1001 is out of range: use 0 to 1000"}},

		// Names.
		{name: "names", text: strings.Replace(doc("  raw_stream: {name: raw.stream}\n",
			`{type: nats, config: {id: "a b", url: "nats://h", stream: "X*", durable: "d.1"}}`), "{dsn:", "{id: s.1, slot: Bad-Slot, dsn:", 1),
			want: []string{
				`spec.source.config.slot: bad slot name "Bad-Slot": PostgreSQL allows lower-case letters, digits and '_', at most 63`,
				`spec.source.config.id: bad name "s.1": use letters, digits, '_' and '-'`,
				`spec.raw_stream.name: bad name "raw.stream"`,
				`spec.sinks[0].config.id: bad name "a b"`,
				`spec.sinks[0].config.stream: bad name "X*"`,
				`spec.sinks[0].config.durable: bad name "d.1"`,
			}},
		{name: "source tables", text: strings.Replace(doc("", natsA), "{dsn:", "{tables: [public.users, users, public.*, .x], dsn:", 1),
			want: []string{
				`spec.source.config.tables[1]: "users": use schema.table`,
				`spec.source.config.tables[2]: "public.*" is a pattern`,
				`spec.source.config.tables[3]: ".x": use schema.table`,
			}},

		// Sinks side by side.
		{name: "duplicate ids", text: doc("", natsA, `{type: nats, config: {id: a, url: "nats://h", stream: B}}`, `{type: stdout, config: {id: a, durable: x}}`),
			want: []string{
				`spec.sinks[1].config.id: "a" is also the id of spec.sinks[0].config: sink ids must be unique`,
				`spec.sinks[2].config.id: "a" is also the id of spec.sinks[0].config`,
				// Both default to p-a.
				`spec.sinks[1].config.durable: p-a is also the durable consumer of spec.sinks[0].config`,
			}},
		{name: "shared stream", text: doc("", natsA, `{type: nats, config: {id: b, url: "nats://h", stream: {name: A}}}`),
			want: []string{"spec.sinks[1].config.stream.name: A is also the stream of spec.sinks[0].config: two sinks may not share a stream, since the events of one change carry one id (Nats-Msg-Id) in both and the stream would drop the second sink's as duplicates"}},
		{name: "raw stream as output", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: PGJET_RAW}}`),
			want: []string{"spec.sinks[0].config.stream: PGJET_RAW is the raw stream"}},
		{name: "shared durable", text: doc("", natsA, `{type: nats, config: {id: b, url: "nats://h", stream: B, durable: p-a}}`),
			want: []string{"spec.sinks[1].config.durable: p-a is also the durable consumer of spec.sinks[0].config"}},

		// Globs and column rules.
		{name: "globs", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, tables: {include: ["public.[a", "*"], exclude: ["a.\\"]}, message_prefixes: ["[x"], columns: [{table: nodot, hash: [h]}]}}`),
			want: []string{
				`spec.sinks[0].config.tables.include[0]: "public.[a" is not a valid glob`,
				`spec.sinks[0].config.tables.include[1]: "*" is not schema.table: use e.g. public.users, public.*, *.*`,
				`spec.sinks[0].config.tables.exclude[0]: "a.\\" is not a valid glob`,
				`spec.sinks[0].config.message_prefixes[0]: "[x" is not a valid glob`,
				`spec.sinks[0].config.columns[0].table: "nodot" is not schema.table`,
				`spec.sinks[0].config.hash_key: is required: a column rule hashes`,
			}},
		{name: "column twice", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, columns: [{table: "*.*", drop: [a, b, b], mask: {a: x}, hash: [b]}, {table: public.t}, {drop: [c]}]}}`),
			want: []string{
				"spec.sinks[0].config.columns[0].drop[2]: column b is listed twice",
				"spec.sinks[0].config.columns[0].mask.a: column a is also in drop: a rule does one thing to a column",
				"spec.sinks[0].config.columns[0].hash[0]: column b is also in drop",
				"spec.sinks[0].config.columns[1]: does nothing: give drop, mask or hash",
				"spec.sinks[0].config.columns[2].table: is required",
			}},
		{name: "operations", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, operations: [insert, insert]}}`, `{type: stdout, config: {id: b, operations: []}}`),
			want: []string{"spec.sinks[0].config.operations[1]: insert is listed twice", "spec.sinks[1].config.operations: is empty"}},

		// Timeouts and partitions.
		{name: "timeouts", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, send_timeout_secs: 0, partition: 2/2}}`,
			`{type: nats, config: {id: b, url: "nats://h", stream: B, send_timeout_secs: 20, batch_timeout_secs: 10, partition: "1-2"}}`),
			want: []string{
				"spec.sinks[0].config.send_timeout_secs: 0 is out of range: use 1 to 86400",
				`spec.sinks[0].config.partition: "2/2" is not i/N with 0 <= i < N`,
				"spec.sinks[1].config.batch_timeout_secs: 10 is out of range: use send_timeout_secs (20) to 86400",
				`spec.sinks[1].config.partition: "1-2" is not i/N`,
			}},

		// Connections.
		{name: "conn rules", text: doc("",
			`{type: nats, config: {id: a, url: "nats://h", stream: A, username: u}}`,
			`{type: nats, config: {id: b, url: "nats://h", stream: B, password: hunter2}}`,
			`{type: nats, config: {id: c, url: "nats://h", stream: C, token: t0ken, token_file: `+pass+`, tls: {cert_file: `+creds+`}}}`,
			`{type: nats, config: {id: d, url: "nats://h", stream: D, username: u, password: hunter2, credentials_file: `+creds+`}}`,
			`{type: nats, config: {id: e, url: [], stream: E, username: u, password_file: `+emptyFile+`, nkey_file: `+missing+`}}`),
			want: []string{
				"spec.sinks[0].config.username: needs password or password_file",
				"spec.sinks[1].config.password: needs username",
				"spec.sinks[2].config.token_file: token and token_file exclude each other",
				"spec.sinks[2].config.tls: cert_file and key_file go together",
				"spec.sinks[3].config.credentials_file: username and credentials_file are two authentication methods: give one",
				"spec.sinks[4].config.url: is empty",
				`spec.sinks[4].config.password_file: file "` + emptyFile + `" is empty`,
				`spec.sinks[4].config.nkey_file: cannot read file "` + missing + `": no such file or directory`,
				"spec.sinks[4].config.nkey_file: username and nkey_file are two authentication methods",
			}},
		{name: "raw stream conn", text: doc("  raw_stream:\n    credentials_file: "+creds+"\n    embedded: {listen: nowhere}\n    max_age: 0s\n    duplicate_window: 3600\n    replicas: 6\n", natsA),
			want: []string{
				"spec.raw_stream.credentials_file: applies only with url",
				"spec.raw_stream.embedded.dir: is required",
				`spec.raw_stream.embedded.listen: "nowhere" is not host:port`,
				"spec.raw_stream.max_age: must be positive",
				"spec.raw_stream.duplicate_window: must be a duration with a unit, like 30s, 168h or 7d, not an integer",
				"spec.raw_stream.replicas: 6 is out of range: use 1 to 5",
			}},
		{name: "url and embedded", text: doc("  raw_stream: {url: nats://x, embedded: {dir: /d}, max_age: 7x}\n", natsA),
			want: []string{
				"spec.raw_stream.embedded: url and embedded exclude each other",
				`spec.raw_stream.max_age: "7x" is not a duration`,
			}},

		// Hash keys.
		{name: "hash key env", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, columns: [{table: "*.*", hash: [x]}], hash_key: {env: HK}}}`),
			env: []string{"HK", "0123456789abcdef\n"}},
		{name: "hash key short", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, columns: [{table: "*.*", hash: [x]}], hash_key: {file: `+shortKey+`}}}`),
			want: []string{"spec.sinks[0].config.hash_key: the key has 12 bytes: use at least 16"}},
		{name: "hash key unset", text: doc("", `{type: nats, config: {id: a, url: "nats://h", stream: A, hash_key: {env: HK}}}`,
			`{type: nats, config: {id: b, url: "nats://h", stream: B, hash_key: {env: HK, file: x}}}`,
			`{type: nats, config: {id: c, url: "nats://h", stream: C, hash_key: {}}}`,
			`{type: nats, config: {id: d, url: "nats://h", stream: D, hash_key: {file: `+missing+`}}}`),
			want: []string{
				"spec.sinks[0].config.hash_key.env: environment variable HK is not set",
				"spec.sinks[1].config.hash_key.file: env and file exclude each other",
				"spec.sinks[2].config.hash_key: give env: NAME or file: PATH",
				"spec.sinks[3].config.hash_key.file: cannot read file",
			}},

		// The document itself.
		{name: "empty", text: "# nothing\n", want: []string{": the file is empty"}},
		{name: "syntax", text: "apiVersion: pgjet/v1\nkind: [\n", want: []string{": yaml: line"}},
		{name: "two documents", text: doc("", natsA) + "---\nkind: Pipeline\n", want: []string{": the file holds more than one YAML document"}},
		{name: "repeated key", text: doc("", natsA) + "kind: Pipeline\n", want: []string{"kind: is given twice (first on line 2): remove one"}},
		{name: "not a mapping", text: "- a\n", want: []string{": must be a mapping (key: value), not a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e := parse(t, tt.text, env(tt.env...))
			expect(t, e, tt.want...)
		})
	}
}
