package pgoutput

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Benchmarks of Decoder.Handle on the pgoutput messages of the benchmark
// workloads (docs/benchmarks.md): rows of the `bench` table, as pgoutput
// protocol version 1 sends them in text format. The decoder's emit drops the
// fragments, so only decoding is measured.

// benchRelation is the Relation message of the OLTP/bulk table:
// id bigint (key), k int, v text, payload jsonb, ts timestamptz.
func benchRelation(id uint32) msg {
	cols := []struct {
		name string
		oid  uint32
		key  bool
	}{{"id", 20, true}, {"k", 23, false}, {"v", 25, false}, {"payload", 3802, false}, {"ts", 1184, false}}
	m := msg{'R'}.u32(id).str("public").str("bench").u8('d').u16(uint16(len(cols)))
	for _, c := range cols {
		flags := byte(0)
		if c.key {
			flags = 1
		}
		m = m.u8(flags).str(c.name).u32(c.oid).u32(0xFFFFFFFF)
	}
	return m
}

// benchInsert is one row as the OLTP workload writes it (~150 bytes of values).
func benchInsert(rel uint32, i int) msg {
	k := strconv.Itoa(100000 + i%900000)
	return insert(rel,
		strconv.Itoa(i+1),
		k,
		"c4ca4238a0b923820dcc509a6f75849b",
		`{"k": `+k+`, "tag": "order-`+k+`", "note": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "items": [1, 2, 3]}`,
		"2026-11-23 09:00:00.123456+00",
	)
}

// dropFragment releases the fragment at once, as the collector's publisher
// does when its raw message is stored.
func dropFragment(_ context.Context, f *Fragment) error {
	f.Release()
	return nil
}

// benchDecoder is a decoder configured like the collector's defaults
// (fragments of up to 2 MiB), whose fragments are released at once.
func benchDecoder() *Decoder { return New(dropFragment, nil, 2<<20) }

// reportPerChange turns the totals of a benchmark into per-change figures.
// allocs/op and B/op stay per op; these metrics divide by the changes an op
// handles, so that benchmarks with different op sizes compare directly.
func reportPerChange(b *testing.B, before *runtime.MemStats, changes int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(changes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/change")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/change")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/change")
}

// BenchmarkHandleOLTP: one op is a single-row transaction, Begin + Insert +
// Commit, with the relation already known (steady state).
func BenchmarkHandleOLTP(b *testing.B) {
	ctx := context.Background()
	d := benchDecoder()
	if err := d.Handle(ctx, 0, benchRelation(16390)); err != nil {
		b.Fatal(err)
	}
	// A ring of distinct rows, built before the clock starts.
	const ring = 1024
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	type tx struct{ begin, insert, commit msg }
	txs := make([]tx, ring)
	for i := range txs {
		lsn := uint64(0x1000000 + i*0x100)
		txs[i] = tx{begin(lsn, uint32(1000+i), at), benchInsert(16390, i), commit(lsn, lsn+0x30)}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := &txs[i%ring]
		if err := d.Handle(ctx, 0, t.begin); err != nil {
			b.Fatal(err)
		}
		if err := d.Handle(ctx, 0, t.insert); err != nil {
			b.Fatal(err)
		}
		if err := d.Handle(ctx, 0, t.commit); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, 1)
}

// BenchmarkHandleBulk: one op is one Insert inside a transaction that never
// ends (a bulk load), cut into fragments of up to 2 MiB as the collector does.
func BenchmarkHandleBulk(b *testing.B) {
	ctx := context.Background()
	d := benchDecoder()
	if err := d.Handle(ctx, 0, benchRelation(16390)); err != nil {
		b.Fatal(err)
	}
	if err := d.Handle(ctx, 0, begin(0x5000000, 77, time.Now())); err != nil {
		b.Fatal(err)
	}
	const ring = 1024
	rows := make([]msg, ring)
	for i := range rows {
		rows[i] = benchInsert(16390, i)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Handle(ctx, 0, rows[i%ring]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, 1)
}

// BenchmarkHandleUpdateToast: one op is a single-row transaction updating a
// row whose large column is an unchanged TOAST value ('u'), workload (d).
func BenchmarkHandleUpdateToast(b *testing.B) {
	ctx := context.Background()
	d := benchDecoder()
	if err := d.Handle(ctx, 0, relation(16400, "public", "toasty", "id", "counter", "note", "big")); err != nil {
		b.Fatal(err)
	}
	const ring = 1024
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	type tx struct{ begin, update, commit msg }
	txs := make([]tx, ring)
	for i := range txs {
		lsn := uint64(0x1000000 + i*0x100)
		txs[i] = tx{begin(lsn, uint32(1000+i), at), update(16400, nil, strconv.Itoa(i+1), strconv.Itoa(i), "n", "<toast>"), commit(lsn, lsn+0x30)}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := &txs[i%ring]
		for _, m := range []msg{t.begin, t.update, t.commit} {
			if err := d.Handle(ctx, 0, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, 1)
}
