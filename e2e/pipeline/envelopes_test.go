package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// envelopesPipeline has three routes over the same tables: Debezium with
// its defaults and transaction metadata events, and the DeltaForge seed's
// CloudEvents route (its sink as the seed writes it), once more in binary
// mode. The collector's raw messages are small (--max-message-bytes) so
// that a transaction spans several raw records.
const envelopesPipeline = `apiVersion: pgjet/v1
kind: Pipeline
metadata: {name: envelopes}
spec:
  source:
    type: postgres
    config:
      id: users-postgres
      dsn: ${POSTGRES_DSN}
      slot: envelopes
      publication: envelopes
      tables: [public.users, public.orders, public.events, public.bulk, public.typed]
      start_position: earliest
  sinks:
    - type: nats
      config:
        id: dbz
        url: ${NATS_URL}
        prefix: dbz
        stream: DBZ
        transactions: true
        envelope: {type: debezium}
    - type: nats
      config:
        id: users-nats
        url: ${NATS_URL}
        subject: users.events
        stream: USERS
        envelope:
          type: cloudevents
          type_prefix: "com.acme.users"
        encoding: json
        required: true
        send_timeout_secs: 5
        batch_timeout_secs: 30
    - type: nats
      config:
        id: users-binary
        url: ${NATS_URL}
        subject: users.binary
        stream: USERS_BINARY
        envelope: {type: cloudevents, type_prefix: com.acme.users, mode: binary}
`

