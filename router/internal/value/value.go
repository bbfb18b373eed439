// Package value renders column values, as pgoutput sent them, as JSON.
//
// The renderings are chosen to equal what Postgres's own to_jsonb gives for the
// same value, so that consumers see one canonical form whatever tool produced
// it: numbers stay exact (numeric is never converted to a float), json and
// jsonb are embedded, timestamps use the ISO 8601 'T' form, and anything
// without a JSON counterpart is its Postgres text as a JSON string.
//
// Text values are expected to come from a session with the settings of
// wire.TextFormat (DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres,
// extra_float_digits=3, bytea_output=hex), as the collector sets them. Dates and timestamps in another style are rejected, not
// passed through, so a misconfigured collector fails loudly.
package value

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// firstUserOID is FirstNormalObjectId: OIDs below it are built into Postgres
// and mean the same in every database.
const firstUserOID = 16384

// unknownOID renders text as a JSON string and has no binary decoding. Used for
// user-defined types the router knows nothing about.
const unknownOID = 0

// Decoder renders values as JSON. It caches array scan plans and reuses
// buffers, so it is not safe for concurrent use: use one per goroutine.
type Decoder struct {
	m       *pgtype.Map
	arrays  map[arrayKey]pgtype.ScanPlan
	arr     pgtype.Array[pgtype.UndecodedBytes]
	scratch []byte
}

type arrayKey struct {
	oid, elem uint32
	format    int16
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	return &Decoder{
		m:      pgtype.NewMap(),
		arrays: make(map[arrayKey]pgtype.ScanPlan),
	}
}

// AppendJSON appends the JSON rendering of v, a value of column col, to b. On
// error b is returned unchanged. Unchanged TOAST values are an error: they are
// unknown, and only the caller can mark them as such.
func (d *Decoder) AppendJSON(b []byte, col *wire.Column, v wire.Value) ([]byte, error) {
	var binary bool
	switch v.Kind {
	case wire.KindNull:
		return append(b, "null"...), nil
	case wire.KindText:
	case wire.KindBinary:
		binary = true
	case wire.KindUnchanged:
		return b, errors.New("unchanged TOAST value has no JSON rendering")
	default:
		return b, fmt.Errorf("unknown value kind %q", v.Kind)
	}
	t := d.resolve(col.TypeOID, &col.Type)
	out, err := d.appendTyped(b, t, binary, v.Data)
	if err != nil {
		return b, err
	}
	return out, nil
}

// typ is how a column type renders: as builtin type oid, or as an array of it.
type typ struct {
	oid   uint32 // element type for arrays; unknownOID for opaque user types
	array uint32 // the array type's OID, 0 for scalars
	delim byte   // array element delimiter
}

// resolve maps a column type to its rendering. User-defined types are
// described by info; builtin OIDs need nothing else.
func (d *Decoder) resolve(oid uint32, info *wire.TypeInfo) typ {
	if oid >= firstUserOID {
		switch info.Kind {
		case 'e':
			return typ{oid: pgtype.TextOID}
		case 'd':
			if info.BaseOID != 0 && info.BaseOID < firstUserOID {
				return d.resolve(info.BaseOID, &wire.TypeInfo{})
			}
		case 'b':
			if info.ElemOID != 0 {
				t := typ{oid: unknownOID, array: oid, delim: arrayDelimiter(info.Name)}
				switch {
				case info.ElemKind == 'e':
					t.oid = pgtype.TextOID
				case info.ElemOID < firstUserOID:
					t.oid = info.ElemOID
				}
				return t
			}
		}
		return typ{oid: unknownOID}
	}
	switch oid {
	case pgtype.BoolOID, pgtype.ByteaOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.TextOID,
		pgtype.VarcharOID, pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID, pgtype.JSONOID,
		pgtype.JSONBOID, pgtype.UUIDOID, pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return typ{oid: oid} // the common scalars, without a map lookup
	}
	if dt, ok := d.m.TypeForOID(oid); ok {
		if ac, ok := dt.Codec.(*pgtype.ArrayCodec); ok {
			delim := ac.Delimiter
			if delim == 0 {
				delim = ','
			}
			return typ{oid: ac.ElementType.OID, array: oid, delim: delim}
		}
		return typ{oid: oid}
	}
	if elem, ok := extraArrays[oid]; ok {
		return typ{oid: elem, array: oid, delim: ','}
	}
	return typ{oid: oid}
}

