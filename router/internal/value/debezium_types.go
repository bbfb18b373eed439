package value

import (
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// dbzKind is how Debezium encodes a type.
type dbzKind uint8

const (
	kString dbzKind = iota // text and everything without an encoding of its own
	kBool
	kInt16
	kInt32
	kInt64
	kFloat32
	kFloat64
	kNumeric
	kMoney
	kJSON
	kXML
	kUUID
	kEnum
	kDate
	kTime
	kTimetz
	kTimestamp
	kTimestamptz
	kInterval
	kBytea
	kBits
	kTsvector
)

// dbzType is a column's type as Debezium sees it: the element type for
// arrays, with what the type modifier says.
type dbzType struct {
	kind  dbzKind
	array bool
	// numeric: precision and scale, variable when the column has no
	// modifier. time types: fractional digits (6 without a modifier, as
	// the JDBC driver reports). bit: length.
	prec, scale int
	variable    bool
}

func (e *Debezium) typeOf(col *wire.Column) dbzType {
	t := e.d.resolve(col.TypeOID, &col.Type)
	dt := dbzType{array: t.array != 0}
	if col.TypeOID >= firstUserOID && (col.Type.Kind == 'e' || (col.Type.Kind == 'b' && col.Type.ElemKind == 'e')) {
		dt.kind = kEnum
		return dt
	}
	mod := int(col.TypeMod)
	switch t.oid {
	case pgtype.BoolOID:
		dt.kind = kBool
	case pgtype.Int2OID:
		dt.kind = kInt16
	case pgtype.Int4OID:
		dt.kind = kInt32
	case pgtype.Int8OID, pgtype.OIDOID:
		dt.kind = kInt64
	case pgtype.Float4OID:
		dt.kind = kFloat32
	case pgtype.Float8OID:
		dt.kind = kFloat64
	case pgtype.NumericOID:
		dt.kind = kNumeric
		if mod < 4 {
			dt.variable = true
		} else {
			dt.prec = ((mod - 4) >> 16) & 0xFFFF
			dt.scale = int(int16((mod - 4) & 0xFFFF))
		}
	case 790:
		dt.kind = kMoney
	case pgtype.JSONOID, pgtype.JSONBOID:
		dt.kind = kJSON
	case pgtype.XMLOID:
		dt.kind = kXML
	case pgtype.UUIDOID:
		dt.kind = kUUID
	case pgtype.DateOID:
		dt.kind = kDate
	case pgtype.TimeOID, pgtype.TimetzOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		switch t.oid {
		case pgtype.TimeOID:
			dt.kind = kTime
		case pgtype.TimetzOID:
			dt.kind = kTimetz
		case pgtype.TimestampOID:
			dt.kind = kTimestamp
		default:
			dt.kind = kTimestamptz
		}
		dt.prec = 6
		if mod >= 0 {
			dt.prec = mod
		}
	case pgtype.IntervalOID:
		dt.kind = kInterval
	case pgtype.ByteaOID:
		dt.kind = kBytea
	case 3614:
		dt.kind = kTsvector
	case pgtype.BitOID, pgtype.VarbitOID:
		dt.kind = kBits
		dt.prec = mod
		if dt.prec == 1 {
			dt.kind = kBool
		}
	}
	return dt
}
