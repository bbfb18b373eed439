package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// workSchema is what the continuous workload writes to.
const workSchema = `
CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance numeric(14,2) NOT NULL DEFAULT 0,
	tags text[], meta jsonb, bio text, updated timestamptz DEFAULT now());
CREATE TABLE transfers (id bigserial PRIMARY KEY, src int, dst int, amount numeric(14,2), note text, at timestamptz DEFAULT now());
CREATE TABLE bulk (id bigserial PRIMARY KEY, batch int NOT NULL, payload text);
CREATE TABLE journal (at timestamptz, worker int, line text);
ALTER TABLE journal REPLICA IDENTITY FULL;
INSERT INTO accounts (owner, balance) SELECT 'seed ' || g, 1000 FROM generate_series(1, 50) g;
`

var workTables = []string{"public.accounts", "public.transfers", "public.bulk", "public.journal"}

// workEnv is an env with the workload's tables.
// Its collectors write raw messages of at most 256 KiB, so that the
// workload's large transactions span many fragments and many kills land
// inside one.
func workEnv(t *testing.T, pgConf ...string) *env {
	return workEnvWith(t, envConfig{pgConf: pgConf})
}

// workEnvWith is workEnv with more settings (c's schema and tables are
// replaced by the workload's).
func workEnvWith(t *testing.T, c envConfig) *env {
	c.schema, c.tables = workSchema, workTables
	e := newEnv(t, c)
	e.colFlags = []string{"--max-message-bytes", "262144"}
	return e
}

// workloadConfig shapes a workload.
type workloadConfig struct {
	workers int
	// pause between two transactions of one worker.
	pause time.Duration
	// bigEvery: a transaction of bigRows rows (20,000 in the full
	// mode) about this often (0: never).
	bigEvery time.Duration
	bigRows  int
}

func defaultWorkload() workloadConfig {
	return workloadConfig{workers: 2, pause: 25 * time.Millisecond, bigEvery: pick(8*time.Second, 15*time.Second), bigRows: pick(3000, 20000)}
}

// workload commits a mix of transactions from several connections until
// stopped: single-row inserts, multi-row and multi-table transactions,
// updates (some leaving a TOASTed column unchanged), deletes, rollbacks,
// savepoint rollbacks, and now and then a 20,000-row transaction, large
// enough to be split into fragments. It survives Postgres restarts by
// reconnecting: a transaction whose commit fails with the connection may or
// may not have committed, which is fine, because the audit in Postgres is
// the truth.
type workload struct {
	t    *testing.T
	dsn  string
	cfg  workloadConfig
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	committed  atomic.Int64
	rolledBack atomic.Int64
	big        atomic.Int64
	reconnects atomic.Int64
	lastBig    atomic.Int64 // unix nanos

	mu  sync.Mutex
	err error
}

func (e *env) startWorkload(cfg workloadConfig) *workload {
	dsn := e.workDSN
	if dsn == "" {
		dsn = e.pg.DSN("")
	}
	w := &workload{t: e.t, dsn: dsn, cfg: cfg, stop: make(chan struct{})}
	w.lastBig.Store(time.Now().UnixNano())
	rng := newRand(e.t, "workload")
	for i := range cfg.workers {
		w.wg.Add(1)
		go w.run(i, rand.New(rand.NewPCG(rng.Uint64(), uint64(i))))
	}
	e.t.Cleanup(w.halt)
	return w
}

// Stop ends the workload, fails the test on an unexpected SQL error, and
// logs what was done.
func (w *workload) Stop() {
	w.t.Helper()
	if w.stopped() {
		return
	}
	w.halt()
	w.t.Logf("workload: %d transactions committed (%d of them with %d rows), %d rolled back, %d reconnects",
		w.committed.Load(), w.big.Load(), w.cfg.bigRows, w.rolledBack.Load(), w.reconnects.Load())
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.t.Errorf("workload: %v", w.err)
	}
}

func (w *workload) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *workload) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *workload) run(worker int, rng *rand.Rand) {
	defer w.wg.Done()
	ctx := context.Background()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(ctx)
		}
	}()
	for n := 0; !w.stopped(); n++ {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, w.dsn)
			if err != nil {
				// Postgres restarting: try again.
				time.Sleep(100 * time.Millisecond)
				continue
			}
			conn = c
		}
		err := w.one(ctx, conn, worker, n, rng)
		switch {
		case err == nil:
		case errors.Is(err, errRolledBack):
			w.rolledBack.Add(1)
		case retryable(err):
			w.rolledBack.Add(1)
		case conn.IsClosed() || conn.Ping(ctx) != nil:
			// The connection broke (Postgres restarting): reconnect.
			conn.Close(ctx)
			conn = nil
			w.reconnects.Add(1)
		default:
			w.fail(fmt.Errorf("worker %d: %w", worker, err))
			return
		}
		if w.cfg.pause > 0 {
			time.Sleep(w.cfg.pause)
		}
	}
}

