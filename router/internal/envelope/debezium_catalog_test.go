package envelope

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// Relations as a collector of format version 3 describes them: with what
// the catalog says of their columns (wire.Relation.Catalog).
var (
	// orders: its primary key (region, id) is not in column order.
	orders = &wire.Relation{ID: 16500, Schema: "public", Table: "orders", ReplicaIdentity: 'd', Catalog: true, Columns: []wire.Column{
		{Name: "id", TypeOID: pgtype.Int8OID, TypeMod: -1, Key: true, NotNull: true, Default: "nextval('orders_id_seq'::regclass)", PrimaryKey: 2},
		{Name: "status", TypeOID: 16510, TypeMod: -1, NotNull: true, Default: "'new'::order_status",
			Type: wire.TypeInfo{Schema: "public", Name: "order_status", Kind: 'e', Labels: []string{"new", "paid", "shipped"}}},
		{Name: "qty", TypeOID: pgtype.Int4OID, TypeMod: -1, NotNull: true, Default: "1"},
		{Name: "price", TypeOID: pgtype.NumericOID, TypeMod: numericMod(10, 2), NotNull: true, Default: "0"},
		{Name: "placed", TypeOID: pgtype.TimestamptzOID, TypeMod: -1, NotNull: true, Default: "now()"},
		{Name: "sku", TypeOID: pgtype.TextOID, TypeMod: -1, NotNull: true},
		{Name: "weight", TypeOID: pgtype.Float8OID, TypeMod: -1, NotNull: true},
		{Name: "note", TypeOID: pgtype.TextOID, TypeMod: -1, Default: "NULL::text"},
		{Name: "region", TypeOID: pgtype.TextOID, TypeMod: -1, Key: true, NotNull: true, PrimaryKey: 1},
	}}
	// ledger: REPLICA IDENTITY FULL (pgoutput flags every column) over a
	// primary key.
	ledger = &wire.Relation{ID: 16501, Schema: "public", Table: "ledger", ReplicaIdentity: 'f', Catalog: true, Columns: []wire.Column{
		{Name: "id", TypeOID: pgtype.Int4OID, TypeMod: -1, Key: true, NotNull: true, Default: "nextval('ledger_id_seq'::regclass)", PrimaryKey: 1},
		{Name: "memo", TypeOID: pgtype.TextOID, TypeMod: -1, Key: true},
	}}
	// logs: REPLICA IDENTITY FULL, no primary key nor unique index.
	logs = &wire.Relation{ID: 16502, Schema: "public", Table: "logs", ReplicaIdentity: 'f', Catalog: true, Columns: []wire.Column{
		{Name: "at", TypeOID: pgtype.TimestampOID, TypeMod: -1, Key: true, NotNull: true},
		{Name: "line", TypeOID: pgtype.TextOID, TypeMod: -1, Key: true},
	}}

	// txV3 is a transaction as version 3 records it: after the commit
	// that ended at 0x16B3600.
	txV3 = &wire.Tx{Xid: 735, CommitLSN: 0x16B3748, EndLSN: 0x16B3778, CommitTime: tx.CommitTime, Final: true, PrevCommitLSN: 0x16B3600}
)

func order(id, region string) []wire.Value {
	return []wire.Value{t_(id), t_("paid"), t_("3"), t_("19.90"), t_("2026-11-23 08:59:59.5+00"), t_("A-1"), t_("1.5"), null, t_(region)}
}

// orderKey is the old row pgoutput sends for orders under the default
// replica identity: the key columns, NULL for the others.
func orderKey(id, region string) []wire.Value {
	return []wire.Value{t_(id), null, null, null, null, null, null, null, t_(region)}
}

var debeziumCatalogCases = []struct {
	name string
	ev   Event
}{
	{"insert", Event{Change: &wire.Change{Op: wire.OpInsert, LSN: 0x16B36A0, New: order("7", "eu")}, Rel: orders, Index: 0}},
	// The NOT NULL columns of a key-only old row: their defaults, else
	// their types' fallbacks.
	{"delete", Event{Change: &wire.Change{Op: wire.OpDelete, LSN: 0x16B36C8, OldKind: wire.OldKey, Old: orderKey("7", "eu")}, Rel: orders, Index: 1}},
	{"update_key", Event{Change: &wire.Change{Op: wire.OpUpdate, LSN: 0x16B36F0, OldKind: wire.OldKey, Old: orderKey("7", "eu"), New: order("7", "us")}, Rel: orders, Index: 2}},
	{"update_full_pk", Event{Change: &wire.Change{Op: wire.OpUpdate, LSN: 0x16B3710, OldKind: wire.OldFull,
		Old: []wire.Value{t_("1"), t_("a")}, New: []wire.Value{t_("2"), t_("a")}}, Rel: ledger, Index: 3}},
	{"update_full", Event{Change: &wire.Change{Op: wire.OpUpdate, LSN: 0x16B3720, OldKind: wire.OldFull,
		Old: []wire.Value{t_("2"), t_("a")}, New: []wire.Value{t_("2"), t_("b")}}, Rel: ledger, Index: 4}},
	{"update_full_no_key", Event{Change: &wire.Change{Op: wire.OpUpdate, LSN: 0x16B3730, OldKind: wire.OldFull,
		Old: []wire.Value{t_("2026-01-01 00:00:00"), t_("x")}, New: []wire.Value{t_("2026-01-01 00:00:00"), t_("y")}}, Rel: logs, Index: 5}},
	{"message_nontransactional", Event{Change: &wire.Change{Op: wire.OpMessage, LSN: 0x16B3800, Prefix: "audit", Content: []byte("x")}, Index: 0}},
}

