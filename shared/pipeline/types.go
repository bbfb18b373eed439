package pipeline

import "time"

// API versions. A DeltaForge file is read as a pgjet file (File.Compat):
// the shapes are the same, so users keep the file they have.
const (
	APIVersion       = "pgjet/v1"
	CompatAPIVersion = "deltaforge/v1"
	Kind             = "Pipeline"
)

// Start positions of a source or a sink.
const (
	Earliest = "earliest"
	Latest   = "latest"
)

// Values of a sink's group key.
const (
	GroupNone        = "none"
	GroupTransaction = "transaction"
)

// Sink types.
const (
	TypeNATS   = "nats"
	TypeStdout = "stdout"
)

// Defaults that are not spelled out elsewhere in pgjet.
const (
	DefaultSlot          = "pgjet"
	DefaultPublication   = "pgjet"
	DefaultListen        = "127.0.0.1:4222"
	DefaultRawMaxAge     = 7 * 24 * time.Hour
	DefaultRawDuplicates = time.Hour
	DefaultPrefix        = "postgres"
	DefaultEnvelope      = "native"
	DefaultSendTimeout   = 10 * time.Second
	DefaultBatchTimeout  = 60 * time.Second
	MinHashKeyBytes      = 16
	CommitRequired       = "required"
	CommitAll            = "all"
	DefaultCommitPolicy  = CommitRequired
	maxReplicas          = 5
	maxBatchMS           = 1000
	defaultReplicas      = 1
	defaultStorage       = "file"
	defaultPersist       = "default"
	defaultEncoding      = "json"
	defaultStdoutFormat  = "json"
	defaultSourceType    = "postgres"
	defaultStartPosition = Earliest
)

// Operations is every operation a sink can select, in the order the
// documentation lists them; a sink without operations selects all.
var Operations = []string{"insert", "update", "delete", "truncate", "message"}

// File is a pipeline file after loading: ${VAR} expanded, defaults applied,
// secrets read from their files. Problems found while loading are in the
// error Load and Parse return, and in Problems.
type File struct {
	// APIVersion is "pgjet/v1" or "deltaforge/v1".
	APIVersion string
	// Compat is true for a DeltaForge file (apiVersion deltaforge/v1). The
	// keys mean the same; pgjet's guarantees replace DeltaForge's options
	// (required, respect_source_tx, commit_policy accept only the values
	// pgjet always provides).
	Compat bool
	// Metadata names the pipeline.
	Metadata Metadata
	// Source is the PostgreSQL database and slot the collector reads.
	Source Source
	// RawStream is the JetStream stream the collector writes raw records
	// to and every router reads.
	RawStream RawStream
	// Sinks are the router's routes, each with its own durable consumer on
	// the raw stream and its own output.
	Sinks []Sink
	// Batch shapes the collector's raw publishes.
	Batch Batch
	// CommitPolicy is when the slot is confirmed; pgjet has one policy.
	CommitPolicy CommitPolicy
	// Metrics is where each process serves its metrics and health.
	Metrics Metrics

	// at locates every key and list item of the file by path (for sorting
	// problems); has holds those with a non-null value (Has).
	at  map[string]pos
	has map[string]bool
	// rawFrom is where RawConn comes from.
	rawFrom  string
	problems *Errors
}

// Metadata names and describes the pipeline.
type Metadata struct {
	// Name is required and follows the stream-name rule (wire.CheckName):
	// it is the first part of every sink's default durable consumer name.
	Name string
	// Tenant is informational: pgjet reads it but does not use it.
	Tenant string
	// Description is informational.
	Description string
	// Labels are informational key/value pairs.
	Labels map[string]string
}

// Source is the PostgreSQL side, read by the collector.
type Source struct {
	// Type is "postgres", the only source type.
	Type string
	// ID is the source's name in raw subjects (pgjet.raw.<id>) and event
	// ids; default: the slot name. Changing it makes routers see a new
	// source. Follows wire.CheckName.
	ID string
	// DSN is the PostgreSQL connection string (URL or key=value); required
	// for the collector. It may hold a password: never log it unredacted.
	DSN string
	// Slot is the logical replication slot, created with pgoutput when
	// missing; default "pgjet".
	Slot string
	// Publication is the publication streamed; default "pgjet".
	Publication string
	// Tables ("schema.table") are created into the publication, or added
	// to it; empty: the publication is used as it is.
	Tables []string
	// StartPosition is "earliest" (default) or "latest": where a new slot
	// starts, and the default start of every sink's consumer.
	StartPosition string
	// Failover: the slot is a failover slot (PostgreSQL 17+), synchronized
	// to standbys with sync_replication_slots, so that the collector
	// follows a promotion (docs/postgres.md).
	Failover bool
}

