package wire

import (
	"runtime"
	"strconv"
	"testing"
)

// Benchmarks of the raw record encoding on the shapes the collector writes
// under the benchmark workloads (docs/benchmarks.md): a batch of many
// single-row transactions (OLTP) and one fragment of a bulk load.

// benchTable is the OLTP/bulk table: id bigint (key), k int, v text,
// payload jsonb, ts timestamptz.
var benchTable = Relation{ID: 16390, Schema: "public", Table: "bench", ReplicaIdentity: 'd', Columns: []Column{
	{Name: "id", TypeOID: 20, TypeMod: -1, Key: true},
	{Name: "k", TypeOID: 23, TypeMod: -1},
	{Name: "v", TypeOID: 25, TypeMod: -1},
	{Name: "payload", TypeOID: 3802, TypeMod: -1},
	{Name: "ts", TypeOID: 1184, TypeMod: -1},
}}

func benchRow(i int) Change {
	k := strconv.Itoa(100000 + i%900000)
	t := func(s string) Value { return Value{Kind: KindText, Data: []byte(s)} }
	return Change{Op: OpInsert, Rel: 0, New: []Value{
		t(strconv.Itoa(i + 1)),
		t(k),
		t("c4ca4238a0b923820dcc509a6f75849b"),
		t(`{"k": ` + k + `, "tag": "order-` + k + `", "note": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "items": [1, 2, 3]}`),
		t("2026-11-23 09:00:00.123456+00"),
	}}
}

var benchSource = Source{Name: "bench", SystemID: 7311234567890123456, Timeline: 1, Database: "postgres", Slot: "bench"}

// oltpBatch is a raw message of n single-row transactions.
func oltpBatch(n int) *Message {
	m := &Message{Source: benchSource, Relations: []Relation{benchTable}}
	for i := 0; i < n; i++ {
		lsn := uint64(0x1000000 + i*0x100)
		m.Txs = append(m.Txs, Tx{Xid: uint32(1000 + i), CommitLSN: lsn, EndLSN: lsn + 0x30,
			CommitTime: 1795510800000000 + int64(i), Final: true, Changes: []Change{benchRow(i)}})
	}
	return m
}

// bulkFragment is a raw message holding one fragment of n rows of a large
// transaction.
func bulkFragment(n int) *Message {
	tx := Tx{Xid: 77, CommitLSN: 0x5000000, EndLSN: 0x5000030, CommitTime: 1795510800000000, Fragment: 3, FirstChange: 30000}
	for i := 0; i < n; i++ {
		tx.Changes = append(tx.Changes, benchRow(i))
	}
	return &Message{Source: benchSource, Relations: []Relation{benchTable}, Txs: []Tx{tx}}
}

// reportPerChange adds per-change figures: allocs/op and B/op are per raw
// message, which holds many changes.
func reportPerChange(b *testing.B, before *runtime.MemStats, changes, encoded int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(changes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/change")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/change")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/change")
	b.ReportMetric(float64(encoded)/float64(changes), "wire-B/change")
}

func benchMarshal(b *testing.B, m *Message, changes int) {
	data, err := Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, changes, len(data))
}

func benchUnmarshal(b *testing.B, m *Message, changes int) {
	data, err := Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var got Message
		if err := Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, changes, len(data))
}

// 500 single-row transactions: about what one fsynced raw message holds
// when the collector keeps up with an OLTP backlog.
func BenchmarkMarshalOLTP500(b *testing.B)   { benchMarshal(b, oltpBatch(500), 500) }
func BenchmarkUnmarshalOLTP500(b *testing.B) { benchUnmarshal(b, oltpBatch(500), 500) }

// 5,000 rows of one large transaction (~1 MB encoded).
func BenchmarkMarshalBulk5000(b *testing.B)   { benchMarshal(b, bulkFragment(5000), 5000) }
func BenchmarkUnmarshalBulk5000(b *testing.B) { benchUnmarshal(b, bulkFragment(5000), 5000) }
