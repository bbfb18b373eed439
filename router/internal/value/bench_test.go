package value

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

func benchmarkAppendJSON(b *testing.B, oid uint32, v wire.Value) {
	d := NewDecoder()
	col := &wire.Column{Name: "c", TypeOID: oid}
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(v.Data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = d.AppendJSON(buf[:0], col, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSONInt4(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.Int4OID, text("1234567"))
}

func BenchmarkAppendJSONText(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.TextOID, text("The quick brown fox jumps over the lazy dog, \"twice\"; ünïcödé too."))
}

func BenchmarkAppendJSONNumeric(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.NumericOID, text("-12345678901234567890.12345678901234567890"))
}

func BenchmarkAppendJSONTimestamptz(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.TimestamptzOID, text("2026-11-23 09:00:00.123456+00"))
}

func BenchmarkAppendJSONBool(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.BoolOID, text("t"))
}

func BenchmarkAppendJSONInt4Array(b *testing.B) {
	benchmarkAppendJSON(b, pgtype.Int4ArrayOID, text("{1,2,3,4,5,6,7,8,9,10}"))
}
