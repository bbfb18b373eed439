package value

import (
	"math"

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
	kPoint
	kHstore       // the hstore extension's type
	kLtree        // the ltree extension's type
	kGeometry     // PostGIS
	kGeography    // PostGIS
	kDoubleVector // pgvector's vector
	kFloatVector  // pgvector's halfvec
	kSparseVector // pgvector's sparsevec
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
	if col.TypeOID >= firstUserOID {
		if col.Type.Kind == 'e' || (col.Type.Kind == 'b' && col.Type.ElemKind == 'e') {
			dt.kind = kEnum
			return dt
		}
		// Extension types have no fixed OID: Debezium knows them by name
		// (its TypeRegistry's hstoreOid, ltreeOid), whatever the schema.
		if col.Type.Kind == 'b' {
			name := col.Type.Name
			if dt.array && len(name) > 0 && name[0] == '_' {
				name = name[1:]
			}
			switch name {
			case "hstore":
				dt.kind = kHstore
				if e.opt.HStore == HStoreText {
					dt.kind = kString
				}
				return dt
			case "ltree":
				dt.kind = kLtree
				return dt
			}
			switch name {
			case "geometry":
				dt.kind = kGeometry
				return dt
			case "geography":
				dt.kind = kGeography
				return dt
			}
			// Debezium has no arrays of pgvector's types.
			if !dt.array {
				switch name {
				case "vector":
					dt.kind = kDoubleVector
				case "halfvec":
					dt.kind = kFloatVector
				case "sparsevec":
					dt.kind = kSparseVector
				}
				if dt.kind != kString {
					return dt
				}
			}
		}
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
	case pgtype.PointOID:
		dt.kind = kPoint
	case pgtype.BitOID, pgtype.VarbitOID:
		dt.kind = kBits
		dt.prec = mod
		if mod < 0 {
			// bit varying without a length: the JDBC driver reports
			// Integer.MAX_VALUE, which Debezium's Bits schema carries.
			dt.prec = math.MaxInt32
		}
		if dt.prec == 1 {
			dt.kind = kBool
		}
	}
	return dt
}