// arrayDelimiter is the element delimiter of an extension's array type
// (pg_type.typdelim of its element type, which the raw record does not
// carry): ':' for PostGIS's geometry and geography, which declare it so
// that a geometry's own text may hold commas; ',' for the others.
func arrayDelimiter(arrayName string) byte {
	switch arrayName {
	case "_geometry", "_geography":
		return ':'
	}
	return ','
}

// extraArrays are builtin array types pgtype does not register, by element.
var extraArrays = map[uint32]uint32{
	1270: pgtype.TimetzOID,
	791:  790,  // money
	775:  774,  // macaddr8
	3645: 3615, // tsquery
	3221: 3220, // pg_lsn
	2211: 2206, // regtype
	2210: 2205, // regclass
}

func (d *Decoder) appendTyped(b []byte, t typ, binary bool, data []byte) ([]byte, error) {
	if t.array != 0 {
		return d.appendArray(b, t, binary, data)
	}
	if binary {
		return d.appendBinary(b, t.oid, data)
	}
	return d.appendText(b, t.oid, data)
}

// appendText renders the text form of a scalar of builtin type oid.
func (d *Decoder) appendText(b []byte, oid uint32, s []byte) ([]byte, error) {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		if !isInteger(s) {
			return b, badText(oid, s)
		}
		return append(b, s...), nil
	case pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID:
		return appendNumber(b, oid, s)
	case pgtype.BoolOID:
		if len(s) == 1 {
			switch s[0] {
			case 't':
				return append(b, "true"...), nil
			case 'f':
				return append(b, "false"...), nil
			}
		}
		return b, badText(oid, s)
	case pgtype.JSONOID, pgtype.JSONBOID:
		// Postgres only outputs valid JSON, but an invalid document would make
		// the whole envelope invalid: check rather than trust.
		if !validJSON(s) {
			return b, badText(oid, s)
		}
		return append(b, s...), nil
	case pgtype.DateOID:
		if !isDateText(s) {
			return b, badText(oid, s)
		}
		return AppendString(b, s), nil
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		return appendTimestampText(b, oid == pgtype.TimestamptzOID, s)
	}
	return AppendString(b, s), nil
}

// appendNumber renders numeric and floating point text: exact digits as a
// JSON number, or the special values as strings as to_jsonb does.
func appendNumber(b []byte, oid uint32, s []byte) ([]byte, error) {
	switch string(s) {
	case "NaN", "Infinity", "-Infinity":
		return AppendString(b, s), nil
	}
	if !isJSONNumber(s) {
		return b, badText(oid, s)
	}
	return append(b, s...), nil
}

// isInteger reports whether s is a decimal integer in canonical form.
func isInteger(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether s matches JSON's number grammar.
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func skipDigits(s []byte, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// badText is the error for a text value that does not parse as its type. The
// value is quoted (shortened) so that the dead letter explains itself.
func badText(oid uint32, s []byte) error {
	return fmt.Errorf("invalid %s text %q", typeName(oid), shorten(s))
}

// shorten cuts s for an error message.
func shorten(s []byte) string {
	const max = 64
	if len(s) > max {
		return string(s[:max]) + "..."
	}
	return string(s)
}

func typeName(oid uint32) string {
	switch oid {
	case pgtype.Int2OID:
		return "int2"
	case pgtype.Int4OID:
		return "int4"
	case pgtype.Int8OID:
		return "int8"
	case pgtype.OIDOID:
		return "oid"
	case pgtype.NumericOID:
		return "numeric"
	case pgtype.Float4OID:
		return "float4"
	case pgtype.Float8OID:
		return "float8"
	case pgtype.BoolOID:
		return "bool"
	case pgtype.JSONOID:
		return "json"
	case pgtype.JSONBOID:
		return "jsonb"
	case pgtype.DateOID:
		return "date"
	case pgtype.TimestampOID:
		return "timestamp"
	case pgtype.TimestamptzOID:
		return "timestamptz"
	case pgtype.UUIDOID:
		return "uuid"
	case pgtype.ByteaOID:
		return "bytea"
	case unknownOID:
		return "user-defined type"
	}
	return fmt.Sprintf("type %d", oid)
}
