package faults

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/wire"
)

// maxCollectorRSSMiB bounds the collector's peak resident memory whatever
// the size of a transaction or a value.
const maxCollectorRSSMiB = 200

// Invariant: memory stays bounded on a 1,000,000-row transaction, a 50 MB
// text value and a transaction touching 10,000 tables (short mode: 200,000
// rows, 5 MB, 1,000 tables), and every change still arrives exactly once.
// The collector's peak RSS stays under 200 MB; both peaks are logged.
//
// The output streams are created with async persistence: these cases are
// about memory, and an fsync per event would make them take many minutes.
func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	rows := pick(200_000, 1_000_000)
	valueMB := pick(5, 50)
	// A value larger than max_payload is dead-lettered and put together
	// again from the raw pieces: the short mode's server takes 4 MiB, below
	// its 5 MB value, so that both modes prove it.
	maxPayload := pick(4<<20, harness.MaxPayload)
	tables := pick(1_000, 10_000)
	for _, tc := range []struct {
		name   string
		schema string
		tables []string // published and audited; none: setup makes them
		conf   []string
		setup  func(e *env)
		load   func(e *env)
		// tooLarge: the change with id 1 of table blob cannot be published.
		tooLarge bool
		// natsConf is added to the server's configuration.
		natsConf string
	}{
		{
			name:   fmt.Sprintf("%d-row transaction", rows),
			schema: `CREATE TABLE big (id int PRIMARY KEY, v text, n numeric, at timestamptz DEFAULT now())`,
			tables: []string{"public.big"},
			load: func(e *env) {
				e.exec(`INSERT INTO big SELECT g, 'row ' || g || ' ' || md5(g::text), g * 1.5 FROM generate_series(1, $1) g`, rows)
			},
		},
		{
			// Larger than a raw message: it travels in pieces. Larger than
			// max_payload (JetStream cannot store more than 32 MB in one
			// message whatever the setting): the router cannot publish its
			// event and dead-letters it, pointing at the raw records that
			// hold it; nothing else stops.
			name:     fmt.Sprintf("%d MB text value", valueMB),
			tooLarge: valueMB<<20 > maxPayload,
			natsConf: fmt.Sprintf("max_payload: %d", maxPayload),
			schema:   `CREATE TABLE blob (id int PRIMARY KEY, v text)`,
			tables:   []string{"public.blob"},
			load: func(e *env) {
				// md5 chunks: little for TOAST to compress, so the WAL and
				// the decoded value are both large.
				e.exec(`INSERT INTO blob SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, $1::int * 1024 * 1024 / 32) g`, valueMB)
				e.exec(`INSERT INTO blob VALUES (2, 'small, after the large one')`)
			},
		},
		{
			name:  fmt.Sprintf("%d tables in one transaction", tables),
			conf:  []string{"max_locks_per_transaction = 2048"},
			setup: func(e *env) { e.createWideTables(tables) },
			load: func(e *env) {
				e.exec(`DO $$ BEGIN FOR i IN 1..` + fmt.Sprint(tables) + ` LOOP
					EXECUTE format('INSERT INTO wide.%I VALUES (1, %L)', 't' || i, 'row of table ' || i);
				END LOOP; END $$`)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envConfig{schema: tc.schema, tables: tc.tables, pgConf: tc.conf, natsConf: tc.natsConf})
			if tc.setup != nil {
				tc.setup(e)
			}
			e.collector()
			e.startRouter([]string{"--output-persist", "async"})
			start := time.Now()
			tc.load(e)
			t.Logf("committed in %s", time.Since(start).Round(100*time.Millisecond))
			if tc.natsConf != "" && !tc.tooLarge {
				t.Fatalf("%s: the value fits max_payload: the too-large path is not tested", tc.name)
			}
			if tc.tooLarge {
				e.verifyTooLarge(tc.name)
			} else {
				e.verify(tc.name)
			}
			col, rt := e.col.PeakRSSKiB()>>10, e.rt.PeakRSSKiB()>>10
			t.Logf("PEAK RSS %s: collector %d MiB, router %d MiB (%s end to end)", tc.name, col, rt, time.Since(start).Round(time.Second))
			if col >= maxCollectorRSSMiB {
				t.Errorf("%s: collector peak RSS %d MiB, want < %d MiB", tc.name, col, maxCollectorRSSMiB)
			}
		})
	}
}

