package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/wire"
)

// Settings are the session settings that shape Postgres's text output of
// values. Readers take the replication connection's, so that a row read by
// a snapshot and the same row sent by pgoutput are the same bytes (keys
// are compared that way, and the router decodes both alike).
type Settings map[string]string

// settingNames are the settings text output depends on.
var settingNames = []string{"DateStyle", "IntervalStyle", "TimeZone", "extra_float_digits", "bytea_output", "lc_monetary", "search_path"}

// ReadSettings reads Settings on conn, a replication connection before it
// runs anything else (SHOW works on it then).
func ReadSettings(ctx context.Context, conn *pgconn.PgConn) (Settings, error) {
	s := Settings{}
	for _, name := range settingNames {
		res, err := conn.Exec(ctx, "SHOW "+name).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("SHOW %s: %w", name, err)
		}
		if len(res) == 1 && len(res[0].Rows) == 1 && len(res[0].Rows[0]) == 1 {
			s[name] = string(res[0].Rows[0][0])
		}
	}
	return s, nil
}

// Apply sets s on conn.
func (s Settings) Apply(ctx context.Context, conn *pgx.Conn) error {
	for _, name := range settingNames {
		v, ok := s[name]
		if !ok {
			continue
		}
		if _, err := conn.Exec(ctx, "SELECT set_config($1, $2, false)", name, v); err != nil {
			return fmt.Errorf("set %s to %q: %w", name, v, err)
		}
	}
	return nil
}

// InitialConfig configures RunInitial.
type InitialConfig struct {
	// DSN of the readers' connections.
	DSN string
	// Snapshot is the exported snapshot's name: valid while the
	// replication connection that created the slot stays idle.
	Snapshot string
	// Position is where the reads go: the slot's consistent point - 1.
	Position uint64
	Tables   []*Table
	// ChunkRows bounds a chunk: rows read and held at a time per reader.
	ChunkRows int
	// Parallel tables are read at once, each on its own connection.
	Parallel int
	// Emit hands fragments to the publisher; MaxFragment sizes them.
	Emit        pgoutput.Emitter
	MaxFragment int
	Settings    Settings
	Progress    *Progress
	// Imported, when set, runs once every reader has imported the snapshot:
	// the replication connection may then be used again (to hold the slot).
	Imported func(ctx context.Context) error
	Log      *slog.Logger
}

// RunInitial reads every table of cfg from the exported snapshot, in key
// order, a chunk at a time, and emits the rows as one transaction of reads
// at cfg.Position. Up to cfg.Parallel tables are read at once; the rows of
// several tables interleave in the stream by chunk. It returns once every
// row is handed to the publisher (not yet stored: drain the publisher).
func RunInitial(ctx context.Context, cfg InitialConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := min(max(cfg.Parallel, 1), max(len(cfg.Tables), 1))
	// Every reader imports the snapshot before any reads: the exporting
	// connection must stay idle until the last import (then each
	// importing transaction keeps the snapshot for itself).
	conns := make([]*pgx.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for range n {
		c, err := openReader(ctx, cfg.DSN, cfg.Settings, cfg.Snapshot)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	if cfg.Imported != nil {
		if err := cfg.Imported(ctx); err != nil {
			return err
		}
	}
	// Which transactions the snapshot sees: what the rows hold, and what
	// the stream does not bring again.
	var xids string
	if err := conns[0].QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&xids); err != nil {
		return fmt.Errorf("snapshot reader: %w", err)
	}
	// The reads' xid is the first reader's transaction id, as Debezium's
	// source.txId of a snapshot record is its snapshot transaction's
	// (pg_current_xact_id, which gives the transaction one; none on a
	// standby, where Debezium's is null too). An xid without writes
	// commits with a bare commit record, which pgoutput skips.
	var xid8 int64
	if err := conns[0].QueryRow(ctx, "SELECT CASE WHEN pg_is_in_recovery() THEN 0 ELSE pg_current_xact_id()::text::bigint END").Scan(&xid8); err != nil {
		return fmt.Errorf("snapshot reader: transaction id: %w", err)
	}
	cfg.Log.Info("initial snapshot imported", "snapshot", cfg.Snapshot, "readers", n, "tables", len(cfg.Tables),
		"position", wire.LSN(cfg.Position), "snapshot_xids", xids, "xid", xid8)

	// Largest tables first: the parallel readers end closer together.
	tables := append([]*Table(nil), cfg.Tables...)
	sort.SliceStable(tables, func(a, b int) bool { return tables[a].Estimate > tables[b].Estimate })
	queue := make(chan *Table, len(tables))
	for _, t := range tables {
		queue <- t
	}
	close(queue)
	seq := &sequencer{
		w:         NewTxWriter(cfg.Emit, cfg.MaxFragment, cfg.Position, uint32(xid8), wire.Snapshot{Kind: wire.SnapshotInitial, ID: InitialID, Xid: uint64(xid8)}),
		remaining: len(tables),
		progress:  cfg.Progress,
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range queue {
				if err := readTable(ctx, c, t, cfg.ChunkRows, seq, cfg.Progress); err != nil {
					errs <- err
					cancel()
					return
				}
			}
			// Read only: the transaction ends, the snapshot goes with it.
			if _, err := c.Exec(ctx, "COMMIT"); err != nil {
				errs <- fmt.Errorf("end snapshot transaction: %w", err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return ctx.Err()
}

// openReader connects a reader and imports the snapshot into its
// transaction.
func openReader(ctx context.Context, dsn string, s Settings, snapshot string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("snapshot reader: connect: %w", err)
	}
	if err := s.Apply(ctx, c); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("snapshot reader: %w", err)
	}
	if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("snapshot reader: begin: %w", err)
	}
	if _, err := c.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("snapshot reader: import snapshot %s (is the slot's replication connection still open and idle?): %w", snapshot, err)
	}
	return c, nil
}

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// readTable reads t a chunk at a time and hands the chunks to seq, reading
// the next chunk while the last one is written: at most three chunks of
// a table are held at once.
func readTable(ctx context.Context, c *pgx.Conn, t *Table, chunkRows int, seq *sequencer, p *Progress) error {
	p.StartTable(t.String(), t.Estimate)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type read struct {
		chunk *Chunk
		at    time.Time
		err   error
	}
	chunks := make(chan read, 1)
	go func() {
		defer close(chunks)
		if t.Key == nil {
			// No key to read it by in chunks: one scan, through a cursor.
			if err := OpenScan(ctx, c.PgConn(), t); err != nil {
				chunks <- read{err: err}
				return
			}
		}
		var after []wire.Value
		for {
			var r read
			if t.Key == nil {
				r.chunk, r.err = ScanChunk(ctx, c.PgConn(), t, chunkRows)
			} else {
				r.chunk, r.err = ReadChunk(ctx, c.PgConn(), t, after, chunkRows)
			}
			r.at = time.Now()
			select {
			case chunks <- r:
			case <-ctx.Done():
				return
			}
			if r.err != nil || !r.chunk.More {
				return
			}
			after = r.chunk.Last()
		}
	}()
	first := true
	for r := range chunks {
		if r.err != nil {
			return r.err
		}
		if err := seq.write(ctx, r.chunk, first, r.at); err != nil {
			return err
		}
		first = false
	}
	return ctx.Err()
}

