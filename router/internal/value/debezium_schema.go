package value

import (
	"strconv"
	"strings"

	"github.com/pgjet/pgjet/shared/wire"
)

// AppendSchema appends the Kafka Connect JSON converter's schema of col's
// values, an object left open (no closing brace) so that the caller can
// add "field" last, where the converter puts it: with the column's default
// (see appendDefault) and an enum's labels as its "allowed" parameter.
func (e *Debezium) AppendSchema(b []byte, col *wire.Column, optional bool) []byte {
	t := e.typeOf(col)
	if t.array {
		b = append(b, `{"type":"array","items":`...)
		// An enum's element schema is Enum.builder itself, not made
		// optional (PostgresValueConverter.schemaBuilder;
		// RecordsStreamProducerIT.shouldStreamEnumArrayAsKnownType).
		b = e.appendScalarSchema(b, &t, col, t.kind != kEnum)
		b = append(b, '}')
		b = append(b, `,"optional":`...)
		return strconv.AppendBool(b, optional)
	}
	b = e.appendScalarSchema(b, &t, col, optional)
	return e.appendDefault(b, col)
}

func (e *Debezium) appendScalarSchema(b []byte, t *dbzType, col *wire.Column, optional bool) []byte {
	typ, name := "string", ""
	switch t.kind {
	case kBool:
		typ = "boolean"
	case kInt16:
		typ = "int16"
	case kInt32:
		typ = "int32"
	case kInt64:
		typ = "int64"
	case kFloat32:
		typ = "float"
	case kFloat64:
		typ = "double"
	case kNumeric, kMoney:
		switch e.opt.Decimal {
		case DecimalString:
		case DecimalDouble:
			typ = "double"
		default:
			if t.kind == kNumeric && t.variable {
				b = append(b, `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":`...)
				b = strconv.AppendBool(b, optional)
				return append(b, `,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal"`...)
			}
			scale := e.opt.MoneyFractionDigits
			if t.kind == kNumeric {
				scale = t.scale
			}
			b = append(b, `{"type":"bytes","optional":`...)
			b = strconv.AppendBool(b, optional)
			b = append(b, `,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"`...)
			b = strconv.AppendInt(b, int64(scale), 10)
			if t.kind == kNumeric {
				b = append(b, `","connect.decimal.precision":"`...)
				b = strconv.AppendInt(b, int64(t.prec), 10)
			}
			return append(b, `"}`...)
		}
	case kJSON:
		name = "io.debezium.data.Json"
	case kXML:
		name = "io.debezium.data.Xml"
	case kUUID:
		name = "io.debezium.data.Uuid"
	case kEnum:
		b = append(b, `{"type":"string","optional":`...)
		b = strconv.AppendBool(b, optional)
		b = append(b, `,"name":"io.debezium.data.Enum","version":1`...)
		if col.Type.Labels != nil {
			// Enum.builder(String.join(",", labels)): commas in a label are
			// not escaped, as in Debezium.
			b = append(b, `,"parameters":{"allowed":`...)
			b = AppendString(b, strings.Join(col.Type.Labels, ","))
			b = append(b, '}')
		}
		return b
	case kDate:
		typ, name = "int32", "io.debezium.time.Date"
		if e.opt.Time == TimeConnect {
			name = "org.apache.kafka.connect.data.Date"
		}
	case kTime:
		switch {
		case e.opt.Time == TimeConnect:
			typ, name = "int32", "org.apache.kafka.connect.data.Time"
		case e.opt.Time == TimeAdaptive && t.prec <= 3:
			typ, name = "int32", "io.debezium.time.Time"
		default:
			typ, name = "int64", "io.debezium.time.MicroTime"
		}
	case kTimestamp:
		switch {
		case e.opt.Time == TimeConnect:
			typ, name = "int64", "org.apache.kafka.connect.data.Timestamp"
		case t.prec <= 3:
			typ, name = "int64", "io.debezium.time.Timestamp"
		default:
			typ, name = "int64", "io.debezium.time.MicroTimestamp"
		}
	case kTimestamptz:
		name = "io.debezium.time.ZonedTimestamp"
	case kTimetz:
		name = "io.debezium.time.ZonedTime"
	case kTsvector:
		name = "io.debezium.data.Tsvector"
	case kLtree:
		name = "io.debezium.data.Ltree"
	case kHstore:
		if e.opt.HStore == HStoreMap {
			b = append(b, hstoreMapSchema...)
			return strconv.AppendBool(b, optional)
		}
		name = "io.debezium.data.Json"
	case kGeometry:
		// Debezium's Geometry schema is optional whatever the column.
		b = append(b, geometryFields...)
		return append(b, `true,"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry"`...)
	case kGeography:
		b = append(b, geometryFields...)
		b = strconv.AppendBool(b, optional)
		return append(b, `,"name":"io.debezium.data.geometry.Geography","version":1,"doc":"Geography"`...)
	case kDoubleVector, kFloatVector:
		item, vname := "double", "io.debezium.data.DoubleVector"
		if t.kind == kFloatVector {
			item, vname = "float", "io.debezium.data.FloatVector"
		}
		b = append(b, `{"type":"array","items":{"type":"`...)
		b = append(b, item...)
		b = append(b, `","optional":false},"optional":`...)
		b = strconv.AppendBool(b, optional)
		b = append(b, `,"name":"`...)
		b = append(b, vname...)
		return append(b, `","version":1`...)
	case kSparseVector:
		b = append(b, sparseVectorSchema...)
		b = strconv.AppendBool(b, optional)
		return append(b, `,"name":"io.debezium.data.SparseDoubleVector","version":1,"doc":"Sparse double vector"`...)
	case kPoint:
		b = append(b, pointSchema...)
		b = strconv.AppendBool(b, optional)
		return append(b, `,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)"`...)
	case kInterval:
		typ, name = "int64", "io.debezium.time.MicroDuration"
		if e.opt.Interval == IntervalString {
			typ, name = "string", "io.debezium.time.Interval"
		}
	case kBytea:
		if e.opt.Binary == BinaryBytes {
			typ = "bytes"
		}
	case kBits:
		b = append(b, `{"type":"bytes","optional":`...)
		b = strconv.AppendBool(b, optional)
		b = append(b, `,"name":"io.debezium.data.Bits","version":1`...)
		if t.prec > 0 {
			b = append(b, `,"parameters":{"length":"`...)
			b = strconv.AppendInt(b, int64(t.prec), 10)
			b = append(b, `"}`...)
		}
		return b
	}
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","optional":`...)
	b = strconv.AppendBool(b, optional)
	if name != "" {
		b = append(b, `,"name":"`...)
		b = append(b, name...)
		b = append(b, `","version":1`...)
	}
	return b
}