// TestDebeziumCatalogGolden renders events of version-3 records: keys,
// schemas (optional, defaults, allowed), key-only old rows and source.lsn
// and source.sequence from what the record carries.
func TestDebeziumCatalogGolden(t *testing.T) {
	for _, set := range debeziumOptionSets {
		r := newTestDebeziumTx(t, set.settings, set.transactions)
		for _, gc := range debeziumCatalogCases {
			t.Run(set.name+"/"+gc.name, func(t *testing.T) {
				ev := gc.ev
				ev.Source, ev.Tx = source, txV3
				if ev.Change.Op == wire.OpMessage {
					ev.Tx = &wire.Tx{CommitLSN: 0x16B3800, EndLSN: 0x16B3800, CommitTime: tx.CommitTime, Final: true, PrevCommitLSN: 0x16B3778}
				}
				golden(t, filepath.Join("testdata", "debezium", set.name, "catalog_"+gc.name+".golden"), debeziumPublished(t, r, &ev))
			})
		}
	}
}

// source.lsn is the change's own position and source.sequence
// ["<last commit LSN>","<this event's LSN>"], as Debezium's SourceInfo has
// them: PostgresStreamingChangeEventSource updates the lsn with each
// message (stream.lastReceivedLsn()) and lastCommitLsn at each COMMIT, so
// events of one transaction share the first element and differ in the
// second, which grows (PostgresConnectorIT.shouldHaveLastCommitLsn,
// DBZ-2911 and DBZ-3801). A non-transactional message is committed
// before it is emitted: both are its LSN. Without a last commit (the
// first transaction of a source) the first is null, as Debezium writes a
// null lastCommitLsn; records of version 2 carry no per-change LSN: both
// are the commit LSN, as before.
func TestDebeziumSourceSequence(t *testing.T) {
	r := newTestDebezium(t, nil)
	source := func(ev Event) (lsn uint64, seq string) {
		t.Helper()
		ev.Source = source
		b, err := r.Append(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Source struct {
				LSN      uint64 `json:"lsn"`
				Sequence string `json:"sequence"`
			} `json:"source"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Source.LSN, m.Source.Sequence
	}
	var seqs []string
	var last uint64
	for i, lsn := range []uint64{0x16B36A0, 0x16B36C8, 0x16B36F0} {
		got, seq := source(Event{Tx: txV3, Rel: orders, Index: uint64(i), Change: &wire.Change{Op: wire.OpInsert, LSN: lsn, New: order("7", "eu")}})
		var pair [2]*string
		if err := json.Unmarshal([]byte(seq), &pair); err != nil || pair[0] == nil || pair[1] == nil {
			t.Fatalf("sequence %q: %v", seq, err)
		}
		if got != lsn || *pair[0] != "23803392" || *pair[1] != jsonUint(lsn) || got <= last {
			t.Errorf("change %d: lsn %d, sequence %s; want lsn %d, sequence [\"23803392\",\"%d\"]", i, got, seq, lsn, lsn)
		}
		last = got
		seqs = append(seqs, seq)
	}
	if seqs[0] == seqs[1] {
		t.Errorf("two events of a transaction have the same sequence %s (DBZ-3801)", seqs[0])
	}
	msgTx := &wire.Tx{CommitLSN: 0x16B3800, EndLSN: 0x16B3800, Final: true, PrevCommitLSN: 0x16B3778}
	if lsn, seq := source(Event{Tx: msgTx, Change: &wire.Change{Op: wire.OpMessage, LSN: 0x16B3800, Prefix: "p"}}); lsn != 0x16B3800 || seq != `["23803904","23803904"]` {
		t.Errorf("non-transactional message: lsn %d, sequence %s", lsn, seq)
	}
	first := *txV3
	first.PrevCommitLSN = 0
	if _, seq := source(Event{Tx: &first, Rel: orders, Change: &wire.Change{Op: wire.OpInsert, LSN: 0x16B36A0, New: order("7", "eu")}}); seq != `[null,"23803552"]` {
		t.Errorf("first transaction of a source: sequence %s", seq)
	}
	if lsn, seq := source(Event{Tx: tx, Rel: users, Change: &wire.Change{Op: wire.OpInsert, New: user("1")}}); lsn != tx.CommitLSN || seq != `["23803720","23803720"]` {
		t.Errorf("version-2 record: lsn %d, sequence %s", lsn, seq)
	}
}

func jsonUint(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// With what the catalog says, Debezium's key is the table's primary key
// in its own order, whatever the replica identity
// (PgOutputMessageDecoder.handleRelationMessage: readPrimaryKeyNames;
// RecordsStreamProducerIT.shouldReceiveChangesForDefaultValues, a REPLICA
// IDENTITY FULL table keyed by its pk), none for a table without one
// (shouldReceiveChangesForTableWithoutPrimaryKey: FULL, no key), and an
// update that changes it under FULL is a delete and a create
// (RelationalChangeRecordEmitter.emitUpdateRecord: oldKey != newKey).
func TestDebeziumKeyFromCatalog(t *testing.T) {
	r := newTestDebezium(t, nil)
	key := func(ev Event) string {
		t.Helper()
		ev.Source, ev.Tx = source, txV3
		if _, err := r.Append(nil, &ev); err != nil {
			t.Fatal(err)
		}
		return HeaderOf(r, &ev).Get(DefaultKeyHeader)
	}
	if k := key(Event{Rel: orders, Change: &wire.Change{Op: wire.OpInsert, LSN: 1, New: order("7", "eu")}}); k != `{"region":"eu","id":7}` {
		t.Errorf("orders key %s, want the primary key in its order", k)
	}
	full := Event{Rel: ledger, Change: &wire.Change{Op: wire.OpUpdate, LSN: 1, OldKind: wire.OldFull,
		Old: []wire.Value{t_("1"), t_("a")}, New: []wire.Value{t_("1"), t_("b")}}}
	if k := key(full); k != `{"id":1}` {
		t.Errorf("ledger (FULL) key %s, want its primary key", k)
	}
	if parts := Split(r, &full, nil); len(parts) != 0 {
		t.Errorf("an update keeping the primary key under FULL split in %d", len(parts))
	}
	full.Change.New = []wire.Value{t_("2"), t_("a")}
	parts := Split(r, &full, nil)
	if len(parts) != 2 || parts[0].Change.Op != wire.OpDelete || parts[1].Change.Op != wire.OpInsert {
		t.Fatalf("a primary key change under FULL: %+v", parts)
	}
	if k := key(parts[0]); k != `{"id":1}` || HeaderOf(r, &parts[0]).Get(pkUpdateNewKeyHeader) != `{"id":2}` {
		t.Errorf("delete half: key %s, headers %v", k, HeaderOf(r, &parts[0]))
	}
	if k := key(parts[1]); k != `{"id":2}` || HeaderOf(r, &parts[1]).Get(pkUpdateOldKeyHeader) != `{"id":1}` {
		t.Errorf("create half: key %s, headers %v", k, HeaderOf(r, &parts[1]))
	}
	noKey := Event{Rel: logs, Change: &wire.Change{Op: wire.OpUpdate, LSN: 1, OldKind: wire.OldFull,
		Old: []wire.Value{t_("2026-01-01 00:00:00"), t_("x")}, New: []wire.Value{t_("2026-01-01 00:00:01"), t_("y")}}}
	if k := key(noKey); k != "" {
		t.Errorf("a FULL table without a primary key has key %s, want none", k)
	}
	if parts := Split(r, &noKey, nil); len(parts) != 0 {
		t.Errorf("an update of a table without a key split in %d", len(parts))
	}
	// With schema: true the key schema is the primary key's, required as
	// its columns are NOT NULL, with their defaults (PostgresSchemaIT:
	// assertKeySchema(pk, SchemaBuilder.int32().defaultValue(0))).
	rs := newTestDebezium(t, map[string]any{"schema": true})
	ev := Event{Source: source, Tx: txV3, Rel: ledger, Change: &wire.Change{Op: wire.OpInsert, LSN: 1, New: []wire.Value{t_("1"), null}}}
	if _, err := rs.Append(nil, &ev); err != nil {
		t.Fatal(err)
	}
	want := `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"default":0,"field":"id"}],"optional":false,"name":"app.public.ledger.Key"},"payload":{"id":1}}`
	if k := HeaderOf(rs, &ev).Get(DefaultKeyHeader); k != want {
		t.Errorf("key with schema\n got %s\nwant %s", k, want)
	}
	if b, _ := rs.Append(nil, &ev); !strings.Contains(string(b), `{"type":"string","optional":true,"field":"memo"}`) {
		t.Errorf("value schema of a nullable column: %s", b)
	}
}
