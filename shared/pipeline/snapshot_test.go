package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

// withSource is a pipeline file whose source config is cfg (a flow
// mapping's inside, after the dsn).
func withSource(cfg string) string {
	return strings.Replace(doc("", natsA), `config: {dsn: "postgres://u:s3cret@h/db"}`, `config: {dsn: "postgres://u:s3cret@h/db", `+cfg+`}`, 1)
}

// A DeltaForge file's start_position says whether its user wants the rows
// that exist: earliest takes an initial snapshot, latest does not; a
// snapshot.mode given wins either way.
func TestSnapshotMode(t *testing.T) {
	tests := []struct {
		cfg  string
		mode string
	}{
		{`start_position: earliest`, SnapshotInitial},
		{`start_position: latest`, SnapshotNever},
		{`start_position: latest, snapshot: {mode: initial}`, SnapshotInitial},
		{`start_position: earliest, snapshot: {mode: never}`, SnapshotNever},
		{`snapshot: {mode: initial_only}`, SnapshotInitialOnly},
	}
	for _, tt := range tests {
		t.Run(tt.cfg, func(t *testing.T) {
			f, e := parse(t, withSource(tt.cfg), nil)
			expect(t, e)
			if f.Source.Snapshot.Mode != tt.mode {
				t.Errorf("mode %q, want %q", f.Source.Snapshot.Mode, tt.mode)
			}
		})
	}
}

func TestSnapshotKeys(t *testing.T) {
	f, e := parse(t, withSource(`snapshot: {mode: initial, tables: [public.users, s.t], chunk_rows: 500, parallel: 4, bucket: SNAPS, auto_backfill: true, sql_requests: false}`), nil)
	expect(t, e)
	want := Snapshot{Mode: SnapshotInitial, ModeGiven: true, Tables: []string{"public.users", "s.t"}, ChunkRows: 500, Parallel: 4, Bucket: "SNAPS", AutoBackfill: true}
	if !reflect.DeepEqual(f.Source.Snapshot, want) {
		t.Errorf("snapshot %+v\nwant     %+v", f.Source.Snapshot, want)
	}
	_, e = parse(t, withSource(`snapshot: {mode: always, tables: ["public.*", users], chunk_rows: 0, parallel: 100, bucket: "a b", auto_backfill: yes, chunk: 5}`), nil)
	expect(t, e,
		`spec.source.config.snapshot.mode: unknown value "always": use initial, never or initial_only`,
		`spec.source.config.snapshot.tables[0]: "public.*" is a pattern`,
		`spec.source.config.snapshot.tables[1]: "users": use schema.table`,
		`spec.source.config.snapshot.chunk_rows: 0 is out of range: use 1 to 1000000`,
		`spec.source.config.snapshot.parallel: 100 is out of range: use 1 to 64`,
		`spec.source.config.snapshot.bucket: `,
		`spec.source.config.snapshot.auto_backfill: must be true or false`,
		`spec.source.config.snapshot.chunk: unknown key`)
}