var errRolledBack = errors.New("rolled back on purpose")

// retryable errors end a transaction without breaking anything: deadlocks
// and serialization failures between the workers.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "40")
}

// one runs one transaction.
func (w *workload) one(ctx context.Context, conn *pgx.Conn, worker, n int, rng *rand.Rand) error {
	if worker == 0 && w.cfg.bigRows > 0 {
		last := w.lastBig.Load()
		if last == 0 || w.cfg.bigEvery > 0 && time.Since(time.Unix(0, last)) > w.cfg.bigEvery {
			w.lastBig.Store(time.Now().UnixNano())
			_, err := conn.Exec(ctx, `INSERT INTO bulk (batch, payload)
				SELECT $1, repeat(md5(g::text), 9) || ' row ' || g FROM generate_series(1, $2) g`, n, w.cfg.bigRows)
			if err == nil {
				w.big.Add(1)
				w.committed.Add(1)
			}
			return err
		}
	}
	tag := fmt.Sprintf("w%d-%d", worker, n)
	var err error
	switch p := rng.IntN(100); {
	case p < 30:
		_, err = conn.Exec(ctx, `INSERT INTO accounts (owner, balance, tags, meta) VALUES ($1, $2, $3, $4)`,
			"owner "+tag+" ✓", fmt.Sprintf("%d.%02d", rng.IntN(10000), rng.IntN(100)),
			[]string{"t" + tag, "x,y", `q"uote`}, fmt.Sprintf(`{"w": %d, "n": %d, "f": 1.5}`, worker, n))
	case p < 55:
		// A transfer: two updates and an insert, in id order (no deadlock
		// between the workers... mostly).
		a, b := 1+rng.IntN(50), 1+rng.IntN(50)
		if a > b {
			a, b = b, a
		}
		amount := fmt.Sprintf("%d.%02d", rng.IntN(100), rng.IntN(100))
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance - $2, updated = now() WHERE id = $1`, a, amount); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2, updated = now() WHERE id = $1`, b, amount); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO transfers (src, dst, amount, note) VALUES ($1, $2, $3, $4)`, a, b, amount, "transfer "+tag+"\ttab\nnewline")
			return err
		})
	case p < 65:
		_, err = conn.Exec(ctx, `INSERT INTO journal SELECT now(), $1, $2 || ' line ' || g FROM generate_series(1, $3) g`,
			worker, tag, 2+rng.IntN(40))
	case p < 72:
		// A large bio is TOASTed; the next update of another column leaves
		// it unchanged. Now and then one of 400 kB: larger than a raw
		// message of the fault tests (256 kB), it travels in pieces.
		id := 1 + rng.IntN(50)
		md5s := 300
		if rng.IntN(5) == 0 {
			md5s = 12_500
		}
		_, err = conn.Exec(ctx, `UPDATE accounts SET bio = (SELECT string_agg(md5(g::text || $2), '') FROM generate_series(1, $3) g) WHERE id = $1`, id, tag, md5s)
		if err == nil {
			_, err = conn.Exec(ctx, `UPDATE accounts SET meta = jsonb_build_object('touched', $2::text) WHERE id = $1`, id, tag)
		}
	case p < 80:
		_, err = conn.Exec(ctx, `UPDATE journal SET line = line || ' seen' WHERE worker = $1 AND at > now() - interval '2 seconds' AND line NOT LIKE '%seen'`, worker)
	case p < 86:
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM journal WHERE ctid IN (SELECT ctid FROM journal WHERE worker = $1 LIMIT 3)`, worker); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM transfers WHERE id IN (SELECT id FROM transfers ORDER BY id LIMIT 1)`)
			return err
		})
	case p < 93:
		// Rolled back: must never appear.
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO accounts (owner) VALUES ('rolled back ' || $1::text)`, tag); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE transfers SET note = 'rolled back' WHERE id IN (SELECT id FROM transfers ORDER BY id DESC LIMIT 5)`); err != nil {
				return err
			}
			return errRolledBack
		})
	default:
		// A savepoint rolled back inside a committed transaction.
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO journal VALUES (now(), $1, 'kept ' || $2::text)`, worker, tag); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SAVEPOINT s; INSERT INTO journal VALUES (now(), -1, 'savepoint rolled back'); ROLLBACK TO SAVEPOINT s`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO transfers (src, dst, amount, note) VALUES (0, 0, 0, 'after savepoint ' || $1::text)`, tag)
			return err
		})
	}
	if err == nil {
		w.committed.Add(1)
	}
	return err
}

// bigNow makes the next transaction of worker 0 a large one.
func (w *workload) bigNow() { w.lastBig.Store(0) }
