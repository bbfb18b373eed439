package envelope

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pgjet/pgjet/router/internal/slab"
	"github.com/pgjet/pgjet/router/internal/value"
	"github.com/pgjet/pgjet/shared/wire"
)

// DebeziumVersion is the Debezium release whose PostgreSQL connector's
// event format the debezium envelope follows; source.version says it.
const DebeziumVersion = "3.6.1.Final"

// DefaultKeyHeader carries the Debezium key: NATS messages have no key.
const DefaultKeyHeader = "Pgjet-Key"

// debeziumSettings are the keys of a route's debezium envelope: Debezium's
// own connector settings with '_' for '.', and what NATS needs.
type debeziumSettings struct {
	DecimalHandlingMode         string  `json:"decimal_handling_mode"`
	TimePrecisionMode           string  `json:"time_precision_mode"`
	BinaryHandlingMode          string  `json:"binary_handling_mode"`
	IntervalHandlingMode        string  `json:"interval_handling_mode"`
	HStoreHandlingMode          string  `json:"hstore_handling_mode"`
	MoneyFractionDigits         *int    `json:"money_fraction_digits"`
	UnavailableValuePlaceholder *string `json:"unavailable_value_placeholder"`
	Schema                      bool    `json:"schema"`
	KeyHeader                   *string `json:"key_header"`
	// TombstonesOnDelete follows each delete with a tombstone: an empty
	// message with the delete's key, for consumers that compact by key.
	// Debezium's default is true (for Kafka's log compaction); NATS has
	// none, so pgjet's is false.
	TombstonesOnDelete bool `json:"tombstones_on_delete"`
}

// Debezium renders the value of a Debezium PostgreSQL connector change
// event, as its JSON converter writes it (payload only, or with the schema
// when configured), and the event's key as a header. See docs/debezium.md
// for what differs from Debezium.
//
// Everything comes from the event alone, so replays render identical
// bytes: ts_ms is the commit time (Debezium's is the time it processed
// the change), and both total_order and data_collection_order are the
// change's position in its transaction plus one (a per-table count would
// need the transaction's earlier changes, which a replay starting
// mid-transaction does not have; it still grows within each table).
//
// It is not safe for concurrent use.
type Debezium struct {
	enc       *value.Debezium
	schema    bool
	keyHeader string
	// tombstones: a delete is followed by a tombstone.
	tombstones bool
	// txBlock: change events carry their transaction block (the route
	// publishes transaction metadata events).
	txBlock bool

	// The key Append rendered last, for Header; keyFor says for what.
	key       []byte
	hasKey    bool
	keyChange *wire.Change
	keyRel    *wire.Relation
	// The other key of a key change's delete (the new key) or create (the
	// old key), for Debezium's __debezium.newkey and __debezium.oldkey
	// headers; otherKeyHeader names it, "" for none.
	otherKey       []byte
	otherKeyHeader string

	// after is an update's new row with unchanged TOAST values taken from
	// its old row (REPLICA IDENTITY FULL), reused.
	after []wire.Value

	// The key columns of keysOf's last relation, in key order.
	keysOf   *wire.Relation
	keyIndex []int

	// Schemas of the last relation rendered: every event of a table in a
	// raw record shares its Relation.
	schemaRel    *wire.Relation
	schemaSource string
	valueSchema  []byte
	keySchema    []byte

	// The commit time last rendered, as "ts_ms":.. and "ts_us":..,"ts_ns":..
	lastTime int64
	tsMs     []byte
	tsUsNs   []byte

	src dbzSource

	// The key headers' values, carved from slabs: a message holds them
	// until it is published, and no allocation each.
	strs slab.Strings
	vals slab.Values
}