// verifyTooLarge checks the outcome of a row too large to publish: every
// other change delivered exactly once, the row's dead letter names the raw
// record where its pieces start, and those pieces put together hold exactly
// the row Postgres has.
func (e *env) verifyTooLarge(scenario string) {
	e.t.Helper()
	e.deadLetters = 1
	r := e.report(scenario)
	if r.Lost != 1 || r.Delivered != r.Committed-1 || r.Duplicated != 0 || r.Extra != 0 || r.OutOfOrder != 0 || r.ValueMismatches != 0 {
		e.t.Errorf("%s: want every change but the too large one delivered exactly once: %s", scenario, r.String())
	}
	if raw := e.rawCheck(); !raw.ok() {
		e.t.Errorf("%s: raw stream: %s", scenario, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, js := e.nats.Connect(e.t)
	out, err := js.Stream(ctx, "PGJET_EVENTS")
	if err != nil {
		e.t.Fatal(err)
	}
	dl, err := out.GetLastMsgForSubject(ctx, "postgres._deadletter")
	if err != nil {
		e.t.Fatalf("%s: no dead letter: %v", scenario, err)
	}
	var doc struct {
		Error   string `json:"error"`
		Table   string `json:"table"`
		Op      string `json:"op"`
		Omitted bool   `json:"values_omitted"`
		RawSeq  uint64 `json:"raw_seq"`
	}
	if err := json.Unmarshal(dl.Data, &doc); err != nil {
		e.t.Fatal(err)
	}
	if doc.Table != "blob" || doc.Op != "insert" || !doc.Omitted || doc.RawSeq == 0 || !strings.Contains(doc.Error, "max_payload") {
		e.t.Fatalf("%s: dead letter %.500s", scenario, dl.Data)
	}

	// Put the row together from the raw stream, as a user would.
	raw, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		e.t.Fatal(err)
	}
	var put []byte
	var first wire.Change
	var rels []wire.Relation
	total := uint64(1) // until the first piece tells
	for seq := doc.RawSeq; uint64(len(put)) < total; {
		sm, err := raw.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("pgjet.raw."+e.source))
		if err != nil {
			e.t.Fatalf("raw record at or after %d: %v", seq, err)
		}
		var m wire.Message
		if err := wire.Unmarshal(sm.Data, &m); err != nil {
			e.t.Fatal(err)
		}
		for _, tx := range m.Txs {
			if tx.IsPiece() && tx.PieceOffset == uint64(len(put)) {
				if len(put) == 0 {
					first, rels, total = tx.Changes[0], m.Relations, tx.PieceTotal
				}
				put = append(put, tx.Changes[0].Content...)
			}
		}
		if len(put) == 0 {
			e.t.Fatalf("%s: raw record %d, named by the dead letter, holds no first piece", scenario, sm.Sequence)
		}
		seq = sm.Sequence + 1
	}
	c, err := wire.DecodeChange(put, &first, rels)
	if err != nil {
		e.t.Fatalf("%s: pieces in the raw stream: %v", scenario, err)
	}
	var wantMD5 string
	if err := e.conn.QueryRow(ctx, `SELECT md5(v) FROM blob WHERE id = 1`).Scan(&wantMD5); err != nil {
		e.t.Fatal(err)
	}
	if len(c.New) != 2 || fmt.Sprintf("%x", md5.Sum(c.New[1].Data)) != wantMD5 {
		e.t.Fatalf("%s: the row put together from the raw stream differs from Postgres's", scenario)
	}
	e.t.Logf("SUMMARY %s: dead-lettered as too large; %d bytes in raw pieces from record %d match Postgres", scenario, len(put), doc.RawSeq)
}

// createWideTables creates n tables wide.t1 ... wide.tn with audit triggers
// and a publication for the schema.
func (e *env) createWideTables(n int) {
	e.t.Helper()
	ctx := context.Background()
	if err := check.InstallAudit(ctx, e.conn); err != nil {
		e.t.Fatal(err)
	}
	e.exec(`CREATE SCHEMA wide`)
	// In batches: each batch is one transaction and takes a lock per table.
	for lo := 1; lo <= n; lo += 1000 {
		hi := min(lo+999, n)
		e.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
			EXECUTE format('CREATE TABLE wide.%%I (id int PRIMARY KEY, v text)', 't' || i);
			EXECUTE format('CREATE TRIGGER pgjet_audit_row AFTER INSERT OR UPDATE OR DELETE ON wide.%%I
				FOR EACH ROW EXECUTE FUNCTION public.pgjet_audit_row()', 't' || i);
		END LOOP; END $$`, lo, hi))
	}
	e.exec(`CREATE PUBLICATION ` + e.publication + ` FOR TABLES IN SCHEMA wide`)
}
