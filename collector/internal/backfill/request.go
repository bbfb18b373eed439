package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/snapshot"
	"github.com/pgjet/pgjet/shared/pgname"
	"github.com/pgjet/pgjet/shared/wire"
)

// Request asks the collector of store's source for a backfill of tables
// ("schema.table"), aimed at sinks (none: every sink), and returns the job
// it created. The collector takes it up when it is streaming (at once, or
// when it starts), checks the tables and runs it; follow it with the store
// (Get, or Watch). by says who asks (cli, sql, auto, or a caller's own
// word).
//
// This is the whole API for code that wants a backfill: after recreating a
// slot, for instance, call Request with the tables whose rows may be
// missing.
func Request(ctx context.Context, store *snapshot.Store, tables, sinks []string, by string) (*snapshot.Job, error) {
	if len(tables) == 0 {
		return nil, errors.New("backfill: name at least one table")
	}
	tables, err := canonical(tables, false)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	for _, s := range sinks {
		if err := wire.CheckName(s); err != nil {
			return nil, fmt.Errorf("backfill: sink %w", err)
		}
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	id := "b-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(rnd[:])
	return create(ctx, store, id, tables, sinks, by)
}

// canonical is tables as the collector names them (pgname.Table.String:
// each part quoted where it needs it), whatever quoting they were written
// with; a name without a schema is in public when bare.
func canonical(tables []string, bare bool) ([]string, error) {
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		n, err := pgname.ParseTable(t, bare)
		if err != nil {
			return nil, err
		}
		out = append(out, n.String())
	}
	return out, nil
}

func create(ctx context.Context, store *snapshot.Store, id string, tables, sinks []string, by string) (*snapshot.Job, error) {
	j := snapshot.NewJob(id, store.Source(), snapshot.KindBackfill, by, tables, sinks)
	if _, err := store.Create(ctx, j); err != nil {
		return nil, fmt.Errorf("backfill: request %s: %w", id, err)
	}
	return j, nil
}

// Cancel asks the collector to stop job id after its current chunk.
func Cancel(ctx context.Context, store *snapshot.Store, id string) (*snapshot.Job, error) {
	j, err := store.Modify(ctx, id, func(j *snapshot.Job) error {
		if j.Final() {
			return fmt.Errorf("job %s has ended already (%s)", id, j.State)
		}
		j.Cancel = true
		if j.State == snapshot.StateRequested {
			// Not taken up yet: ends here.
			now := time.Now().UTC()
			j.State, j.Finished = snapshot.StateCancelled, &now
		}
		return nil
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("no job %s for source %s (pgjet-collector backfill status lists them)", id, store.Source())
	}
	return j, err
}

// sqlRequest is what a request written with SQL holds:
//
//	SELECT pg_logical_emit_message(true, 'pgjet.backfill',
//	  '{"tables": ["public.users"], "sinks": ["search"]}');
//
// or just the tables, comma-separated: 'public.users,public.orders'.
type sqlRequest struct {
	Tables []string `json:"tables"`
	Sinks  []string `json:"sinks"`
}

// parseSQLRequest reads a request's content.
func parseSQLRequest(content []byte) (sqlRequest, error) {
	var r sqlRequest
	text := strings.TrimSpace(string(content))
	if strings.HasPrefix(text, "{") {
		d := json.NewDecoder(strings.NewReader(text))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return r, fmt.Errorf(`not a backfill request (want {"tables": ["schema.table", ...], "sinks": [...]}): %w`, err)
		}
		return r, nil
	}
	for _, t := range strings.Split(text, ",") {
		if t = strings.TrimSpace(t); t != "" {
			r.Tables = append(r.Tables, t)
		}
	}
	return r, nil
}

// SQLRequests returns the handler of requests written with SQL, for
// Tracker.OnRequest: each becomes a job named after its commit position,
// so a request the stream delivers again (after a restart) is the same job.
// A malformed request is logged and skipped, never stops the stream.
func SQLRequests(store *snapshot.Store, warn func(msg string, args ...any)) func(ctx context.Context, commitLSN uint64, content []byte) error {
	return func(ctx context.Context, commitLSN uint64, content []byte) error {
		r, err := parseSQLRequest(content)
		if err == nil && len(r.Tables) == 0 {
			err = errors.New("no tables named")
		}
		if err == nil {
			r.Tables, err = canonical(r.Tables, true)
		}
		if err != nil {
			warn("backfill request written with SQL ignored", "lsn", wire.LSN(commitLSN), "err", err)
			return nil
		}
		id := fmt.Sprintf("sql-%x", commitLSN)
		_, err = create(ctx, store, id, r.Tables, r.Sinks, "sql")
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // delivered again: the job exists
		}
		return err
	}
}

// RequestAfterGap requests a backfill of every table of publication, to
// read their rows again after a gap in the change stream (a slot created
// again) starting at from. The job is named after the gap: a session that
// meets the same gap again (it stopped between the gap notice and the
// slot's re-creation) finds the job and asks nothing more. It returns
// whether it created the job; nil when the publication has no tables.
func RequestAfterGap(ctx context.Context, store *snapshot.Store, conn *pgx.Conn, publication string, from uint64) (*snapshot.Job, bool, error) {
	tables, err := publishedTables(ctx, conn, publication)
	if err != nil {
		return nil, false, err
	}
	if len(tables) == 0 {
		return nil, false, nil
	}
	// The LSN's text with a dash for its slash: job ids name chunks,
	// whose parts slashes separate.
	id := "gap-" + strings.Replace(wire.LSN(from).String(), "/", "-", 1)
	if j, _, err := store.Get(ctx, id); err == nil {
		return j, false, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, fmt.Errorf("backfill: read job %s: %w", id, err)
	}
	j, err := create(ctx, store, id, tables, nil, "gap")
	return j, err == nil, err
}

// publishedTables lists the tables publication publishes, as
// schema.table with quotes where a name needs them.
func publishedTables(ctx context.Context, conn *pgx.Conn, publication string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`, publication)
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var t pgname.Table
		err := r.Scan(&t.Schema, &t.Name)
		return t.String(), err
	})
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
	}
	return names, nil
}