// newDebezium is the registry's factory.
func newDebezium(o Options) (Renderer, error) {
	var s debeziumSettings
	if err := decodeSettings(o.Settings, &s); err != nil {
		return nil, err
	}
	vo := value.DebeziumOptions{
		Decimal:             or(s.DecimalHandlingMode, value.DecimalPrecise),
		Time:                or(s.TimePrecisionMode, value.TimeAdaptive),
		Binary:              or(s.BinaryHandlingMode, value.BinaryBytes),
		Interval:            or(s.IntervalHandlingMode, value.IntervalNumeric),
		HStore:              or(s.HStoreHandlingMode, value.HStoreJSON),
		MoneyFractionDigits: 2,
		Placeholder:         value.DefaultPlaceholder,
	}
	if s.MoneyFractionDigits != nil {
		vo.MoneyFractionDigits = *s.MoneyFractionDigits
	}
	if s.UnavailableValuePlaceholder != nil {
		vo.Placeholder = *s.UnavailableValuePlaceholder
	}
	if key, err := vo.Check(); err != nil {
		return nil, &OptionError{Key: key, Err: err}
	}
	keyHeader := DefaultKeyHeader
	if s.KeyHeader != nil {
		keyHeader = *s.KeyHeader
		if !validHeaderName(keyHeader) {
			return nil, &OptionError{Key: "key_header", Err: fmt.Errorf("%q: use a header name of letters, digits and -_.", keyHeader)}
		}
	}
	newJSON := func() (Renderer, error) {
		d, err := NewDebezium(vo, s.Schema, keyHeader)
		if d != nil {
			d.tombstones = s.TombstonesOnDelete
			d.txBlock = o.Transactions
		}
		return d, err
	}
	r, err := newJSON()
	if err != nil {
		return nil, err
	}
	return withEncoding(o, r, newJSON)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validHeaderName accepts a conservative subset of NATS header names,
// which must not collide with the headers the relay sets.
func validHeaderName(s string) bool {
	for _, taken := range []string{"Nats-Msg-Id", "Nats-Expected-Stream", "Content-Type"} {
		if strings.EqualFold(s, taken) {
			return false
		}
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewDebezium returns a Debezium renderer; with schema, bodies and keys
// are the JSON converter's {"schema":...,"payload":...}.
func NewDebezium(o value.DebeziumOptions, schema bool, keyHeader string) (*Debezium, error) {
	enc, err := value.NewDebezium(o)
	if err != nil {
		return nil, err
	}
	if keyHeader == "" {
		keyHeader = DefaultKeyHeader
	}
	return &Debezium{enc: enc, schema: schema, keyHeader: keyHeader, lastTime: -1 << 63}, nil
}

// Append appends the event's value; on error b comes back unchanged.
func (d *Debezium) Append(b []byte, e *Event) ([]byte, error) {
	out, err := d.append(b, e)
	if err != nil {
		d.keyChange, d.keyRel = nil, nil
		return b, err
	}
	return out, nil
}

// AddHeader adds the key header (absent for a null key: a table without
// replica identity, a truncate) to h. No Content-Type: as for native JSON,
// its absence means JSON (Debezium Server's NATS sink sends none either),
// and it cost the server and the client a header on every event.
func (d *Debezium) AddHeader(h Header, e *Event) int {
	n := 0
	if e.Kind != KindChange || d.keyChange != e.Change || d.keyRel != e.Rel {
		// Not the event Append rendered last: render its key now.
		if _, err := d.append(nil, e); err != nil {
			return n
		}
	}
	if d.hasKey {
		n += h.put(d.keyHeader, d.vals.Of(d.strs.Of(d.key)))
	}
	if d.otherKeyHeader != "" {
		n += h.put(d.otherKeyHeader, d.vals.Of(d.strs.Of(d.otherKey)))
	}
	return n
}

// Document appends the body: it holds everything but the key.
func (d *Debezium) Document(b []byte, _ *Event, body []byte) []byte {
	return append(b, body...)
}

func (d *Debezium) append(b []byte, e *Event) ([]byte, error) {
	if e.Kind != KindChange {
		return d.appendTxMeta(b, e)
	}
	if err := checkEvent(e); err != nil {
		return b, err
	}
	d.keyChange, d.keyRel, d.hasKey, d.otherKeyHeader = e.Change, e.Rel, false, ""
	d.times(e.Tx.CommitTime)
	if e.Change.Op == wire.OpMessage {
		return d.appendMessage(b, e), nil
	}
	if d.schema {
		d.schemas(e)
		b = append(b, `{"schema":`...)
		b = append(b, d.valueSchema...)
		b = append(b, `,"payload":`...)
	}
	var err error
	if b, err = d.appendRow(b, e); err != nil {
		return b, err
	}
	if d.schema {
		b = append(b, '}')
	}
	return b, nil
}

// times keeps ts_ms, ts_us and ts_ns of the commit time t (microseconds),
// shared by source and envelope and by every change of a transaction.
func (d *Debezium) times(t int64) {
	if d.lastTime == t && d.tsMs != nil {
		return
	}
	d.lastTime = t
	d.tsMs = strconv.AppendInt(append(d.tsMs[:0], `"ts_ms":`...), floorDivInt(t, 1000), 10)
	b := append(d.tsUsNs[:0], `"ts_us":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"ts_ns":`...)
	d.tsUsNs = strconv.AppendInt(b, t*1000, 10)
}

func floorDivInt(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func opCode(op wire.Op) byte {
	switch op {
	case wire.OpInsert:
		return 'c'
	case wire.OpUpdate:
		return 'u'
	case wire.OpDelete:
		return 'd'
	case wire.OpTruncate:
		return 't'
	case wire.OpRead:
		return 'r'
	}
	return 'm'
}

func (d *Debezium) appendRow(b []byte, e *Event) ([]byte, error) {
	c, rel := e.Change, e.Rel
	var keyFrom, before, after []wire.Value
	var keysOnly bool
	switch c.Op {
	case wire.OpInsert, wire.OpRead:
		keyFrom, after = c.New, c.New
	case wire.OpUpdate:
		after = d.withOldToast(c)
		keyFrom, before = after, c.Old
	case wire.OpDelete:
		keyFrom, before = c.Old, c.Old
	}
	if len(before) > 0 {
		switch c.OldKind {
		case wire.OldFull:
		case wire.OldKey:
			// Non-key columns are placeholders, NULL as Debezium has them.
			keysOnly = true
		default:
			return b, fmt.Errorf("render %s on %s.%s: old tuple of unknown kind %q", c.Op, rel.Schema, rel.Table, c.OldKind)
		}
	} else {
		before = nil
	}
	var err error
	b = append(b, `{"before":`...)
	if b, err = d.appendTuple(b, rel, before, keysOnly); err != nil {
		return b, err
	}
	b = append(b, `,"after":`...)
	if b, err = d.appendTuple(b, rel, after, false); err != nil {
		return b, err
	}
	b = append(b, `,"source":`...)
	b = d.appendSource(b, e, true)
	b = append(b, `,"transaction":`...)
	b = d.appendTransaction(b, e)
	b = append(b, `,"op":"`...)
	b = append(b, opCode(c.Op))
	b = append(b, `",`...)
	b = append(b, d.tsMs...)
	b = append(b, ',')
	b = append(b, d.tsUsNs...)
	b = append(b, '}')
	if keyFrom != nil && c.Op != wire.OpTruncate {
		if d.key, d.hasKey, err = d.appendKey(d.key[:0], rel, keyFrom); err != nil {
			return b, err
		}
		// One half of a key change (Split) names the other half's key.
		switch {
		case c.Op == wire.OpDelete && c.New != nil:
			d.otherKey, _, err = d.appendKey(d.otherKey[:0], rel, c.New)
			d.otherKeyHeader = pkUpdateNewKeyHeader
		case c.Op == wire.OpInsert && c.Old != nil:
			d.otherKey, _, err = d.appendKey(d.otherKey[:0], rel, c.Old)
			d.otherKeyHeader = pkUpdateOldKeyHeader
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// withOldToast returns the new row of the update c. Under REPLICA
// IDENTITY FULL the old row is whole, so a TOASTed value the update left
// unchanged, which Postgres does not send again, is known: Debezium puts
// it in after too (PostgresChangeRecordEmitter.columnValues takes it from
// the old values it cached), and so does this.
func (d *Debezium) withOldToast(c *wire.Change) []wire.Value {
	if c.OldKind != wire.OldFull || len(c.Old) != len(c.New) {
		return c.New
	}
	merged := false
	for i := range c.New {
		if c.New[i].Kind != wire.KindUnchanged {
			continue
		}
		if old := c.Old[i]; old.Kind == wire.KindText || old.Kind == wire.KindBinary {
			if !merged {
				d.after = append(d.after[:0], c.New...)
				merged = true
			}
			d.after[i] = old
		}
	}
	if !merged {
		return c.New
	}
	return d.after
}

// Debezium's headers on the two events of a key change: the delete names
// the new key, the create the old one (RelationalChangeRecordEmitter's
// PK_UPDATE_NEWKEY_FIELD and PK_UPDATE_OLDKEY_FIELD).
const (
	pkUpdateNewKeyHeader = "__debezium.newkey"
	pkUpdateOldKeyHeader = "__debezium.oldkey"
)

// Split publishes an update that changes the row's key as Debezium does
// (RelationalChangeRecordEmitter.emitUpdateAsPrimaryKeyChangeRecord): a
// delete of the old row under the old key, then a create of the new row
// under the new key; a tombstone follows the delete with
// tombstones_on_delete. Each half keeps the other tuple, for the other
// key's header. A key change is told apart where the old row holds the
// key: whole (REPLICA IDENTITY FULL, whose key is the primary key when the
// raw record carries it), or the key columns of the replica identity.
func (d *Debezium) Split(e *Event, dst []Event) []Event {
	c, rel := e.Change, e.Rel
	if e.Kind != KindChange || c == nil || c.Op != wire.OpUpdate || rel == nil {
		return dst
	}
	keys := d.keyColumns(rel)
	switch {
	case len(keys) == 0:
		return dst
	case c.OldKind == wire.OldFull:
		if !rel.Catalog {
			return dst // its key is every column: no key change to tell
		}
	case c.OldKind == wire.OldKey:
		for _, i := range keys {
			if !rel.Columns[i].Key {
				return dst // not sent: the old row does not say
			}
		}
	default:
		return dst
	}
	if !keyChanged(keys, c.Old, c.New, len(rel.Columns)) {
		return dst
	}
	del, ins := *e, *e
	del.Change = &wire.Change{Op: wire.OpDelete, Rel: c.Rel, OldKind: c.OldKind, Old: c.Old, New: c.New, LSN: c.LSN}
	ins.Change = &wire.Change{Op: wire.OpInsert, Rel: c.Rel, OldKind: c.OldKind, Old: c.Old, New: c.New, LSN: c.LSN}
	return append(dst, del, ins)
}

// keyChanged reports whether the key columns of old and new differ, as
// Postgres sent them. Postgres sends an update's old key when the key
// changed, but also when the key holds a value stored out of line.
func keyChanged(keys []int, old, new []wire.Value, columns int) bool {
	if len(old) != columns || len(new) != columns {
		return false
	}
	for _, i := range keys {
		o, n := old[i], new[i]
		if n.Kind == wire.KindUnchanged {
			continue // the same value, not sent again
		}
		if o.Kind != n.Kind || string(o.Data) != string(n.Data) {
			return true
		}
	}
	return false
}

// keyColumns returns the indexes of the columns of Debezium's key for rel,
// in key order: the primary key in its own order, or for a table without
// one its first unique index (PgOutputMessageDecoder: readPrimaryKeyNames,
// else readTableUniqueIndices), where the raw record says what the catalog
// holds; else, for records that do not (version 2), the replica identity.
func (d *Debezium) keyColumns(rel *wire.Relation) []int {
	if rel == d.keysOf {
		return d.keyIndex
	}
	d.keysOf, d.keyIndex = rel, d.keyIndex[:0]
	if !rel.Catalog {
		for i := range rel.Columns {
			if rel.Columns[i].Key {
				d.keyIndex = append(d.keyIndex, i)
			}
		}
		return d.keyIndex
	}
	for i := range rel.Columns {
		if rel.Columns[i].PrimaryKey > 0 {
			d.keyIndex = append(d.keyIndex, i)
		}
	}
	slices.SortStableFunc(d.keyIndex, func(a, b int) int {
		return int(rel.Columns[a].PrimaryKey) - int(rel.Columns[b].PrimaryKey)
	})
	return d.keyIndex
}

// appendTuple renders tuple as Debezium's Value struct: every column,
// unchanged TOAST as the placeholder; keysOnly, for an old row holding the
// replica identity alone, renders the others as the NULLs Postgres sent
// (a NOT NULL column's default or fallback, as Debezium has them).
func (d *Debezium) appendTuple(b []byte, rel *wire.Relation, tuple []wire.Value, keysOnly bool) ([]byte, error) {
	if tuple == nil {
		return append(b, "null"...), nil
	}
	if len(tuple) != len(rel.Columns) {
		return b, fmt.Errorf("render %s.%s: tuple has %d values, relation has %d columns", rel.Schema, rel.Table, len(tuple), len(rel.Columns))
	}
	b = append(b, '{')
	for i := range tuple {
		col := &rel.Columns[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = value.AppendString(b, col.Name)
		b = append(b, ':')
		v := tuple[i]
		if keysOnly && !col.Key {
			v = wire.Value{Kind: wire.KindNull}
		}
		var err error
		if b, err = d.enc.AppendValue(b, col, v); err != nil {
			return b, fmt.Errorf("decode %s.%s.%s: %w", rel.Schema, rel.Table, col.Name, err)
		}
	}
	return append(b, '}'), nil
}

// appendKey appends the key columns of tuple (keyColumns) as Debezium's
// key struct (with its schema when configured), and whether rel has any:
// a relation without them has a null key.
func (d *Debezium) appendKey(k []byte, rel *wire.Relation, tuple []wire.Value) ([]byte, bool, error) {
	keys := d.keyColumns(rel)
	if d.schema {
		k = append(k, `{"schema":`...)
		k = append(k, d.keySchema...)
		k = append(k, `,"payload":`...)
	}
	k = append(k, '{')
	for n, i := range keys {
		col := &rel.Columns[i]
		if n > 0 {
			k = append(k, ',')
		}
		k = value.AppendString(k, col.Name)
		k = append(k, ':')
		var err error
		if k, err = d.enc.AppendValue(k, col, tuple[i]); err != nil {
			return k, false, fmt.Errorf("decode key %s.%s.%s: %w", rel.Schema, rel.Table, col.Name, err)
		}
	}
	k = append(k, '}')
	if d.schema {
		k = append(k, '}')
	}
	return k, len(keys) > 0, nil
}

// sourceLSNs are the change's source.lsn and the first element of its
// source.sequence, as Debezium's SourceInfo has them: the position of the
// change's own message, and where its transaction follows (the end of the
// commit before it; for a non-transactional message, its own position,
// which Debezium commits before it emits it), 0 when unknown (null).
// Records of format version 2 carry neither: both are the commit LSN. A
// snapshot read is at the position pgjet placed its rows (the slot's
// consistent point, or a backfill chunk's high watermark, next to it), and
// has a null last commit as Debezium's snapshot records do, even where the
// raw record names the commit a backfill chunk follows (Tx.PrevCommitLSN,
// kept for the changes after it).
func sourceLSNs(e *Event) (lsn, lastCommit uint64) {
	c := e.Change
	if c.Op == wire.OpRead {
		return e.Tx.CommitLSN, 0
	}
	if c.LSN == 0 {
		return e.Tx.CommitLSN, e.Tx.CommitLSN
	}
	if c.Op == wire.OpMessage && !c.Transactional {
		return c.LSN, c.LSN
	}
	return c.LSN, e.Tx.PrevCommitLSN
}

// dbzSource holds the parts of the source block that repeat from event to
// event, rendered when what they show changes: the source's name and
// database, the last few tables, the transaction's xid and last commit.
// The strings it compares with are those of the events it rendered: they
// point into their raw records, which stay in memory until other records'
// events take their place (a few records at most, as the last relation's
// schemas keep one).
type dbzSource struct {
	name, dbName string
	// head is {"version":...,"name":<name>, and db ","db":<db>,"sequence":"[
	head, db []byte
	// rels are ,"schema":<schema>,"table":<table> of the last few tables:
	// their events interleave.
	rels     [4]dbzRel
	relNext  int
	xid      uint32
	xidText  []byte // "" while unset
	last     uint64
	lastText []byte
}

func (s *dbzSource) source(src *wire.Source) {
	if s.head != nil && src.Name == s.name && src.Database == s.dbName {
		return
	}
	s.name, s.dbName = src.Name, src.Database
	s.head = append(s.head[:0], `{"version":"`+DebeziumVersion+`","connector":"postgresql","name":`...)
	s.head = append(value.AppendString(s.head, src.Name), ',')
	s.db = value.AppendString(append(s.db[:0], `","db":`...), src.Database)
	s.db = append(s.db, `,"sequence":"[`...)
}

type dbzRel struct {
	schema, table string
	json          []byte
}

func (s *dbzSource) relation(rel *wire.Relation) []byte {
	for i := range s.rels {
		if r := &s.rels[i]; r.json != nil && r.schema == rel.Schema && r.table == rel.Table {
			return r.json
		}
	}
	r := &s.rels[s.relNext]
	s.relNext = (s.relNext + 1) % len(s.rels)
	r.schema, r.table = rel.Schema, rel.Table
	r.json = value.AppendString(append(r.json[:0], `,"schema":`...), rel.Schema)
	r.json = value.AppendString(append(r.json, `,"table":`...), rel.Table)
	return r.json
}

func (d *Debezium) appendSource(b []byte, e *Event, table bool) []byte {
	lsn, lastCommit := sourceLSNs(e) // Debezium's Lsn.asLong
	s := &d.src
	s.source(e.Source)
	b = append(b, s.head...)
	b = append(b, d.tsMs...)
	b = append(b, `,"snapshot":"`...)
	b = append(b, snapshotField(e)...)
	b = append(b, s.db...)
	if lastCommit == 0 {
		b = append(b, "null"...)
	} else {
		if s.lastText == nil || s.last != lastCommit {
			s.last, s.lastText = lastCommit, strconv.AppendInt(s.lastText[:0], int64(lastCommit), 10)
		}
		b = append(b, `\"`...)
		b = append(b, s.lastText...)
		b = append(b, `\"`...)
	}
	b = append(b, `,\"`...)
	at := len(b)
	b = strconv.AppendInt(b, int64(lsn), 10)
	lsnText := b[at:len(b):len(b)] // appended again below, from whichever array holds it
	b = append(b, `\"]",`...)
	b = append(b, d.tsUsNs...)
	if table {
		b = append(b, s.relation(e.Rel)...)
	} else {
		b = append(b, `,"schema":"","table":""`...)
	}
	b = append(b, `,"txId":`...)
	read := e.Change.Op == wire.OpRead && e.Tx.Snapshot != nil
	incremental := read && e.Tx.Snapshot.Kind != wire.SnapshotInitial
	switch {
	case read && e.Tx.Snapshot.Xid != 0 && !incremental:
		// The reading transaction's id with its epoch, as Debezium's
		// (pg_current_xact_id).
		b = strconv.AppendUint(b, e.Tx.Snapshot.Xid, 10)
	case d.hasTx(e):
		if s.xidText == nil || s.xid != e.Tx.Xid {
			s.xid, s.xidText = e.Tx.Xid, strconv.AppendUint(s.xidText[:0], uint64(e.Tx.Xid), 10)
		}
		b = append(b, s.xidText...)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"lsn":`...)
	if incremental {
		// Debezium leaves txId, lsn and xmin out of an incremental
		// snapshot's records (PostgresSourceInfoStructMaker); the
		// position stays in sequence.
		b = append(b, "null"...)
	} else {
		b = append(b, lsnText...)
	}
	b = append(b, `,"xmin":null,"origin":`...)
	if e.Tx.Origin != "" {
		b = value.AppendString(b, e.Tx.Origin)
	} else {
		b = append(b, "null"...)
	}
	return append(b, `,"origin_lsn":null}`...)
}

// hasTx: non-transactional logical decoding messages belong to no
// transaction, and Debezium gives them neither txId nor transaction; nor
// does it a transaction to snapshot reads, which no transaction wrote
// (an initial snapshot's reads have the txId of the transaction that read
// them: appendSource).
func (d *Debezium) hasTx(e *Event) bool {
	switch e.Change.Op {
	case wire.OpMessage:
		return e.Change.Transactional
	case wire.OpRead:
		return false
	}
	return true
}

// snapshotField is source.snapshot as Debezium writes it: "false" for a
// change, "incremental" for a backfill's read, and for an initial
// snapshot's read "first" or "last" for the snapshot's first and last row,
// "first_in_data_collection" and "last_in_data_collection" for a table's,
// "true" otherwise (last before first, a table's after the snapshot's, as
// Debezium ranks them).
func snapshotField(e *Event) string {
	s := e.Tx.Snapshot
	if e.Change.Op != wire.OpRead || s == nil {
		return "false"
	}
	if s.Kind != wire.SnapshotInitial {
		return "incremental"
	}
	first := e.Index == e.Tx.FirstChange
	last := e.Index == e.Tx.FirstChange+uint64(len(e.Tx.Changes))-1
	switch {
	case last && s.Marks&wire.SnapshotLast != 0:
		return "last"
	case first && s.Marks&wire.SnapshotFirst != 0:
		return "first"
	case last && s.Marks&wire.SnapshotLastInTable != 0:
		return "last_in_data_collection"
	case first && s.Marks&wire.SnapshotFirstInTable != 0:
		return "first_in_data_collection"
	}
	return "true"
}

// appendTransaction renders the transaction block: null unless the route
// publishes transaction metadata (Debezium's TransactionMonitor fills it
// only with provide.transaction.metadata).
func (d *Debezium) appendTransaction(b []byte, e *Event) []byte {
	if !d.txBlock || !d.hasTx(e) {
		return append(b, "null"...)
	}
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, uint64(e.Tx.Xid), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(e.Tx.CommitLSN), 10)
	b = append(b, `","total_order":`...)
	b = strconv.AppendUint(b, e.Index+1, 10)
	b = append(b, `,"data_collection_order":`...)
	b = strconv.AppendUint(b, e.Index+1, 10)
	return append(b, '}')
}

// appendMessage renders a logical decoding message as Debezium's
// MessageValue; its key is {"prefix": ...}.
func (d *Debezium) appendMessage(b []byte, e *Event) []byte {
	c := e.Change
	if d.schema {
		b = append(b, `{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},`...)
		b = appendSourceSchema(b)
		b = append(b, ',')
		b = append(b, transactionSchema...)
		b = append(b, `,{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"},`...)
		b = d.enc.AppendBytesSchema(b, true)
		b = append(b, `,"field":"content"}],"optional":false,"name":"io.debezium.connector.postgresql.Message","version":1,"field":"message"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageValue","version":1},"payload":`...)
	}
	b = append(b, `{"op":"m",`...)
	b = append(b, d.tsMs...)
	b = append(b, `,"source":`...)
	b = d.appendSource(b, e, false)
	b = append(b, `,"transaction":`...)
	b = d.appendTransaction(b, e)
	b = append(b, `,"message":{"prefix":`...)
	b = value.AppendString(b, c.Prefix)
	b = append(b, `,"content":`...)
	b = d.enc.AppendBytes(b, c.Content)
	b = append(b, "}}"...)
	if d.schema {
		b = append(b, '}')
	}

	k := d.key[:0]
	if d.schema {
		k = append(k, `{"schema":{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageKey","version":1},"payload":`...)
	}
	k = append(k, `{"prefix":`...)
	k = value.AppendString(k, c.Prefix)
	k = append(k, '}')
	if d.schema {
		k = append(k, '}')
	}
	d.key, d.hasKey = k, true
	return b
}

const transactionSchema = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}`

func appendSourceSchema(b []byte) []byte {
	return append(b, `{"type":"struct","fields":[`+
		`{"type":"string","optional":false,"field":"version"},`+
		`{"type":"string","optional":false,"field":"connector"},`+
		`{"type":"string","optional":false,"field":"name"},`+
		`{"type":"int64","optional":false,"field":"ts_ms"},`+
		`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},`+
		`{"type":"string","optional":false,"field":"db"},`+
		`{"type":"string","optional":true,"field":"sequence"},`+
		`{"type":"int64","optional":true,"field":"ts_us"},`+
		`{"type":"int64","optional":true,"field":"ts_ns"},`+
		`{"type":"string","optional":false,"field":"schema"},`+
		`{"type":"string","optional":false,"field":"table"},`+
		`{"type":"int64","optional":true,"field":"txId"},`+
		`{"type":"int64","optional":true,"field":"lsn"},`+
		`{"type":"int64","optional":true,"field":"xmin"},`+
		`{"type":"string","optional":true,"field":"origin"},`+
		`{"type":"int64","optional":true,"field":"origin_lsn"}`+
		`],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"}`...)
}

// schemas renders the envelope and key schemas of e's relation, unless
// they are the last ones rendered.
func (d *Debezium) schemas(e *Event) {
	rel := e.Rel
	if rel == d.schemaRel && e.Source.Name == d.schemaSource {
		return
	}
	d.schemaRel, d.schemaSource = rel, e.Source.Name
	// Debezium's topic prefix is the logical server name: here the source.
	prefix := make([]byte, 0, 64)
	prefix = append(prefix, e.Source.Name...)
	prefix = append(prefix, '.')
	prefix = append(prefix, rel.Schema...)
	prefix = append(prefix, '.')
	prefix = append(prefix, rel.Table...)

	// A field is optional when its column is nullable (TableSchemaBuilder.
	// addField: column.isOptional()), as the catalog says; for records
	// that do not carry it (version 2), every column but the replica
	// identity's key columns, NOT NULL under a primary key or an index
	// (REPLICA IDENTITY FULL flags every column, nullable or not).
	optional := func(col *wire.Column) bool {
		if rel.Catalog {
			return !col.NotNull
		}
		return !(col.Key && rel.ReplicaIdentity != 'f')
	}
	field := func(b []byte, n int, col *wire.Column) []byte {
		if n > 0 {
			b = append(b, ',')
		}
		b = d.enc.AppendSchema(b, col, optional(col))
		b = append(b, `,"field":`...)
		b = value.AppendString(b, col.Name)
		return append(b, '}')
	}
	fields := func(b []byte, keysOnly bool) []byte {
		if keysOnly {
			for n, i := range d.keyColumns(rel) {
				b = field(b, n, &rel.Columns[i])
			}
			return b
		}
		for i := range rel.Columns {
			b = field(b, i, &rel.Columns[i])
		}
		return b
	}

	v := d.valueSchema[:0]
	record := func(b []byte, field string) []byte {
		b = append(b, `{"type":"struct","fields":[`...)
		b = fields(b, false)
		b = append(b, `],"optional":true,"name":`...)
		b = value.AppendString(b, string(prefix)+".Value")
		b = append(b, `,"field":"`...)
		b = append(b, field...)
		return append(b, `"}`...)
	}
	v = append(v, `{"type":"struct","fields":[`...)
	v = record(v, "before")
	v = append(v, ',')
	v = record(v, "after")
	v = append(v, ',')
	v = appendSourceSchema(v)
	v = append(v, ',')
	v = append(v, transactionSchema...)
	v = append(v, `,{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":`...)
	v = value.AppendString(v, string(prefix)+".Envelope")
	v = append(v, `,"version":2}`...)
	d.valueSchema = v

	k := d.keySchema[:0]
	k = append(k, `{"type":"struct","fields":[`...)
	k = fields(k, true)
	k = append(k, `],"optional":false,"name":`...)
	k = value.AppendString(k, string(prefix)+".Key")
	k = append(k, '}')
	d.keySchema = k
}

// appendTxMeta renders a transaction's begin and commit events as
// Debezium's transaction metadata events (its TransactionMonitor, on the
// transaction topic): status BEGIN or END, the transaction's id as the
// changes' transaction block has it, and at the end the route's event
// count in total and per data collection (schema.table). Their key is
// {"id": ...}. Debezium has no relation events.
func (d *Debezium) appendTxMeta(b []byte, e *Event) ([]byte, error) {
	if err := checkMeta(e); err != nil {
		return b, err
	}
	if e.Kind == KindRelation {
		return b, errors.New("render relation event: the debezium envelope has none")
	}
	d.keyChange, d.keyRel, d.otherKeyHeader = nil, nil, ""
	d.times(e.Tx.CommitTime)
	id := strconv.AppendUint(nil, uint64(e.Tx.Xid), 10)
	id = append(id, ':')
	id = strconv.AppendInt(id, int64(e.Tx.CommitLSN), 10)
	k := d.key[:0]
	if d.schema {
		k = append(k, `{"schema":`...)
		k = append(k, txKeySchema...)
		k = append(k, `,"payload":`...)
	}
	k = append(k, `{"id":"`...)
	k = append(k, id...)
	k = append(k, `"}`...)
	if d.schema {
		k = append(k, '}')
	}
	d.key, d.hasKey = k, true

	if d.schema {
		b = append(b, `{"schema":`...)
		b = append(b, txValueSchema...)
		b = append(b, `,"payload":`...)
	}
	b = append(b, `{"status":"`...)
	if e.Kind == KindBegin {
		b = append(b, "BEGIN"...)
	} else {
		b = append(b, "END"...)
	}
	b = append(b, `","id":"`...)
	b = append(b, id...)
	b = append(b, `","event_count":`...)
	if e.Kind == KindBegin {
		b = append(b, `null,"data_collections":null`...)
	} else {
		b = strconv.AppendInt(b, int64(e.Count), 10)
		b = append(b, `,"data_collections":[`...)
		for i, t := range e.Tables {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"data_collection":`...)
			b = value.AppendString(b, t.Schema+"."+t.Table)
			b = append(b, `,"event_count":`...)
			b = strconv.AppendInt(b, int64(t.Count), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, ',')
	b = append(b, d.tsMs...)
	b = append(b, '}')
	if d.schema {
		b = append(b, '}')
	}
	return b, nil
}

// The Kafka Connect schemas of Debezium's transaction metadata events.
const (
	txKeySchema   = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1}`
	txValueSchema = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},` +
		`{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},` +
		`{"type":"int64","optional":false,"field":"event_count"}],"optional":false},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],` +
		`"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}`
)

// Tombstones reports whether deletes get tombstones (tombstones_on_delete).
func (d *Debezium) Tombstones() bool { return d.tombstones }

// Tombstone returns the headers of the tombstone that follows e, a delete
// Append and Header rendered last, and false when none does: the setting
// is off, or the table has no key.
func (d *Debezium) Tombstone(e *Event) (Header, bool) {
	if !d.tombstones || e.Kind != KindChange || e.Change.Op != wire.OpDelete || !d.hasKey || d.keyChange != e.Change {
		return nil, false
	}
	h := Header{d.keyHeader: {string(d.key)}}
	if d.otherKeyHeader != "" {
		// Debezium's tombstone repeats its delete's headers.
		h[d.otherKeyHeader] = []string{string(d.otherKey)}
	}
	return h, true
}
