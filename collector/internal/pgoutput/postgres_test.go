package pgoutput

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgjet/pgjet/shared/pgtest"
	"github.com/pgjet/pgjet/shared/pgtypes"
	"github.com/pgjet/pgjet/shared/wire"
)

// pgStream decodes what a real Postgres streams through pgoutput, with the
// catalog read over a connection of its own, as the collector does.
type pgStream struct {
	t    *testing.T
	ctx  context.Context
	pg   *pgtest.Cluster
	repl *pgconn.PgConn
	d    *Decoder

	frags []*Fragment
	// commitStarts are the WAL starts of the commit messages' XLogData,
	// commitEnds their transactions' end LSNs.
	commitStarts, commitEnds []uint64
}

// startStream runs setup on a fresh Postgres and starts decoding what a
// publication of all its tables streams.
func startStream(t *testing.T, setup string) *pgStream {
	t.Helper()
	pg := pgtest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := pg.Exec(ctx, setup+"; CREATE PUBLICATION p FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	for _, p := range wire.TextFormat {
		cfg.RuntimeParams[p.Name] = p.Value
	}
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repl.Close(context.Background()) })
	if _, err := pglogrepl.CreateReplicationSlot(ctx, repl, "s", "pgoutput", pglogrepl.CreateReplicationSlotOptions{Temporary: true}); err != nil {
		t.Fatal(err)
	}
	if err := pglogrepl.StartReplication(ctx, repl, "s", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'p'", "messages 'true'"}}); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t)
	s := &pgStream{t: t, ctx: ctx, pg: pg, repl: repl}
	s.d = New(func(_ context.Context, f *Fragment) error { s.frags = append(s.frags, f); return nil }, pgtypes.Catalog{Conn: conn}, 1<<20)
	return s
}

// exec runs each statement in its own transaction.
func (s *pgStream) exec(sql ...string) {
	s.t.Helper()
	for _, q := range sql {
		if err := s.pg.Exec(s.ctx, q); err != nil {
			s.t.Fatal(err)
		}
	}
}

// until decodes until n records are made.
func (s *pgStream) until(n int) {
	s.t.Helper()
	for len(s.frags) < n {
		msg, err := s.repl.ReceiveMessage(s.ctx)
		if err != nil {
			s.t.Fatalf("after %d records: %v", len(s.frags), err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		x, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			s.t.Fatal(err)
		}
		if x.WALData[0] == 'C' {
			var c pglogrepl.CommitMessage
			if err := c.Decode(x.WALData[1:]); err != nil {
				s.t.Fatal(err)
			}
			s.commitStarts = append(s.commitStarts, uint64(x.WALStart))
			s.commitEnds = append(s.commitEnds, uint64(c.TransactionEndLSN))
		}
		if err := s.d.Handle(s.ctx, uint64(x.WALStart), x.WALData); err != nil {
			s.t.Fatal(err)
		}
	}
}

// Against a real Postgres: each change's LSN grows within its transaction
// and precedes its commit; the commit message arrives at the commit's end
// LSN (what Debezium takes for lastCommitLsn, stream.lastReceivedLsn() of
// the COMMIT) and each transaction follows the one before it, a
// non-transactional message included.
func TestLSNsFromPostgres(t *testing.T) {
	s := startStream(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	s.exec(`INSERT INTO t VALUES (1, 'a'), (2, 'b')`,
		`BEGIN; UPDATE t SET v = 'c' WHERE id = 1; DELETE FROM t WHERE id = 2; COMMIT`,
		`SELECT pg_logical_emit_message(false, 'p', 'loose')`,
		`INSERT INTO t VALUES (3, 'd')`)
	s.until(4)
	if !slices.Equal(s.commitStarts, s.commitEnds) {
		t.Fatalf("commit messages at %x, their transactions end at %x", s.commitStarts, s.commitEnds)
	}
	var prevEnd uint64
	for i, f := range s.frags {
		tx := f.Tx
		if tx.PrevCommitLSN != prevEnd {
			t.Errorf("record %d follows %x, the record before ended at %x", i, tx.PrevCommitLSN, prevEnd)
		}
		var last uint64
		for j, c := range tx.Changes {
			if c.LSN <= last || c.LSN > tx.CommitLSN || c.LSN == 0 {
				t.Errorf("record %d change %d at %x: after %x, at or before the commit %x", i, j, c.LSN, last, tx.CommitLSN)
			}
			last = c.LSN
		}
		prevEnd = tx.EndLSN
	}
	if s.frags[2].Tx.Changes[0].Op != wire.OpMessage || s.frags[2].Tx.Changes[0].LSN != s.frags[2].Tx.CommitLSN {
		t.Errorf("the non-transactional message: %+v", s.frags[2].Tx)
	}
}

// Against a real Postgres: the relation is described with NOT NULL,
// defaults and the primary key in its own order, read from the catalog,
// and its enum's labels in their order; a label added later (ALTER TYPE
// ... ADD VALUE, after which Postgres sends no relation message) is there
// once a row uses it.
func TestCatalogFromPostgres(t *testing.T) {
	s := startStream(t, `CREATE TYPE mood AS ENUM ('sad', 'ok');
		CREATE TABLE t (b int, a text NOT NULL DEFAULT 'x', m mood DEFAULT 'ok', id serial, PRIMARY KEY (id, b))`)
	s.exec(`INSERT INTO t (b, m) VALUES (1, 'sad')`)
	s.until(1)
	s.exec(`ALTER TYPE mood ADD VALUE 'happy'`, `INSERT INTO t (b, m) VALUES (2, 'ok')`, `INSERT INTO t (b, m) VALUES (3, 'happy')`)
	s.until(3)
	first, second := s.frags[0].Rels[0], s.frags[2].Rels[0]
	if s.frags[1].Rels[0] != first {
		t.Error("a row of labels the relation has described it again")
	}
	want := []wire.Column{
		{Name: "b", TypeOID: 23, TypeMod: -1, Key: true, NotNull: true, PrimaryKey: 2},
		{Name: "a", TypeOID: 25, TypeMod: -1, NotNull: true, Default: "'x'::text"},
		{Name: "m", TypeOID: first.Columns[2].TypeOID, TypeMod: -1, Default: "'ok'::mood",
			Type: wire.TypeInfo{Schema: "public", Name: "mood", Kind: 'e', Labels: []string{"sad", "ok"}}},
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true, NotNull: true, Default: "nextval('t_id_seq'::regclass)", PrimaryKey: 1},
	}
	if !first.Catalog || !wire.EqualColumns(first.Columns, want) {
		t.Errorf("described\n%+v\nwant\n%+v", first.Columns, want)
	}
	want[2].Type.Labels = []string{"sad", "ok", "happy"}
	if !wire.EqualColumns(second.Columns, want) {
		t.Errorf("after ADD VALUE\n%+v\nwant\n%+v", second.Columns, want)
	}
}
