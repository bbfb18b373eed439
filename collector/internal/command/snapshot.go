package command

import (
	"flag"
	"fmt"
	"strings"

	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/pipeline"
	"github.com/pgjet/pgjet/shared/wire"
)

// snapshotFlags are the flags of the initial snapshot and backfills
// (spec.source.config.snapshot in a pipeline file).
type snapshotFlags struct {
	mode      string
	tables    []string
	chunkRows int
	parallel  int
	bucket    string
	auto      bool
	sql       bool
}

// add defines the flags on fs; it returns --snapshot-tables's value.
func (f *snapshotFlags) add(fs *flag.FlagSet) *string {
	fs.StringVar(&f.mode, "snapshot-mode", snapshot.ModeInitial, "initial: a slot created now first reads every published table's rows (its exported snapshot), then streams; never: no initial snapshot; initial_only: read them through a temporary slot and stop (a pipeline file's start_position latest means never)")
	tables := fs.String("snapshot-tables", "", "comma-separated schema.table list of the initial snapshot (default: every published table)")
	fs.IntVar(&f.chunkRows, "snapshot-chunk-rows", snapshot.DefaultChunkRows, "rows a snapshot or backfill reads, holds and records its progress at a time, per table")
	fs.IntVar(&f.parallel, "snapshot-parallel", snapshot.DefaultParallel, "tables an initial snapshot reads at once, each on its own connection")
	fs.StringVar(&f.bucket, "snapshot-bucket", snapshot.DefaultBucket, "JetStream key-value bucket of snapshot and backfill progress and requests, created when missing")
	fs.BoolVar(&f.auto, "backfill-auto", false, "backfill a table added to the publication (also one added while the collector was stopped)")
	fs.BoolVar(&f.sql, "backfill-sql", true, "take backfill requests written with SQL: SELECT pg_logical_emit_message(true, 'pgjet.backfill', '{\"tables\": [\"public.users\"]}')")
	return tables
}

// applyFile sets the flags not given from the file's snapshot section.
func (f *snapshotFlags) applyFile(given map[string]bool, s pipeline.Snapshot, tables *string) {
	set := func(name string, apply func()) {
		if !given[name] {
			apply()
		}
	}
	set("snapshot-mode", func() { f.mode = s.Mode })
	set("snapshot-tables", func() { *tables = strings.Join(s.Tables, ",") })
	set("snapshot-chunk-rows", func() { f.chunkRows = s.ChunkRows })
	set("snapshot-parallel", func() { f.parallel = s.Parallel })
	set("snapshot-bucket", func() { f.bucket = s.Bucket })
	set("backfill-auto", func() { f.auto = s.AutoBackfill })
	set("backfill-sql", func() { f.sql = s.SQLRequests })
}

// check validates the flags; tables is --snapshot-tables's value.
func (f *snapshotFlags) check(tables string) error {
	switch f.mode {
	case snapshot.ModeInitial, snapshot.ModeNever, snapshot.ModeInitialOnly:
	default:
		return fmt.Errorf("bad --snapshot-mode %q: use %s", f.mode, strings.Join(snapshot.Modes, ", "))
	}
	f.tables = nil
	for _, t := range strings.Split(tables, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if s, n, ok := strings.Cut(t, "."); !ok || s == "" || n == "" {
			return fmt.Errorf("bad --snapshot-tables entry %q: use schema.table", t)
		}
		f.tables = append(f.tables, t)
	}
	if f.chunkRows < 1 || f.chunkRows > 1000000 {
		return fmt.Errorf("bad --snapshot-chunk-rows %d: use 1 to 1000000", f.chunkRows)
	}
	if f.parallel < 1 || f.parallel > 64 {
		return fmt.Errorf("bad --snapshot-parallel %d: use 1 to 64", f.parallel)
	}
	if err := wire.CheckName(f.bucket); err != nil {
		return fmt.Errorf("bad --snapshot-bucket: %w", err)
	}
	return nil
}

func (f *snapshotFlags) sessionConfig(stats *snapshot.Stats) session.SnapshotConfig {
	return session.SnapshotConfig{Mode: f.mode, Tables: f.tables, ChunkRows: f.chunkRows, Parallel: f.parallel,
		Bucket: f.bucket, Auto: f.auto, SQLRequests: f.sql, Stats: stats}
}
