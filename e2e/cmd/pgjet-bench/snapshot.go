package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgjet/pgjet/shared/pgtest"
)

// The snapshot benchmark: the collector's initial snapshot of one table
// (snapshot.mode initial_only: read through a temporary slot's exported
// snapshot into the raw stream, fsynced, then exit) against a plain
// COPY ... TO STDOUT of the same table into a client that discards it,
// alternating in every round.

type snapshotResult struct {
	Rows      int64
	TableMB   float64
	ChunkRows int
	Runs      []snapshotRun
}

type snapshotRun struct {
	CopySecs, CopyPerSec float64
	External, Embedded   snapshotTiming
	Ratio                float64 // external snapshot rows/s over COPY rows/s
	EmbeddedRatio        float64
	Load                 string
}

// snapshotTiming is one collector run's snapshot.
type snapshotTiming struct {
	Secs, PerSec float64 // the snapshot itself, from the collector's log
	ProcessSecs  float64 // collector start to exit
	PeakRSSMiB   float64
	CPU          float64 // collector CPU seconds (with --embedded, the server's too)
}

// snapshotSQL is a table of mixed types (~130 bytes of column data a row).
const snapshotSQL = `DROP TABLE IF EXISTS snap_items;
CREATE TABLE snap_items (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(14,2), tags text[], meta jsonb, updated timestamptz);
INSERT INTO snap_items SELECT g, 'owner ' || md5(g::text), (g %% 100000) / 100.0, ARRAY['t' || (g %% 10), 'x'],
	jsonb_build_object('g', g, 'k', g %% 7), '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %d) g;
DROP PUBLICATION IF EXISTS snap_pub;
CREATE PUBLICATION snap_pub FOR TABLE snap_items;`

var snapshotDoneRE = regexp.MustCompile(`msg="initial snapshot done" tables=\d+ rows=(\d+) took=(\S+)`)

