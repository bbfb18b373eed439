package rawstream

import (
	"context"
	"encoding/binary"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/shared/wire"
)

// Benchmarks of the collector's CPU path between the replication socket and
// the NATS connection: pgoutput decode, Assemble, wire.Marshal. Network and
// fsync are left out, so these bound what one core can do. Profile the whole
// path with
//
//	go test -run '^$' -bench CollectorPath -cpuprofile cpu.prof ./internal/rawstream/
//	go tool pprof -top cpu.prof

var benchSrc = wire.Source{Name: "bench", SystemID: 7311234567890123456, Timeline: 1, Database: "postgres", Slot: "bench"}

// pgoutput protocol version 1 messages, big endian, strings NUL-terminated.
func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func cstr(b []byte, s string) []byte { return append(append(b, s...), 0) }

// relationMsg announces the OLTP/bulk table of the benchmark:
// id bigint (key), k int, v text, payload jsonb, ts timestamptz.
func relationMsg() []byte {
	b := be32([]byte{'R'}, 16390)
	b = cstr(cstr(b, "public"), "bench")
	b = append(b, 'd')
	b = be16(b, 5)
	for i, c := range []struct {
		name string
		oid  uint32
	}{{"id", 20}, {"k", 23}, {"v", 25}, {"payload", 3802}, {"ts", 1184}} {
		flags := byte(0)
		if i == 0 {
			flags = 1
		}
		b = append(b, flags)
		b = cstr(b, c.name)
		b = be32(b, c.oid)
		b = be32(b, 0xFFFFFFFF)
	}
	return b
}

// pgMicros: pgoutput timestamps count microseconds from 2000-01-01 UTC.
func pgMicros(t time.Time) uint64 {
	return uint64(t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds())
}

func beginMsg(finalLSN uint64, xid uint32) []byte {
	return be32(be64(be64([]byte{'B'}, finalLSN), pgMicros(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))), xid)
}

func commitMsg(lsn, end uint64) []byte {
	return be64(be64(be64([]byte{'C', 0}, lsn), end), 0)
}

// insertMsg is one row like the OLTP workload's (~150 bytes of values).
func insertMsg(i int) []byte {
	k := strconv.Itoa(100000 + i%900000)
	vals := []string{
		strconv.Itoa(i + 1), k, "c4ca4238a0b923820dcc509a6f75849b",
		`{"k": ` + k + `, "tag": "order-` + k + `", "note": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "items": [1, 2, 3]}`,
		"2026-11-23 09:00:00.123456+00",
	}
	b := append(be32([]byte{'I'}, 16390), 'N')
	b = be16(b, uint16(len(vals)))
	for _, v := range vals {
		b = append(b, 't')
		b = be32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// decoded collects the fragments a decoder emits.
type decoded struct{ frags []*pgoutput.Fragment }

func (d *decoded) emit(_ context.Context, f *pgoutput.Fragment) error {
	d.frags = append(d.frags, f)
	return nil
}

func reportPerChange(b *testing.B, before *runtime.MemStats, changes int) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(changes)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/change")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/change")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/change")
}

// oltpFragments decodes n single-row transactions into fragments.
func oltpFragments(b testing.TB, n int) []*pgoutput.Fragment {
	var out decoded
	dec := pgoutput.New(out.emit, nil, 2<<20)
	ctx := context.Background()
	msgs := [][]byte{relationMsg()}
	for i := 0; i < n; i++ {
		lsn := uint64(0x1000000 + i*0x100)
		msgs = append(msgs, beginMsg(lsn, uint32(1000+i)), insertMsg(i), commitMsg(lsn, lsn+0x30))
	}
	for _, m := range msgs {
		if err := dec.Handle(ctx, 0, m); err != nil {
			b.Fatal(err)
		}
	}
	return out.frags
}

// BenchmarkAssembleOLTP500: one raw message from 500 single-row transactions.
func BenchmarkAssembleOLTP500(b *testing.B) {
	frags := oltpFragments(b, 500)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	var a Assembler
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if m := a.Assemble(benchSrc, frags); len(m.Txs) != 500 {
			b.Fatal("lost transactions")
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, 500)
}

// BenchmarkCollectorPathOLTP500: decode 500 single-row transactions from
// pgoutput bytes, assemble them into one raw message and encode it, as the
// collector does per raw message under an OLTP backlog.
func BenchmarkCollectorPathOLTP500(b *testing.B) {
	const n = 500
	msgs := make([][]byte, 0, 3*n)
	for i := 0; i < n; i++ {
		lsn := uint64(0x1000000 + i*0x100)
		msgs = append(msgs, beginMsg(lsn, uint32(1000+i)), insertMsg(i), commitMsg(lsn, lsn+0x30))
	}
	benchPath(b, msgs, n)
}

// BenchmarkCollectorPathBulk5000: 5,000 rows of one large transaction.
func BenchmarkCollectorPathBulk5000(b *testing.B) {
	const n = 5000
	msgs := [][]byte{beginMsg(0x5000000, 77)}
	for i := 0; i < n; i++ {
		msgs = append(msgs, insertMsg(i))
	}
	msgs = append(msgs, commitMsg(0x5000000, 0x5000030))
	benchPath(b, msgs, n)
}

func benchPath(b *testing.B, msgs [][]byte, changes int) {
	ctx := context.Background()
	var out decoded
	// Fragments big enough that the whole op is one raw message.
	dec := pgoutput.New(out.emit, nil, 8<<20)
	if err := dec.Handle(ctx, 0, relationMsg()); err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportAllocs()
	var a Assembler
	var enc wire.Encoder
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out.frags = out.frags[:0]
		for _, m := range msgs {
			if err := dec.Handle(ctx, 0, m); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := enc.Marshal(a.Assemble(benchSrc, out.frags)); err != nil {
			b.Fatal(err)
		}
		for _, f := range out.frags {
			f.Release() // as the publisher does once the message is stored
		}
	}
	b.StopTimer()
	reportPerChange(b, &ms, changes)
}