// sequencer puts the chunks of the parallel readers in one transaction of
// reads, in the order they come, and marks the first and last rows of each
// table and of the whole snapshot as Debezium does. A table's last row is
// held back until the next table ends (or the snapshot does), because only
// then is it known whether it is the snapshot's last.
type sequencer struct {
	mu        sync.Mutex
	w         *TxWriter
	started   bool // a row was written
	remaining int  // tables not yet read to the end
	held      *heldRow
	progress  *Progress
}

type heldRow struct {
	t          *Table
	row        []wire.Value
	firstInTab bool
	at         time.Time
}

// write emits a chunk; first: the table's first chunk.
func (s *sequencer) write(ctx context.Context, c *Chunk, first bool, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := c.Rows
	last := !c.More
	var keep *heldRow
	if last && len(rows) > 0 {
		keep = &heldRow{t: c.Table, row: rows[len(rows)-1], firstInTab: first && len(rows) == 1, at: at}
		rows = rows[:len(rows)-1]
	}
	if len(rows) > 0 {
		if err := s.emit(ctx, c.Table, rows, first, false, false, at, nil); err != nil {
			return err
		}
	}
	if !last {
		return nil
	}
	s.remaining--
	if keep == nil {
		// An empty table: nothing to store.
		s.progress.EndTable(c.Table.String(), nil)
	}
	if keep != nil {
		// A later row: the one held before is not the snapshot's last. An
		// empty table changes nothing.
		if s.held != nil {
			if err := s.emitHeld(ctx, s.held, false); err != nil {
				return err
			}
		}
		s.held = keep
	}
	if s.remaining == 0 && s.held != nil {
		h := s.held
		s.held = nil
		return s.emitHeld(ctx, h, true)
	}
	return nil
}

func (s *sequencer) emitHeld(ctx context.Context, h *heldRow, snapshotLast bool) error {
	table := h.t.String()
	done := func() { s.progress.EndTable(table, nil) }
	return s.emit(ctx, h.t, [][]wire.Value{h.row}, h.firstInTab, true, snapshotLast, h.at, done)
}

// emit writes rows of t with their marks; then runs once they are stored.
func (s *sequencer) emit(ctx context.Context, t *Table, rows [][]wire.Value, tableFirst, tableLast, snapshotLast bool, at time.Time, then func()) error {
	var first, last uint8
	if tableFirst {
		first |= wire.SnapshotFirstInTable
	}
	if !s.started {
		first |= wire.SnapshotFirst
		s.started = true
	}
	if tableLast {
		last |= wire.SnapshotLastInTable
	}
	if snapshotLast {
		last |= wire.SnapshotLast
	}
	table, key, n := t.String(), t.KeyOf(rows[len(rows)-1]), int64(len(rows))
	return s.w.Write(ctx, t.Rel, rows, at, first, last, snapshotLast, func() {
		s.progress.Stored(table, key, n)
		if then != nil {
			then()
		}
	})
}

// Modes of the initial snapshot (snapshot.mode).
const (
	// ModeInitial: a slot created now exports its snapshot, and every
	// table's rows are read from it before the slot streams.
	ModeInitial = "initial"
	// ModeNever: no initial snapshot (backfills still run).
	ModeNever = "never"
	// ModeInitialOnly: read the tables from a temporary slot's snapshot,
	// then stop; nothing streams.
	ModeInitialOnly = "initial_only"
)

// Modes lists the modes, for messages.
var Modes = []string{ModeInitial, ModeNever, ModeInitialOnly}

// Defaults of a snapshot's chunk size and parallel readers.
const (
	DefaultChunkRows = 10000
	DefaultParallel  = 2
)

// ErrNoTables: nothing to snapshot.
var ErrNoTables = errors.New("no tables to snapshot")