func (b *bench) runSnapshot(ctx context.Context) (*snapshotResult, error) {
	rows := b.sizes.snapshotRows
	logf("snapshot: loading %d rows", rows)
	for _, sql := range []string{fmt.Sprintf(snapshotSQL, rows), "VACUUM ANALYZE snap_items", "CHECKPOINT"} {
		if err := b.exec(ctx, sql); err != nil {
			return nil, err
		}
	}
	r := &snapshotResult{Rows: int64(rows), ChunkRows: 10000}
	var size int64
	if err := b.conn.QueryRow(ctx, `SELECT pg_table_size('snap_items')`).Scan(&size); err != nil {
		return nil, err
	}
	r.TableMB = float64(size) / 1e6
	for round := 0; round < b.sizes.runs; round++ {
		var run snapshotRun
		run.Load = loadavg1()
		steps := []func() error{
			func() error { return b.copyTable(ctx, &run) },
			func() error { return b.snapshotTable(ctx, round, false, &run.External) },
			func() error { return b.snapshotTable(ctx, round, true, &run.Embedded) },
		}
		if round%2 == 1 {
			steps[0], steps[2] = steps[2], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
		run.Ratio = run.External.PerSec / run.CopyPerSec
		run.EmbeddedRatio = run.Embedded.PerSec / run.CopyPerSec
		logf("snapshot round %d: COPY %.0f rows/s, snapshot %.0f rows/s (%.2fx, peak RSS %.0f MiB), embedded %.0f rows/s (%.2fx, %.0f MiB)", round+1,
			run.CopyPerSec, run.External.PerSec, run.Ratio, run.External.PeakRSSMiB, run.Embedded.PerSec, run.EmbeddedRatio, run.Embedded.PeakRSSMiB)
		r.Runs = append(r.Runs, run)
	}
	return r, nil
}

// copyTable times COPY snap_items TO STDOUT into a discarding client.
func (b *bench) copyTable(ctx context.Context, run *snapshotRun) error {
	start := time.Now()
	tag, err := b.conn.PgConn().CopyTo(ctx, io.Discard, "COPY snap_items TO STDOUT")
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	run.CopySecs = time.Since(start).Seconds()
	run.CopyPerSec = float64(tag.RowsAffected()) / run.CopySecs
	return nil
}

// snapshotTable runs the collector with snapshot.mode initial_only against
// a fresh nats-server (or its own embedded one, in a fresh dir) and reads
// the snapshot's time from its log.
func (b *bench) snapshotTable(ctx context.Context, round int, embedded bool, run *snapshotTiming) error {
	args := []string{"--dsn", b.dsn, "--slot", "snapbench", "--publication", "snap_pub", "--source", "snap",
		"--snapshot-mode", "initial_only", "--snapshot-chunk-rows", strconv.Itoa(10000)}
	name := fmt.Sprintf("snapshot-collector-%d", round)
	if embedded {
		dir := filepath.Join(b.dir, fmt.Sprintf("snapshot-embedded-%d", round))
		defer os.RemoveAll(dir)
		port, err := pgtest.FreePort()
		if err != nil {
			return err
		}
		args = append(args, "--embedded", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
		name += "-embedded"
	} else {
		n, err := b.startNATS(fmt.Sprintf("snapshot-nats-%d", round))
		if err != nil {
			return err
		}
		defer n.stop()
		args = append(args, "--nats", n.url)
	}
	logPath := filepath.Join(b.cfg.outDir, name+".log")
	start := time.Now()
	p, err := startProc("collector", filepath.Join(b.cfg.binDir, "pgjet-collector"), args, logPath)
	if err != nil {
		return err
	}
	var peak int64
	for !p.exited() {
		if rss := vmRSS(p.pid()); rss > peak {
			peak = rss
		}
		if cpu, err := cpuSeconds(p.pid()); err == nil {
			run.CPU = cpu
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.ProcessSecs = time.Since(start).Seconds()
	if p.err != nil {
		return fmt.Errorf("collector: %v:\n%s", p.err, p.tail(20))
	}
	m := snapshotDoneRE.FindStringSubmatch(p.log())
	if m == nil {
		return fmt.Errorf("collector: no \"initial snapshot done\" line:\n%s", p.tail(20))
	}
	got, _ := strconv.ParseInt(m[1], 10, 64)
	took, err := time.ParseDuration(m[2])
	if err != nil {
		return err
	}
	if got != int64(b.sizes.snapshotRows) {
		return fmt.Errorf("collector: snapshot of %d rows, want %d", got, b.sizes.snapshotRows)
	}
	run.Secs = took.Seconds()
	run.PerSec = float64(got) / run.Secs
	run.PeakRSSMiB = float64(peak) / 1024
	return nil
}

// vmRSS is a process's resident set in KiB (0 when it cannot be read).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func (r *snapshotResult) markdown(p func(string, ...any)) {
	p("## Initial snapshot vs COPY\n\n")
	p("One table of %d rows (%.0f MB: bigint key, text, numeric, text[], jsonb, timestamptz). Each round times, one after the other (the order alternating), ", r.Rows, r.TableMB)
	p("`COPY snap_items TO STDOUT` into a client that discards it, and the collector's initial snapshot of the table (`--snapshot-mode initial_only`, %d rows a chunk): ", r.ChunkRows)
	p("read in key order through the exported snapshot of a temporary slot, written to the raw stream on a nats-server with `sync_interval: always`, every chunk acknowledged; ")
	p("the time is the collector's own (its \"initial snapshot done\" line: from importing the snapshot until the last read is stored). Peak RSS and CPU are the collector's, whole process. ")
	p("The same with the collector's embedded server (`--embedded`: fsync per write too, raw messages up to 4 MiB instead of 1 MB, so a quarter of the fsyncs; RSS and CPU include the server).\n\n")
	p("| round | COPY rows/s | snapshot rows/s | ratio | peak RSS MiB | CPU s | embedded rows/s | ratio | peak RSS MiB | CPU s | loadavg1 |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var ratios, eratios []float64
	for i, run := range r.Runs {
		p("| %d | %.0f | %.0f | **%.2f** | %.0f | %.1f | %.0f | **%.2f** | %.0f | %.1f | %s |\n", i+1, run.CopyPerSec,
			run.External.PerSec, run.Ratio, run.External.PeakRSSMiB, run.External.CPU,
			run.Embedded.PerSec, run.EmbeddedRatio, run.Embedded.PeakRSSMiB, run.Embedded.CPU, run.Load)
		ratios = append(ratios, run.Ratio)
		eratios = append(eratios, run.EmbeddedRatio)
	}
	p("\nMedian ratio: **%.2f** external server, **%.2f** embedded (snapshot rows/s over COPY rows/s).\n\n", median(ratios), median(eratios))
}
