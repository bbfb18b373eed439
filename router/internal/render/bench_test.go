package render

import (
	"strconv"
	"testing"

	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

// benchRecord is a raw record of 500 single-row inserts over three tables,
// the relay and plan benchmarks' shape.
func benchRecord(b *testing.B) *wire.Message {
	b.Helper()
	tables := []wire.Relation{users, orders, hostile}
	tx := wire.Tx{Xid: 1, CommitLSN: 0x10000, CommitTime: 1_700_000_000_000_000, Final: true}
	for i := range 500 {
		id := strconv.Itoa(i)
		switch i % 3 {
		case 0:
			tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: 0, New: []wire.Value{text(id), text("user number " + id), text("u" + id + "@example.com")}})
		case 1:
			tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: 1, New: []wire.Value{text(id), text(id + ".50")}})
		default:
			tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, Rel: 2, New: []wire.Value{text(id)}})
		}
	}
	m := &wire.Message{Source: app, Relations: tables, Txs: []wire.Tx{tx}}
	data, err := wire.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	out := &wire.Message{}
	if err := wire.Unmarshal(data, out); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkRecord renders one raw record of 500 inserts into a reused
// batch: per event, the cost of rendering alone (no I/O).
func BenchmarkRecord(b *testing.B) {
	for _, c := range []renderCase{
		{name: "native"},
		{name: "native-third", route: route.Config{Include: []string{"public.users"}}},
		// The system benchmark's variants (e2e/cmd/pgjet-bench -envelopes),
		// and binary mode.
		{name: "cloudevents", envelope: "cloudevents", settings: map[string]any{"data": "native"}},
		{name: "cloudevents-change", envelope: "cloudevents"},
		{name: "cloudevents-binary", envelope: "cloudevents", settings: map[string]any{"mode": "binary"}},
		{name: "debezium", envelope: "debezium"},
		{name: "debezium-schema", envelope: "debezium", settings: map[string]any{"schema": true}},
		{name: "group", route: route.Config{Group: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := benchRecord(b)
			var batch Batch
			r := newRenderer(b, c)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Reset() // the same record again is not backwards
				r.Record(&batch, m, Raw{Seq: 1, Size: 40 << 10}, 1<<20)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/change")
		})
	}
}