// RawStream is pgjet's own section: the raw stream and how to reach it.
// Without url or embedded, the raw stream is on the server of the first
// nats sink (RawConn).
type RawStream struct {
	// Name is the raw stream's name; default wire.DefaultRawStream.
	Name string
	// Conn reaches the NATS server holding the raw stream; empty unless
	// the section has a url.
	Conn Conn
	// Embedded runs a JetStream server inside the collector instead of
	// connecting to one; nil unless given. Excludes a url.
	Embedded *Embedded
	// MaxAge is how long raw records are kept when the collector creates
	// the stream; default 168h (7d).
	MaxAge time.Duration
	// DuplicateWindow is the raw stream's duplicate window when created;
	// default 1h. A collector republishing after a crash within it stores
	// nothing twice.
	DuplicateWindow time.Duration
	// Replicas of the raw stream when created, 1 to 5; default 1 (use 3 on
	// a 3-node cluster: nothing detects one).
	Replicas int
}

// Embedded is the collector's in-process JetStream server.
type Embedded struct {
	// Dir is where it stores its data; required.
	Dir string
	// Listen is the address routers connect to; default 127.0.0.1:4222.
	Listen string
	// Authentication of clients, at most one: Username with Password
	// (password or password_file; secret), NKeys (user public keys) or
	// AccountsFile (a nats-server config file's accounts and users), with
	// Account the account of the collector's connection.
	Username, Password    string
	NKeys                 []string
	AccountsFile, Account string
	// AllowUnauthenticated lets a listen address beyond loopback go
	// without authentication.
	AllowUnauthenticated bool
	// TLS for clients: CertFile and KeyFile, the server's certificate;
	// CAFile, when given, verifies clients' certificates (required then).
	TLS TLS
	// Domain is the server's JetStream domain.
	Domain string
	// Leaf joins a hub as a leaf node (nil: no link): URLs, credentials
	// (credentials_file, or username and password) and TLS.
	Leaf *Conn
}

// Conn is how to reach and authenticate to a NATS server. Give at most one
// authentication method: username and password, token, nkey_file or
// credentials_file; TLS goes with any.
type Conn struct {
	// URLs are the server URLs (url: a string, comma-separated, or a list).
	// They may hold credentials: log them redacted.
	URLs []string
	// CredentialsFile is a NATS credentials file (user JWT and nkey seed).
	CredentialsFile string
	// NKeyFile is a file holding a user nkey seed.
	NKeyFile string
	// Username goes with Password.
	Username string
	// Password is password, or the content of password_file (trailing
	// newline removed). Secret.
	Password string
	// Token is token, or the content of token_file. Secret.
	Token string
	// TLS names PEM files; all optional.
	TLS TLS
}

// TLS names PEM files for the NATS connection.
type TLS struct {
	// CAFile replaces the system's roots for verifying the server.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, for
	// servers that require one; given together.
	CertFile, KeyFile string
}

