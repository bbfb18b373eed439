package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// DefaultBucket is the key-value bucket holding snapshot progress unless
// configured.
const DefaultBucket = "PGJET_SNAPSHOTS"

// Kinds of jobs.
const (
	KindInitial  = "initial"
	KindBackfill = "backfill"
)

// States of a job and of its tables.
const (
	StateRequested = "requested" // written by a requester, not yet taken up
	StatePending   = "pending"   // a table not started yet
	StateRunning   = "running"
	StateDone      = "done"
	StateCancelled = "cancelled"
	StateFailed    = "failed" // refused or stopped by an error it names
)

// InitialID is the id of the initial snapshot's job.
const InitialID = "initial"

// Job is a snapshot or backfill as its entry in the bucket holds it: what
// was asked, and how far it got. Only the collector running it writes its
// progress; requesters create it and may set Cancel.
type Job struct {
	ID     string          `json:"id"`
	Source string          `json:"source"`
	Kind   string          `json:"kind"`
	State  string          `json:"state"`
	Tables []TableProgress `json:"tables"`
	// Sinks, when set, are the only sinks that take the job's reads.
	Sinks []string `json:"sinks,omitempty"`
	// By says who asked: cli, sql, auto (a table added to the
	// publication), initial (the collector, creating its slot).
	By string `json:"by"`
	// Cancel is set by a requester to stop the job; the collector ends it
	// as cancelled after its current chunk.
	Cancel bool   `json:"cancel,omitempty"`
	Error  string `json:"error,omitempty"`
	// Slot and Position: for the initial snapshot, the slot created with
	// it and the position of its reads (consistent point - 1).
	Slot      string     `json:"slot,omitempty"`
	Position  uint64     `json:"position,omitempty"`
	ChunkRows int        `json:"chunk_rows,omitempty"`
	Created   time.Time  `json:"created"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	// Resumed counts the times the job went on after its collector
	// stopped (a crash or a restart).
	Resumed int `json:"resumed,omitempty"`
}

// TableProgress is how far a job got in one table. Rows and LastKey count
// what the raw stream acknowledged: a resumed job goes on after LastKey.
type TableProgress struct {
	Table string `json:"table"`
	State string `json:"state"`
	// LastKey is the text form of the key of the last row stored.
	LastKey  []string   `json:"last_key,omitempty"`
	Rows     int64      `json:"rows"`
	Chunks   int64      `json:"chunks"`
	Estimate int64      `json:"estimate"`
	Error    string     `json:"error,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Resumed: rows stored before the job last resumed, which the rate
	// leaves out.
	Resumed int64 `json:"resumed_rows,omitempty"`
}

// Final reports whether the job has ended.
func (j *Job) Final() bool {
	return j.State == StateDone || j.State == StateCancelled || j.State == StateFailed
}

// TableNames are the job's tables, in its order.
func (j *Job) TableNames() []string {
	out := make([]string, len(j.Tables))
	for i := range j.Tables {
		out[i] = j.Tables[i].Table
	}
	return out
}

// Table returns the progress of the table named name, nil if the job has
// none.
func (j *Job) Table(name string) *TableProgress {
	for i := range j.Tables {
		if j.Tables[i].Table == name {
			return &j.Tables[i]
		}
	}
	return nil
}

// After is the key a table's next chunk starts after: nil from the start.
func (t *TableProgress) After() []wire.Value {
	if t.LastKey == nil {
		return nil
	}
	key := make([]wire.Value, len(t.LastKey))
	for i, s := range t.LastKey {
		key[i] = wire.Value{Kind: wire.KindText, Data: []byte(s)}
	}
	return key
}

// Rate is the rows per second of a running table since it started (or
// last resumed), and the estimated time left; zero when unknown.
func (t *TableProgress) Rate(now time.Time) (perSec float64, left time.Duration) {
	if t.Started == nil || t.State != StateRunning {
		return 0, 0
	}
	secs := now.Sub(*t.Started).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	perSec = float64(t.Rows-t.Resumed) / secs
	if perSec > 0 && t.Estimate > t.Rows {
		left = time.Duration(float64(t.Estimate-t.Rows) / perSec * float64(time.Second))
	}
	return perSec, left
}

// Store holds the jobs of one source in a JetStream key-value bucket,
// under <source>.job.<id>: progress survives the collector, and any
// process with access to the bucket can ask for a backfill or follow one.
type Store struct {
	kv     jetstream.KeyValue
	source string
}