// Invariants, for one pipeline file whose three routes read the same
// changes (the mixed workload, every type of typesSchema with NULLs,
// unicode, ±infinity and NaN, a 3,000-row transaction over several raw
// records, a truncate):
//
//   - Debezium (defaults): every change is delivered exactly once, in commit
//     order, as a Debezium PostgreSQL connector value whose before, after
//     and key (the Pgjet-Key header), decoded from Debezium's encodings,
//     equal Postgres's own rendering (to_jsonb); where the encoding loses
//     information (timetz's offset, interval's months) Postgres's rendering
//     is mapped into Debezium's form instead. Unchanged TOAST values are the
//     placeholder. The changes precise decimals cannot carry (numeric NaN)
//     are dead letters instead, exactly those.
//   - Debezium transaction metadata: one BEGIN and one END per committed
//     transaction, bracketing exactly that transaction's events (no other
//     event between them), END counting them in total and per table
//     (dead letters included: the relay counts an event before rendering
//     it, router/internal/render/render.go).
//   - CloudEvents (the seed's route, structured, and binary mode): every
//     event is a valid CloudEvent (sdk-go) with the seed's type, subject,
//     source and data {before, after, op}; exactly once, in commit order,
//     values equal to to_jsonb; its time is the commit time the Debezium
//     route gives the same change.
func TestEnvelopesDebeziumAndCloudEventsFromOneFile(t *testing.T) {
	e := newEnv(t, mixedSchema+typesSchema, "public.users", "public.orders", "public.events", "public.bulk", "public.typed")
	file := filepath.Join(t.TempDir(), "envelopes.yaml")
	if err := os.WriteFile(file, []byte(envelopesPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "NATS_URL=" + e.nats.URL()}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file, "--max-message-bytes", "65536"}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	for _, id := range []string{"dbz", "users-nats", "users-binary"} {
		if !rt.WaitForLog("msg=relaying route="+id+" ", 30*time.Second) {
			t.Fatalf("route %s did not start relaying", id)
		}
	}

	e.mixed(1)
	typedWorkload(e)
	e.exec(`INSERT INTO bulk SELECT g, repeat('b', 40) || g FROM generate_series(1, 3000) g`)
	e.exec(`TRUNCATE events`)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	cat := readCatalog(ctx, t, e.conn)
	var dbName string
	if err := e.conn.QueryRow(ctx, `SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)

	commitTimes := map[string]int64{} // "lsn index" → commit time (µs), from the Debezium route
	t.Run("debezium", func(t *testing.T) {
		checkDebeziumRoute(ctx, t, js, cat, dbName, changes, commitTimes)
	})
	for _, r := range []struct {
		name, stream, subject string
		binary                bool
	}{{"cloudevents", "USERS", "users.events", false}, {"cloudevents-binary", "USERS_BINARY", "users.binary", true}} {
		t.Run(r.name, func(t *testing.T) {
			msgs := readStream(ctx, t, js, r.stream, len(changes))
			events := make([]check.Event, 0, len(msgs))
			for _, m := range msgs {
				if m.Subject() != r.subject {
					t.Fatalf("event on %s, want %s: %s", m.Subject(), r.subject, m.Data())
				}
				ev := readCloudEvent(t, m, r.binary)
				ce := seedEvent(t, ev, "users-postgres")
				if md, err := m.Metadata(); err == nil {
					ce.Seq = md.Sequence.Stream
				}
				ce.Subject = m.Subject()
				if us, ok := commitTimes[ce.LSN+" "+strconv.FormatUint(ce.Index, 10)]; ok && ev.Time().UnixMicro() != us {
					t.Errorf("%s: time %s, the Debezium route's commit time of the change %s", ce.MsgID, ev.Time().Format(time.RFC3339Nano),
						time.UnixMicro(us).UTC().Format(time.RFC3339Nano))
				}
				events = append(events, ce)
			}
			r := check.Check(changes, events)
			t.Logf("%s", r.String())
			if !r.OK() || r.Committed != len(changes) {
				t.Fatalf("invariant violated: %s", r.String())
			}
		})
	}
	if log := rt.Log(); strings.Contains(log, "level=ERROR") {
		t.Errorf("router logged an error:\n%s", log)
	}
}

// typedWorkload writes rows of every type of typesSchema: all NULL, the
// extremes, unicode, NaN and ±infinity; then updates and deletes some.
func typedWorkload(e *env) {
	e.t.Helper()
	e.exec(`INSERT INTO typed (c_int2) VALUES (NULL)`)
	e.exec(`INSERT INTO typed (c_int2, c_int4, c_int8, c_numeric, c_num_scale, c_float4, c_float8, c_bool, c_text, c_varchar, c_bpchar,
		c_json, c_jsonb, c_uuid, c_date, c_time, c_timetz, c_ts, c_tstz, c_interval, c_bytea, c_int_arr, c_text_arr, c_2d, c_jsonb_arr,
		c_mood, c_mood_arr, c_posint, c_inet, c_money) VALUES
		(-32768, 2147483647, -9223372036854775808, 123456789012345678901234567890.123456789, 1.50000, 1.5, 0.1, true,
		 'héllo "wörld" \ tab	nl
		 ✓ 🎉', 'varchar', 'ab', '{"b": [1, 2.50, null], "a": "x"}', '{"b": [1, 2.50, null], "a": "x"}',
		 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999999', '12:00:00+05:30', '2024-02-29 12:34:56.789012',
		 '2024-02-29 12:34:56.789012+02', '1 year 2 mons 3 days 04:05:06.5', '\xdeadbeef00', '{1,NULL,-3}', '{"a,b","c\"d",NULL,"",e}',
		 '{{1,2},{3,4}}', ARRAY['{"k": 1}'::jsonb, 'null'::jsonb], 'happy ☺', '{sad,ok}', 42, '192.168.0.1/24', 1234567.89),
		(0, 0, 0, 'NaN', 0, 'NaN', 'Infinity', false, '', '', '', 'null', '[]', '00000000-0000-0000-0000-000000000000',
		 'infinity', '00:00:00', '00:00:00-12', '-infinity', 'infinity', '-1 days', '\x', '{}', '{}', '{}', '{}', 'sad', '{}', 1, '::1', -0.01),
		(1, -1, 1, '-0.000000000000000000001', -99999.99999, '-Infinity', 1e-300, NULL, 'NULL', NULL, 'x', '"str"', '"str"', NULL,
		 '0001-01-01', NULL, '23:30:00.25-01:30', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '-00:00:01.5', NULL, NULL, '{NULL}', NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	e.exec(`UPDATE typed SET c_text = c_text || ' updated', c_float8 = -0.0 WHERE c_int2 IS NOT NULL`)
	e.exec(`DELETE FROM typed WHERE c_int4 = 0`)
}

// colType is what a column's Debezium encoding depends on.
type colType struct {
	name  string // the type's name (the base type of a domain; the element's for arrays)
	array bool
	mod   int // type modifier
	enum  bool
}

// tableInfo is a table as the catalog describes it.
type tableInfo struct {
	cols    map[string]colType
	full    bool            // REPLICA IDENTITY FULL
	keyCols map[string]bool // primary key columns
	notNull map[string]bool // NOT NULL columns
}

// readCatalog reads the column types and replica identities of the public
// tables.
func readCatalog(ctx context.Context, t *testing.T, conn *pgx.Conn) map[string]*tableInfo {
	t.Helper()
	rows, err := conn.Query(ctx, `
		WITH c AS (
			SELECT cl.relname, cl.relreplident, a.attname, a.attnum,
				CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS toid,
				CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS tmod,
				COALESCE((SELECT true FROM pg_index i WHERE i.indrelid = cl.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)), false) AS pk,
				a.attnotnull
			FROM pg_class cl JOIN pg_attribute a ON a.attrelid = cl.oid JOIN pg_type t ON t.oid = a.atttypid
			WHERE cl.relnamespace = 'public'::regnamespace AND cl.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped)
		SELECT c.relname, c.relreplident::text, c.attname, c.tmod, c.pk, c.attnotnull,
			bt.typcategory = 'A' AS is_array, COALESCE(et.typname, bt.typname)::text, COALESCE(et.typtype, bt.typtype) = 'e'
		FROM c JOIN pg_type bt ON bt.oid = c.toid LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
		ORDER BY c.relname, c.attnum`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*tableInfo{}
	for rows.Next() {
		var table, ident, col string
		var ct colType
		var pk, notNull bool
		if err := rows.Scan(&table, &ident, &col, &ct.mod, &pk, &notNull, &ct.array, &ct.name, &ct.enum); err != nil {
			t.Fatal(err)
		}
		ti := out[table]
		if ti == nil {
			ti = &tableInfo{cols: map[string]colType{}, keyCols: map[string]bool{}, notNull: map[string]bool{}, full: ident == "f"}
			out[table] = ti
		}
		ti.cols[col] = ct
		if pk {
			ti.keyCols[col] = true
		}
		if notNull {
			ti.notNull[col] = true
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The Debezium route's subjects (prefix dbz, default templates).
const (
	dbzBegin             = "dbz.transactions.begin.event"
	dbzCommit            = "dbz.transactions.commit.event"
	dbzDeadLetterSubject = "dbz._deadletter"
)

// dbzValue is a Debezium change event value, as far as the test reads it.
type dbzValue struct {
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Source struct {
		Version   string  `json:"version"`
		Connector string  `json:"connector"`
		Name      string  `json:"name"`
		TsMs      int64   `json:"ts_ms"`
		Snapshot  string  `json:"snapshot"`
		DB        string  `json:"db"`
		Sequence  string  `json:"sequence"`
		TsUs      int64   `json:"ts_us"`
		Schema    string  `json:"schema"`
		Table     string  `json:"table"`
		TxID      *uint32 `json:"txId"`
		LSN       uint64  `json:"lsn"`
	} `json:"source"`
	Transaction *struct {
		ID                  string `json:"id"`
		TotalOrder          uint64 `json:"total_order"`
		DataCollectionOrder uint64 `json:"data_collection_order"`
	} `json:"transaction"`
	Op   string `json:"op"`
	TsMs int64  `json:"ts_ms"`
	TsUs int64  `json:"ts_us"`
}

// dbzTxEvent is a Debezium transaction metadata event.
type dbzTxEvent struct {
	Status          string `json:"status"`
	ID              string `json:"id"`
	EventCount      *int   `json:"event_count"`
	DataCollections []struct {
		DataCollection string `json:"data_collection"`
		EventCount     int    `json:"event_count"`
	} `json:"data_collections"`
	TsMs int64 `json:"ts_ms"`
}

// dbzDeadLetter is the relay's dead-letter document, as far as read here.
type dbzDeadLetter struct {
	Error  string `json:"error"`
	ID     string `json:"id"`
	LSN    string `json:"lsn"`
	Xid    uint32 `json:"xid"`
	Index  uint64 `json:"index"`
	Op     string `json:"op"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	New    []struct {
		Column string `json:"column"`
		Data   []byte `json:"data"`
	} `json:"new"`
}

var dbzOps = map[string]string{"c": "insert", "u": "update", "d": "delete", "t": "truncate"}

func checkDebeziumRoute(ctx context.Context, t *testing.T, js jetstream.JetStream, cat map[string]*tableInfo, dbName string,
	changes []check.Change, commitTimes map[string]int64) {
	// Precise decimals have no encoding for numeric NaN: those changes are
	// dead letters, and the others events.
	var delivered, dead []check.Change
	xids := map[uint32]bool{}
	for _, c := range changes {
		xids[uint32(c.Xid)] = true
		if nonFiniteNumeric(t, cat[c.Table], c) {
			dead = append(dead, c)
		} else {
			delivered = append(delivered, c)
		}
	}
	if len(dead) == 0 {
		t.Fatal("the workload has no numeric NaN: nothing checks the dead letters")
	}
	want := len(changes) + 2*len(xids)
	msgs := readStream(ctx, t, js, "DBZ", want)

	// The transaction brackets, in stream order.
	type openTx struct {
		id     string
		tsMs   int64
		count  int
		tables map[string]int
		// events: its change events so far, the last one's position.
		events          int
		lastCommit, lsn uint64
	}
	var open *openTx
	var prevCommit uint64          // the commit LSN of the last transaction with events
	bracketed := map[string]bool{} // transaction ids
	var events []check.Event
	var deadLetters []dbzDeadLetter
	problems := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 10 {
			t.Errorf(format, args...)
		}
	}
	inTx := func(id, table string, tsMs int64, what string) {
		t.Helper()
		if open == nil || open.id != id {
			fail("%s of transaction %s outside its BEGIN and END (open: %v)", what, id, open)
			return
		}
		if tsMs != open.tsMs {
			fail("%s: ts_ms %d, its BEGIN's %d", what, tsMs, open.tsMs)
		}
		open.count++
		open.tables[table]++
	}
	for _, m := range msgs {
		switch m.Subject() {
		case dbzBegin, dbzCommit:
			var tx dbzTxEvent
			if err := json.Unmarshal(m.Data(), &tx); err != nil {
				t.Fatalf("transaction event on %s: %v: %s", m.Subject(), err, m.Data())
			}
			if key := m.Headers().Get("Pgjet-Key"); key != `{"id":"`+tx.ID+`"}` {
				fail("transaction event %s: key %q", tx.ID, key)
			}
			if m.Subject() == dbzBegin {
				if tx.Status != "BEGIN" || tx.EventCount != nil || tx.DataCollections != nil {
					fail("BEGIN event on %s: %s", m.Subject(), m.Data())
				}
				if open != nil {
					fail("BEGIN of %s before the END of %s", tx.ID, open.id)
				}
				if bracketed[tx.ID] {
					fail("a second BEGIN of transaction %s", tx.ID)
				}
				bracketed[tx.ID] = true
				open = &openTx{id: tx.ID, tsMs: tx.TsMs, tables: map[string]int{}}
				continue
			}
			if tx.Status != "END" || tx.EventCount == nil {
				fail("END event on %s: %s", m.Subject(), m.Data())
				continue
			}
			if open == nil || open.id != tx.ID {
				fail("END of %s without its BEGIN (open: %v)", tx.ID, open)
				open = nil
				continue
			}
			got := map[string]int{}
			for _, dc := range tx.DataCollections {
				got[dc.DataCollection] += dc.EventCount
			}
			if *tx.EventCount != open.count || !maps.Equal(got, open.tables) || len(got) != len(tx.DataCollections) {
				fail("END of %s: event_count %d, data_collections %v; its events: %d, %v", tx.ID, *tx.EventCount, got, open.count, open.tables)
			}
			if tx.TsMs != open.tsMs {
				fail("END of %s: ts_ms %d, BEGIN's %d", tx.ID, tx.TsMs, open.tsMs)
			}
			open = nil
		case dbzDeadLetterSubject:
			var dl dbzDeadLetter
			if err := json.Unmarshal(m.Data(), &dl); err != nil {
				t.Fatalf("dead letter: %v: %s", err, m.Data())
			}
			lsn, err := check.ParseLSN(dl.LSN)
			if err != nil {
				t.Fatal(err)
			}
			if open != nil {
				inTx(fmt.Sprintf("%d:%d", dl.Xid, lsn), dl.Schema+"."+dl.Table, open.tsMs, "dead letter "+dl.ID)
			} else {
				fail("dead letter %s outside any transaction", dl.ID)
			}
			deadLetters = append(deadLetters, dl)
		default:
			ev, tsMs, pos := debeziumEvent(t, m, cat, dbName)
			inTx(fmt.Sprintf("%d:%d", ev.Xid, mustLSN(t, ev.LSN)), ev.Schema+"."+ev.Table, tsMs, "event "+ev.MsgID)
			// A transaction's events share the last commit before it, later
			// than the commit of the transaction before (its end), and go
			// forward in the WAL (PostgresConnectorIT.shouldHaveLastCommitLsn).
			if open != nil {
				switch {
				case open.events == 0:
					if pos.lastCommit <= prevCommit && prevCommit != 0 {
						fail("event %s: last commit %d, not after the previous transaction's commit %d", ev.MsgID, pos.lastCommit, prevCommit)
					}
				case pos.lastCommit != open.lastCommit || pos.lsn < open.lsn:
					fail("event %s: last commit %d and lsn %d after %d and %d in its transaction", ev.MsgID, pos.lastCommit, pos.lsn, open.lastCommit, open.lsn)
				}
				open.events++
				open.lastCommit, open.lsn = pos.lastCommit, pos.lsn
				prevCommit = pos.commit
			}
			us, _ := time.Parse(time.RFC3339Nano, ev.CommitTime)
			commitTimes[ev.LSN+" "+strconv.FormatUint(ev.Index, 10)] = us.UnixMicro()
			events = append(events, ev)
		}
	}
	if open != nil {
		fail("transaction %s has no END", open.id)
	}
	// One bracket per committed transaction, and none other.
	for id := range bracketed {
		x, _, _ := strings.Cut(id, ":")
		xid, _ := strconv.ParseUint(x, 10, 32)
		if !xids[uint32(xid)] {
			fail("BEGIN/END of transaction %s, which committed no change", id)
		}
		delete(xids, uint32(xid))
	}
	if len(xids) > 0 {
		fail("%d committed transactions without BEGIN/END: %v", len(xids), slices.Sorted(maps.Keys(xids)))
	}

	// The dead letters are exactly the changes with a NaN numeric.
	type deadKey struct {
		xid       uint32
		table, op string
	}
	wantDead, gotDead := map[deadKey]int{}, map[deadKey]int{}
	for _, c := range dead {
		wantDead[deadKey{uint32(c.Xid), c.Table, c.Op}]++
	}
	for _, dl := range deadLetters {
		gotDead[deadKey{dl.Xid, dl.Table, dl.Op}]++
		if !strings.Contains(dl.Error, "decimal_handling_mode") {
			fail("dead letter %s: error %q does not say to set decimal_handling_mode", dl.ID, dl.Error)
		}
		nan := false
		for _, v := range dl.New {
			nan = nan || v.Column == "c_numeric" && string(v.Data) == "NaN"
		}
		if !nan {
			fail("dead letter %s does not carry the NaN it could not render", dl.ID)
		}
	}
	if !maps.Equal(wantDead, gotDead) {
		fail("dead letters %v, want %v (the changes with a numeric NaN)", gotDead, wantDead)
	}

	r := check.Check(normalizeLossy(t, cat, delivered), events)
	t.Logf("%s; %d dead letters, %d transactions bracketed", r.String(), len(deadLetters), len(bracketed))
	if !r.OK() || r.Committed != len(delivered) {
		t.Fatalf("invariant violated: %s", r.String())
	}
}

func mustLSN(t *testing.T, s string) uint64 {
	t.Helper()
	lsn, err := check.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// nonFiniteNumeric reports whether the Debezium route must render a numeric
// NaN or ±Infinity for c: in its new row, or its old row when whole.
func nonFiniteNumeric(t *testing.T, ti *tableInfo, c check.Change) bool {
	rows := [][]byte{c.After}
	if ti.full {
		rows = append(rows, c.Before)
	}
	for _, row := range rows {
		if row == nil {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(row, &m); err != nil {
			t.Fatal(err)
		}
		for col, v := range m {
			if ct := ti.cols[col]; ct.name == "numeric" && !ct.array {
				switch string(v) {
				case `"NaN"`, `"Infinity"`, `"-Infinity"`:
					return true
				}
			}
		}
	}
	return false
}

// dbzPosition is where a Debezium change event says its change is:
// source.lsn, and the last commit before its transaction, source.sequence's
// first element (0: null).
type dbzPosition struct {
	commit, lsn, lastCommit uint64
}

// debeziumEvent checks the envelope of a Debezium change event and builds
// the check.Event it stands for, its values decoded back to to_jsonb's
// rendering. It returns ts_ms and the event's position too.
func debeziumEvent(t *testing.T, m jetstream.Msg, cat map[string]*tableInfo, dbName string) (check.Event, int64, dbzPosition) {
	t.Helper()
	id := m.Headers().Get(jetstream.MsgIDHeader)
	var v dbzValue
	if err := json.Unmarshal(m.Data(), &v); err != nil {
		t.Fatalf("%s: %v: %s", id, err, m.Data())
	}
	op, ok := dbzOps[v.Op]
	s := &v.Source
	ti := cat[s.Table]
	if !ok || ti == nil || s.Schema != "public" || v.Transaction == nil || s.TxID == nil {
		t.Fatalf("%s: not a change event of a workload table: %s", id, m.Data())
	}
	tx := v.Transaction
	// transaction.id is "<txid>:<commit LSN>"; source.lsn the change's own
	// position, before its commit, and source.sequence [the last commit
	// before the transaction, source.lsn].
	var pos dbzPosition
	var xid uint32
	if _, err := fmt.Sscanf(tx.ID, "%d:%d", &xid, &pos.commit); err != nil || xid != *s.TxID {
		t.Fatalf("%s: transaction id %q", id, tx.ID)
	}
	pos.lsn = s.LSN
	var seq [2]*string
	if err := json.Unmarshal([]byte(s.Sequence), &seq); err != nil || seq[1] == nil || *seq[1] != strconv.FormatUint(s.LSN, 10) {
		t.Errorf("%s: sequence %s does not end with lsn %d", id, s.Sequence, s.LSN)
	} else if seq[0] != nil {
		// The end of a commit is where the next record starts: the change
		// right after one is at its end.
		if pos.lastCommit, err = strconv.ParseUint(*seq[0], 10, 64); err != nil || pos.lastCommit > s.LSN {
			t.Errorf("%s: sequence %s: the last commit is after the change", id, s.Sequence)
		}
	}
	if s.LSN == 0 || s.LSN > pos.commit {
		t.Errorf("%s: lsn %d is not a position before the commit %d", id, s.LSN, pos.commit)
	}
	lsn := fmt.Sprintf("%X/%X", pos.commit>>32, uint32(pos.commit))
	if want := fmt.Sprintf("dbz.public.%s.%s", s.Table, op); m.Subject() != want {
		t.Errorf("%s: subject %s, want %s", id, m.Subject(), want)
	}
	if ct, ok := m.Headers()["Content-Type"]; ok {
		t.Errorf("%s: Content-Type %q: JSON events carry none (as native's and Debezium Server's)", id, ct)
	}
	if s.Version != "3.6.1.Final" || s.Connector != "postgresql" || s.Name != "users-postgres" || s.Snapshot != "false" || s.DB != dbName ||
		s.TsMs != v.TsMs || s.TsUs != v.TsUs || v.TsMs != v.TsUs/1000 || tx.TotalOrder == 0 || tx.DataCollectionOrder != tx.TotalOrder {
		t.Errorf("%s: source or transaction block is not as documented: %s", id, m.Data())
	}
	if !strings.Contains(id, fmt.Sprintf(":%x:%d", pos.commit, tx.TotalOrder-1)) {
		t.Errorf("%s: Nats-Msg-Id does not name commit LSN %s and index %d", id, lsn, tx.TotalOrder-1)
	}
	ev := check.Event{
		Op: op, Source: s.Name, Schema: s.Schema, Table: s.Table, LSN: lsn, Xid: *s.TxID, Index: tx.TotalOrder - 1,
		CommitTime: time.UnixMicro(v.TsUs).UTC().Format(time.RFC3339Nano), MsgID: id, Subject: m.Subject(),
	}
	if md, err := m.Metadata(); err == nil {
		ev.Seq = md.Sequence.Stream
	}
	d := dbzDecoder{t: t, ti: ti, where: id}
	ev.After, ev.Unchanged = d.row(v.After, true)
	ev.Before, _ = d.row(v.Before, false)
	if op == "delete" || op == "update" && !isJSONNull(v.Before) {
		if !ti.full {
			// A key-only old row: the non-key columns are null, as in
			// Debezium, or for NOT NULL ones their default or fallback.
			ev.Before = d.keyOnly(ev.Before)
		}
	}
	// The key is the primary key, also under REPLICA IDENTITY FULL; a
	// table without one has none.
	key := m.Headers().Get("Pgjet-Key")
	switch {
	case op == "truncate" || len(ti.keyCols) == 0:
		if key != "" {
			t.Errorf("%s: key %s on a %s of a table without a primary key", id, key, op)
		}
	case key == "":
		t.Errorf("%s: no Pgjet-Key header on a %s", id, op)
	default:
		ev.Key, _ = d.row(json.RawMessage(key), false)
		var cols map[string]json.RawMessage
		if err := json.Unmarshal(ev.Key, &cols); err != nil || len(cols) != len(ti.keyCols) {
			t.Errorf("%s: key %s, want the primary key's columns %v", id, key, ti.keyCols)
		}
		for c := range cols {
			if !ti.keyCols[c] {
				t.Errorf("%s: key %s has %s, not a primary key column", id, key, c)
			}
		}
	}
	return ev, v.TsMs, pos
}

func isJSONNull(b json.RawMessage) bool {
	return len(b) == 0 || string(b) == "null"
}

// dbzDecoder decodes rows of one table from Debezium's encodings (its
// defaults: precise decimals, adaptive time precision, bytes as base64,
// numeric intervals) back to to_jsonb's rendering.
type dbzDecoder struct {
	t     *testing.T
	ti    *tableInfo
	where string
}

// The default unavailable.value.placeholder, as a text value, a text
// array, and bytea in bytes mode.
var (
	dbzPlaceholder      = `"__debezium_unavailable_value"`
	dbzPlaceholderArray = `["__debezium_unavailable_value"]`
	dbzPlaceholderBytes = `"` + base64.StdEncoding.EncodeToString([]byte("__debezium_unavailable_value")) + `"`
)

// row decodes a Debezium Value struct. With after, placeholders are
// unchanged TOAST values: left out, and listed.
func (d *dbzDecoder) row(raw json.RawMessage, after bool) (json.RawMessage, []string) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		d.t.Fatalf("%s: row: %v: %s", d.where, err, raw)
	}
	out := make(map[string]json.RawMessage, len(in))
	var unchanged []string
	for col, v := range in {
		ct, ok := d.ti.cols[col]
		if !ok {
			d.t.Fatalf("%s: %s is not a column", d.where, col)
		}
		if after && (string(v) == dbzPlaceholder || ct.array && string(v) == dbzPlaceholderArray || ct.name == "bytea" && string(v) == dbzPlaceholderBytes) {
			unchanged = append(unchanged, col)
			continue
		}
		dv, err := d.value(ct, v)
		if err != nil {
			d.t.Fatalf("%s: column %s (%s): %v: %s", d.where, col, ct.name, err, v)
		}
		out[col] = dv
	}
	b, err := json.Marshal(out)
	if err != nil {
		d.t.Fatal(err)
	}
	slices.Sort(unchanged)
	return b, unchanged
}

// keyOnly checks that a key-only old row has null non-key columns, but
// for NOT NULL ones a value (their default or their type's fallback, as
// Debezium gives a required field), and keeps the key columns.
func (d *dbzDecoder) keyOnly(row json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(row, &m); err != nil {
		d.t.Fatal(err)
	}
	for col, v := range m {
		if d.ti.keyCols[col] {
			continue
		}
		if null := string(v) == "null"; null == d.ti.notNull[col] {
			d.t.Errorf("%s: key-only old row has %s = %s (NOT NULL: %v)", d.where, col, v, d.ti.notNull[col])
		}
		delete(m, col)
	}
	b, _ := json.Marshal(m)
	return b
}

func (d *dbzDecoder) value(ct colType, v json.RawMessage) (json.RawMessage, error) {
	if string(v) == "null" {
		return v, nil
	}
	if ct.array {
		var elems []json.RawMessage
		if err := json.Unmarshal(v, &elems); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		el := ct
		for i, e := range elems {
			if len(e) > 0 && e[0] == '[' {
				el.array = true // the next dimension
			} else {
				el.array = false
			}
			dv, err := d.value(el, e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			elems[i] = dv
		}
		return json.Marshal(elems)
	}
	str := func() (string, error) {
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	}
	num := func() (int64, error) {
		return strconv.ParseInt(string(v), 10, 64)
	}
	switch ct.name {
	case "numeric":
		if ct.mod < 4 {
			// io.debezium.data.VariableScaleDecimal.
			var vsd struct {
				Scale *int   `json:"scale"`
				Value []byte `json:"value"`
			}
			if err := json.Unmarshal(v, &vsd); err != nil || vsd.Scale == nil {
				return nil, fmt.Errorf("not a VariableScaleDecimal: %v", err)
			}
			return json.RawMessage(decimalText(vsd.Value, *vsd.Scale)), nil
		}
		// Connect Decimal: the scale is the column's.
		s, err := str()
		if err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(decimalText(raw, (ct.mod-4)&0xffff)), nil
	case "money":
		s, err := str()
		if err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		return json.Marshal(moneyText(decimalText(raw, 2)))
	case "date":
		days, err := num()
		if err != nil {
			return nil, err
		}
		switch days {
		case -2147472692:
			return json.RawMessage(`"infinity"`), nil
		case -2147472691:
			return json.RawMessage(`"-infinity"`), nil
		}
		return json.Marshal(time.Unix(days*86400, 0).UTC().Format("2006-01-02"))
	case "time":
		us, err := num()
		if err != nil {
			return nil, err
		}
		if ct.mod >= 0 && ct.mod <= 3 {
			us *= 1000 // adaptive: milliseconds
		}
		return json.Marshal(clockText(us))
	case "timestamp":
		us, err := num()
		if err != nil {
			return nil, err
		}
		switch us {
		case 9223372036825200000:
			return json.RawMessage(`"infinity"`), nil
		case -9223372036832400000:
			return json.RawMessage(`"-infinity"`), nil
		}
		if ct.mod >= 0 && ct.mod <= 3 {
			us *= 1000
		}
		return json.Marshal(time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.999999"))
	case "timestamptz":
		s, err := str()
		if err != nil {
			return nil, err
		}
		if s == "infinity" || s == "-infinity" {
			return v, nil
		}
		if !strings.HasSuffix(s, "Z") {
			return nil, fmt.Errorf("ZonedTimestamp %q is not in UTC", s)
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ts.Format("2006-01-02T15:04:05.999999-07:00"))
	case "bytea":
		s, err := str()
		if err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		return json.Marshal(`\x` + hex.EncodeToString(raw))
	case "json", "jsonb":
		s, err := str()
		if err != nil {
			return nil, err
		}
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("not a JSON document: %q", s)
		}
		return json.RawMessage(s), nil
	case "timetz", "interval":
		// Lossy: compared in Debezium's form (normalizeLossy).
		return v, nil
	}
	// Numbers (integers, floats with NaN and the infinities as strings),
	// booleans and strings (text, enums, uuid, inet, ...) are as to_jsonb
	// renders them.
	return v, nil
}

// decimalText is the two's complement big-endian unscaled value raw at
// scale, as a decimal literal.
func decimalText(raw []byte, scale int) string {
	v := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// moneyText renders a decimal as money's output in the C locale:
// "-$1,234.56".
func moneyText(dec string) string {
	neg := strings.HasPrefix(dec, "-")
	dec = strings.TrimPrefix(dec, "-")
	intPart, frac, _ := strings.Cut(dec, ".")
	var sb strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			sb.WriteByte(',')
		}
		sb.WriteRune(c)
	}
	s := "$" + sb.String() + "." + frac
	if neg {
		return "-" + s
	}
	return s
}

// clockText renders microseconds of the day as time's output.
func clockText(us int64) string {
	s := fmt.Sprintf("%02d:%02d:%02d", us/3600e6, us/60e6%60, us/1e6%60)
	if f := us % 1e6; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	return s
}

// normalizeLossy maps the audit's values of the types whose Debezium
// encoding loses information into that encoding, computed from Postgres's
// rendering as docs/debezium.md defines it: timetz moved to UTC (the
// offset is lost), interval as microseconds with Debezium's average month
// of 365.25/12 days (months and days are lost).
func normalizeLossy(t *testing.T, cat map[string]*tableInfo, changes []check.Change) []check.Change {
	t.Helper()
	out := make([]check.Change, len(changes))
	for i, c := range changes {
		out[i] = c
		ti := cat[c.Table]
		for _, row := range []*[]byte{&out[i].Before, &out[i].After} {
			if *row == nil {
				continue
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(*row, &m); err != nil {
				t.Fatal(err)
			}
			changed := false
			for col, v := range m {
				ct := ti.cols[col]
				if string(v) == "null" || ct.array || ct.name != "timetz" && ct.name != "interval" {
					continue
				}
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					t.Fatalf("%s.%s: %v", c.Table, col, err)
				}
				var err error
				if ct.name == "timetz" {
					m[col], err = zonedTimeOf(s)
				} else {
					m[col], err = microDurationOf(s)
				}
				if err != nil {
					t.Fatalf("%s.%s %q: %v", c.Table, col, s, err)
				}
				changed = true
			}
			if changed {
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				*row = b
			}
		}
	}
	return out
}

// zonedTimeOf turns timetz output ("12:00:00+05:30") into Debezium's
// ZonedTime ("06:30:00Z").
func zonedTimeOf(s string) (json.RawMessage, error) {
	i := strings.IndexAny(s, "+-")
	if i < 0 {
		return nil, fmt.Errorf("no offset")
	}
	clock, offset := s[:i], s[i:]
	var h, m, sec int
	if _, err := fmt.Sscanf(clock[:8], "%d:%d:%d", &h, &m, &sec); err != nil {
		return nil, err
	}
	us := int64((h*60+m)*60+sec) * 1e6
	if len(clock) > 8 {
		f, err := strconv.ParseFloat("0"+clock[8:], 64)
		if err != nil {
			return nil, err
		}
		us += int64(f*1e6 + 0.5)
	}
	parts := strings.Split(offset[1:], ":")
	off := 0
	for k, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		off += n * []int{3600, 60, 1}[k]
	}
	if offset[0] == '-' {
		off = -off
	}
	us = ((us-int64(off)*1e6)%86400e6 + 86400e6) % 86400e6
	return json.Marshal(clockText(us) + "Z")
}

// microDurationOf turns interval output (IntervalStyle postgres: "1 year 2
// mons 3 days 04:05:06.5", "-1 days", "-00:00:01.5") into Debezium's
// MicroDuration: months of 365.25/12 days, in doubles, truncated.
func microDurationOf(s string) (json.RawMessage, error) {
	var months, days, hours, minutes int
	var seconds float64
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		if strings.Contains(f[i], ":") {
			p := strings.Split(strings.TrimLeft(f[i], "+-"), ":")
			if len(p) != 3 {
				return nil, fmt.Errorf("bad clock %q", f[i])
			}
			var err1, err2, err3 error
			hours, err1 = strconv.Atoi(p[0])
			minutes, err2 = strconv.Atoi(p[1])
			seconds, err3 = strconv.ParseFloat(p[2], 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("bad clock %q", f[i])
			}
			if strings.HasPrefix(f[i], "-") {
				hours, minutes, seconds = -hours, -minutes, -seconds
			}
			continue
		}
		if i+1 >= len(f) {
			return nil, fmt.Errorf("number %q without a unit", f[i])
		}
		n, err := strconv.Atoi(f[i])
		if err != nil {
			return nil, err
		}
		switch unit := f[i+1]; {
		case strings.HasPrefix(unit, "year"):
			months += 12 * n
		case strings.HasPrefix(unit, "mon"):
			months += n
		case strings.HasPrefix(unit, "day"):
			days += n
		default:
			return nil, fmt.Errorf("unit %q", unit)
		}
		i++
	}
	// Debezium's MicroDuration.durationMicros, each step a double.
	const daysPerMonth = 365.25 / 12.0
	numberOfDays := float64(float64(months)*daysPerMonth) + float64(days)
	secs := float64(float64(float64(float64(float64(numberOfDays*24)+float64(hours))*60)+float64(minutes))*60) + seconds
	return json.RawMessage(strconv.FormatInt(int64(float64(secs*1e6)), 10)), nil
}