// Sink is one route: the raw changes it selects, how it renders them and
// where it sends them. Each has its own durable consumer on the raw stream,
// so a slow or unreachable sink holds back only itself (a sink that fails
// for good, e.g. on a gap in the raw stream, stops the router: loud).
type Sink struct {
	// Type is "nats" (publish to a JetStream stream) or "stdout" (print).
	Type string
	// Path is the sink's config in the file, "spec.sinks[1].config": add
	// problems found later at Path + ".key".
	Path string
	// ID names the sink; required, unique among sinks, wire.CheckName.
	ID string
	// Conn is the output's NATS server (nats sinks; url required).
	Conn Conn
	// Subject is the output subject: a template over {prefix} {source}
	// {schema} {table} {op}, or a fixed subject; "" = the router's default
	// ({prefix}.{schema}.{table}.{op}). Kept as given; the router checks it.
	Subject string
	// MessageSubject is the subject template of logical decoding messages
	// (pg_logical_emit_message); "" = the router's default.
	MessageSubject string
	// DeadLetterSubject is where events that cannot be rendered go; "" =
	// the router's default.
	DeadLetterSubject string
	// Transactions publishes a begin and a commit event (with the count of
	// the route's events, in total and per table) around the route's events
	// of each transaction that has some (pgoutput-stream's
	// {prefix}.transactions.{begin|commit}.event); default false.
	Transactions bool
	// TransactionSubject is their subject template over {prefix} {source}
	// {event}; "" = the router's default.
	TransactionSubject string
	// Relations publishes a relation event (the table's columns, types,
	// key columns and replica identity) before the route's first event of
	// a table and whenever its columns change; default false.
	Relations bool
	// RelationSubject is their subject template over {prefix} {source}
	// {schema} {table}; "" = the router's default
	// ({prefix}.{schema}.{table}.relation).
	RelationSubject string
	// Standby makes the routers that run this sink replicas on one durable:
	// one is active, the others take over when it stops (a pinned priority
	// group; nats-server 2.11+); default false. StandbyTTL is how long the
	// server keeps a silent active pinned (standby_ttl; default: the
	// router's, 10s).
	Standby    bool
	StandbyTTL time.Duration
	// Group (group: transaction) publishes each transaction's events of
	// the route as one message, split into parts at the server's max
	// payload, instead of one message per event (group: none, the
	// default). NATS sinks only.
	Group bool
	// GroupSubject is the groups' subject template over {prefix} {source};
	// "" = the router's default ({prefix}.transactions.{source}).
	GroupSubject string
	// Prefix is the {prefix} of subjects; default "postgres".
	Prefix string
	// Stream is the output stream (nats sinks; required), created when
	// missing. No two sinks share one.
	Stream Stream
	// Durable is the sink's durable consumer on the raw stream; default
	// "<metadata.name>-<id>". Renaming it starts the sink over from
	// StartPosition.
	Durable string
	// Partition is "i/N": this router publishes the share i of N of the
	// changes (by schema, table and key); "" = all. Kept as written.
	Partition string
	// Envelope is the event format.
	Envelope Envelope
	// Encoding is "json" (default) or "msgpack".
	Encoding string
	// SendTimeout is how long a publish waits for its ack before the event
	// is republished (send_timeout_secs, default 10).
	SendTimeout time.Duration
	// BatchTimeout is the raw consumer's ack wait: a raw record not
	// acknowledged in this time is redelivered (batch_timeout_secs, default
	// 60, at least SendTimeout).
	BatchTimeout time.Duration
	// StartPosition is where a new consumer starts, "earliest" or
	// "latest"; default the source's.
	StartPosition string
	// Include and Exclude are table globs "schema.table" (path.Match per
	// side); empty Include = every table.
	Include, Exclude []string
	// Operations are the operations selected; default all of Operations.
	Operations []string
	// MessagePrefixes are globs on a logical decoding message's prefix;
	// empty = every prefix.
	MessagePrefixes []string
	// Columns are column rules, applied in order to the tables they match.
	Columns []ColumnRule
	// HashKeyBytes is the HMAC key of hash rules (hash_key: env or file);
	// at least 16 bytes, required when a rule hashes. Secret.
	HashKeyBytes []byte
	// Format is how a stdout sink prints: "json" (default), "json-pretty"
	// or "text". Empty for nats sinks.
	Format string
}

// Stream is a sink's output stream. Zero values are the router's defaults.
type Stream struct {
	// Name of the stream; required (stream: NAME is this alone).
	Name string
	// Subjects the stream captures when created; empty = the route's
	// subjects.
	Subjects []string
	// Replicas, 1 to 5; default 1.
	Replicas int
	// Storage is "file" (default) or "memory".
	Storage string
	// MaxAge, MaxBytes, MaxMsgs are the stream's limits; 0 = none.
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
	// DuplicateWindow is the stream's duplicate window; 0 = the router's
	// default.
	DuplicateWindow time.Duration
	// Persist is "default" (the server's fsync policy) or "async" (faster;
	// a NATS server crash can lose the latest events: rebuild by replay).
	Persist string
}

// Envelope selects the event format.
type Envelope struct {
	// Type is the envelope's name: "native" (default), "cloudevents",
	// "debezium", ...
	Type string
	// Settings are the envelope's other keys (type_prefix, ...), values
	// as YAML gives them (string, int, float64, bool, nil, []any,
	// map[string]any) after ${VAR} expansion. The router validates them.
	Settings map[string]any
}

// ColumnRule transforms columns of the tables it matches.
type ColumnRule struct {
	// Table is a "schema.table" glob.
	Table string
	// Drop removes these columns from events.
	Drop []string
	// Mask replaces each column's value with the string given.
	Mask map[string]string
	// Hash replaces values with their HMAC-SHA256 (keyed by hash_key), so
	// equal values stay joinable without being readable.
	Hash []string
}

// Batch shapes the collector's raw publishes. pgjet keeps transactions
// whole: these only decide how many go into one raw message.
type Batch struct {
	// MaxEvents caps the changes per raw message (max_events); 0 = no cap.
	MaxEvents int
	// MaxMS is the longest a raw publish waits for more transactions, in
	// milliseconds (0..1000); nil = the collector's --linger default.
	MaxMS *int
	// RespectSourceTx is always true: pgjet keeps every transaction whole
	// and in commit order.
	RespectSourceTx bool
}

// CommitPolicy is when the slot is confirmed.
type CommitPolicy struct {
	// Mode is "required" (default) or "all": both mean pgjet's only
	// policy, slot confirmed after JetStream stored the raw record.
	Mode string
}