// OpenStore opens (creating when create, with replicas) the bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, bucket, source string, create bool, replicas int) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "pgjet snapshot and backfill progress, written by pgjet-collector",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("snapshot bucket %s does not exist: the collector creates it when it starts (is it running, with the same --raw-stream server and --snapshot-bucket?)", bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv, source: source}, nil
}

// Source is the source whose jobs the store holds.
func (s *Store) Source() string { return s.source }

func (s *Store) key(id string) string { return s.source + ".job." + id }

// CheckID reports whether id can name a job: a key token of the bucket.
func CheckID(id string) error {
	if id == "" || len(id) > 64 || strings.IndexFunc(id, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return fmt.Errorf("bad job id %q: use letters, digits, '-' and '_', at most 64", id)
	}
	return nil
}

// Get returns the job id and its entry's revision; jetstream.ErrKeyNotFound
// when there is none.
func (s *Store) Get(ctx context.Context, id string) (*Job, uint64, error) {
	e, err := s.kv.Get(ctx, s.key(id))
	if err != nil {
		return nil, 0, err
	}
	j, err := decodeJob(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("job %s: %w", id, err)
	}
	return j, e.Revision(), nil
}

func decodeJob(b []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Create writes a new job; jetstream.ErrKeyExists when its id is taken.
func (s *Store) Create(ctx context.Context, j *Job) (uint64, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	return s.kv.Create(ctx, s.key(j.ID), b)
}

// Put writes j whatever the entry holds.
func (s *Store) Put(ctx context.Context, j *Job) (uint64, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	return s.kv.Put(ctx, s.key(j.ID), b)
}

// Update writes j if its entry is still at revision rev;
// jetstream.ErrKeyRevisionMismatch (or ErrKeyExists) when someone wrote it
// since.
func (s *Store) Update(ctx context.Context, j *Job, rev uint64) (uint64, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	return s.kv.Update(ctx, s.key(j.ID), b, rev)
}

// conflict reports whether err is a compare-and-set conflict.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// Modify applies change to the job id until it is written without a
// conflicting write in between, and returns the job as written.
func (s *Store) Modify(ctx context.Context, id string, change func(j *Job) error) (*Job, error) {
	for {
		j, rev, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(j); err != nil {
			return nil, err
		}
		_, err = s.Update(ctx, j, rev)
		if err == nil {
			return j, nil
		}
		if !conflict(err) {
			return nil, err
		}
	}
}

// List returns the source's jobs, the oldest first.
func (s *Store) List(ctx context.Context) ([]*Job, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, s.source+".job.>")
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []*Job
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		j, err := decodeJob(e.Value())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		jobs = append(jobs, j)
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].Created.Before(jobs[b].Created) })
	return jobs, nil
}

// Watch follows the source's job entries: every current one, then changes.
func (s *Store) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.Watch(ctx, s.source+".job.>")
}

// JobOf decodes a watched entry; nil for a deleted one.
func JobOf(e jetstream.KeyValueEntry) (*Job, error) {
	if e.Operation() != jetstream.KeyValuePut {
		return nil, nil
	}
	return decodeJob(e.Value())
}

// Forget deletes the entries of jobs that ended before cutoff, so the
// bucket does not grow with every backfill ever run.
func (s *Store) Forget(ctx context.Context, cutoff time.Time) error {
	jobs, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Final() && j.Finished != nil && j.Finished.Before(cutoff) {
			if err := s.kv.Delete(ctx, s.key(j.ID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("forget job %s: %w", j.ID, err)
			}
		}
	}
	return nil
}

// NewJob returns a job of kind for tables, asked by by.
func NewJob(id, source, kind, by string, tables []string, sinks []string) *Job {
	j := &Job{ID: id, Source: source, Kind: kind, State: StateRequested, By: by, Sinks: slices.Clone(sinks), Created: time.Now().UTC()}
	for _, t := range tables {
		j.Tables = append(j.Tables, TableProgress{Table: t, State: StatePending})
	}
	return j
}

// Published returns the publication's tables as last recorded (auto
// backfill), nil when never recorded.
func (s *Store) Published(ctx context.Context) ([]string, error) {
	e, err := s.kv.Get(ctx, s.source+".published")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var tables []string
	if err := json.Unmarshal(e.Value(), &tables); err != nil {
		return nil, err
	}
	if tables == nil {
		tables = []string{}
	}
	return tables, nil
}

// SetPublished records the publication's tables.
func (s *Store) SetPublished(ctx context.Context, tables []string) error {
	b, err := json.Marshal(tables)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, s.source+".published", b)
	return err
}
