package value

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// Column defaults as Debezium puts them in a field's Connect schema: it
// reads the expression the catalog prints (the raw record's
// wire.Column.Default) per type name (PostgresDefaultValueConverter), then
// converts what it read as a value of the column
// (convertDefaultValue). The reading is textual and lossy on purpose, and
// followed as it is: a literal is what its first pair of quotes holds, an
// expression starting with a function call is a placeholder (0, "",
// 1970-01-01...), anything it cannot parse has no default.

var (
	// PostgresDefaultValueConverter's LITERAL_DEFAULT_PATTERN and
	// FUNCTION_DEFAULT_PATTERN.
	dbzLiteralDefault  = regexp.MustCompile(`'(.*?)'`)
	dbzFunctionDefault = regexp.MustCompile(`^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)`)
	// Its CURRENT_DATE_TIMES, compared lower-cased.
	dbzCurrentDateTimes = map[string]bool{"current_timestamp": true, "current_time": true, "current_date": true, "localtime": true, "localtimestamp": true}
)

// defaultMapper is how Debezium reads the default of a built-in type, by
// the type's name: the placeholder of a generated default, and whether a
// "NULL::" cast means none (its parseNullDefault).
type defaultMapper struct {
	placeholder string
	nullable    bool
}

// dbzDefaultMappers are the built-in types Debezium reads defaults of; the
// others (money, bytea, timetz, arrays, domains, ...) have none.
var dbzDefaultMappers = map[uint32]defaultMapper{
	pgtype.BitOID:         {"00", false},
	pgtype.VarbitOID:      {"0", false},
	pgtype.BoolOID:        {"false", true},
	pgtype.BPCharOID:      {"", false},
	pgtype.VarcharOID:     {"", false},
	pgtype.TextOID:        {"", false},
	pgtype.NumericOID:     {"0.0", true},
	pgtype.Float4OID:      {"0.0", true},
	pgtype.Float8OID:      {"0.0", true},
	pgtype.Int2OID:        {"0", true},
	pgtype.Int4OID:        {"0", true},
	pgtype.Int8OID:        {"0", true},
	pgtype.JSONOID:        {"{}", false},
	pgtype.JSONBOID:       {"{}", false},
	pgtype.XMLOID:         {"", false},
	pgtype.UUIDOID:        {"00000000-0000-0000-0000-000000000000", false},
	pgtype.DateOID:        {"1970-01-01", false},
	pgtype.TimeOID:        {"00:00", false},
	pgtype.TimestampOID:   {"1970-01-01", false},
	pgtype.TimestamptzOID: {"1970-01-01", false},
	pgtype.IntervalOID:    {"epoch", false},
}

// extractDefault is Debezium's extractDefault(value, placeholder); ok is
// false where it gives null or fails (a quote without its pair).
func extractDefault(v, placeholder string) (string, bool) {
	if dbzFunctionDefault.MatchString(v) || dbzCurrentDateTimes[strings.ToLower(v)] {
		return placeholder, true
	}
	if !strings.Contains(v, "'") {
		return v, !strings.HasPrefix(v, "NULL::")
	}
	m := dbzLiteralDefault.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// javaTrim is Java's String.trim: it drops characters up to ' '.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

// appendDefault appends the "default" of col's field schema, if Debezium
// gives it one.
func (e *Debezium) appendDefault(b []byte, col *wire.Column) []byte {
	t := e.typeOf(col)
	out, ok := e.appendDefaultValue(append(b, `,"default":`...), col, &t)
	if !ok {
		return b
	}
	return out
}

// appendDefaultValue appends the value Debezium makes of col's default,
// false when it makes none.
func (e *Debezium) appendDefaultValue(b []byte, col *wire.Column, t *dbzType) ([]byte, bool) {
	expr := col.Default
	if expr == "" || t.array {
		return b, false
	}
	if col.TypeOID >= firstUserOID {
		if col.Type.Kind != 'e' {
			return b, false // a domain or an extension's type: no mapper for its name
		}
		label, ok := enumDefault(col.Type.Name, expr)
		if !ok {
			return b, false
		}
		return AppendString(b, label), true
	}
	m, ok := dbzDefaultMappers[col.TypeOID]
	if !ok || m.nullable && strings.HasPrefix(expr, "NULL::") {
		return b, false
	}
	switch col.TypeOID {
	case pgtype.BPCharOID, pgtype.VarcharOID, pgtype.TextOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
	default:
		expr = javaTrim(expr) // TRIM_DATA_TYPES
	}
	s, ok := extractDefault(expr, m.placeholder)
	if !ok {
		return b, false
	}
	var out []byte
	var err error
	switch t.kind {
	case kString, kJSON, kXML:
		return AppendString(b, s), true
	case kBool:
		if col.TypeOID == pgtype.BoolOID {
			// Boolean.parseBoolean.
			return strconv.AppendBool(b, strings.EqualFold(s, "true")), true
		}
		// bit(1), varbit(1): "1" is true; longer, the bits as a number
		// (Integer.valueOf(s, 2)) not 0.
		if col.TypeOID == pgtype.BitOID && len(s) == 1 {
			return strconv.AppendBool(b, s == "1"), true
		}
		n, err := strconv.ParseInt(s, 2, 32)
		if err != nil {
			return b, false
		}
		return strconv.AppendBool(b, n != 0), true
	case kInt16, kInt32, kInt64:
		bits := map[dbzKind]int{kInt16: 16, kInt32: 32, kInt64: 64}[t.kind]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return b, false
		}
		return strconv.AppendInt(b, n, 10), true
	case kFloat32, kFloat64:
		bits := 64
		if t.kind == kFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(strings.TrimRight(javaTrim(s), "fFdD"), bits)
		if err != nil {
			return b, false
		}
		return appendJavaFloat(b, f, bits), true
	case kNumeric:
		if t.variable && e.opt.Decimal == DecimalPrecise {
			return b, false
		}
		text, ok := numericDefault(s, t)
		if !ok {
			return b, false
		}
		out, err = e.appendNumeric(b, t, []byte(text))
	case kUUID:
		if len(s) != 36 || !validUUID(s) {
			return b, false
		}
		return AppendString(b, strings.ToLower(s)), true
	case kDate:
		if isInfinity([]byte(s)) {
			return b, false // Debezium fails converting Java's LocalDateTime.MAX
		}
		out, err = e.appendDate(b, []byte(s))
	case kTime:
		if len(s) == 5 {
			s += ":00" // LocalTime reads HH:MM
		}
		out, err = e.appendScalar(b, t, []byte(s))
	case kTimestamp, kTimestamptz:
		if isInfinity([]byte(s)) {
			return b, false
		}
		if len(s) == 10 {
			s += " 00:00:00" // a date alone is its midnight
			if t.kind == kTimestamptz {
				s += "+00"
			}
		}
		out, err = e.appendScalar(b, t, []byte(s))
	case kInterval:
		if s == "epoch" {
			s = "00:00:00" // the JDBC driver's PGInterval reads no unit in it: zero
		}
		out, err = e.appendInterval(b, []byte(s))
	case kBits:
		out, err = appendBits(b, []byte(s))
	default:
		return b, false
	}
	if err != nil {
		return b, false
	}
	return out, true
}

// numericDefault is the text of numeric default s at the column's scale,
// as Debezium's converter sets it (setScale without rounding: false when
// that would round). A numeric without a modifier keeps the scale it was
// written with; in precise mode it has no default at all: its
// VariableScaleDecimal is a struct, which Debezium leaves out
// (KAFKA-12694).
func numericDefault(s string, t *dbzType) (string, bool) {
	neg, digits, scale, ok := parseJavaDecimal(s)
	if !ok {
		return "", false
	}
	if t.variable {
		return plainDecimal(neg, digits, scale), true
	}
	for scale > t.scale {
		if digits[len(digits)-1] != '0' {
			return "", false
		}
		digits, scale = digits[:len(digits)-1], scale-1
		if len(digits) == 0 {
			digits = "0"
		}
	}
	for scale < t.scale {
		digits, scale = digits+"0", scale+1
	}
	return plainDecimal(neg, digits, scale), true
}

// parseJavaDecimal reads s as Java's new BigDecimal(String): its unscaled
// digits and scale.
func parseJavaDecimal(s string) (neg bool, digits string, scale int, ok bool) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart+frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return false, "", 0, false
	}
	scale = len(frac)
	if hasExp {
		e, err := strconv.Atoi(exp)
		if err != nil {
			return false, "", 0, false
		}
		scale -= e
	}
	digits = strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		digits = "0"
	}
	return neg, digits, scale, true
}

// plainDecimal is BigDecimal.toPlainString of unscaled digits at scale.
func plainDecimal(neg bool, digits string, scale int) string {
	var b strings.Builder
	if neg && strings.Trim(digits, "0") != "" {
		b.WriteByte('-')
	}
	switch {
	case scale <= 0:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", -scale))
	case len(digits) > scale:
		b.WriteString(digits[:len(digits)-scale])
		b.WriteByte('.')
		b.WriteString(digits[len(digits)-scale:])
	default:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", scale-len(digits)))
		b.WriteString(digits)
	}
	return b.String()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validUUID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if _, ok := unhex(c); !ok {
				return false
			}
		}
	}
	return true
}

// enumDefault is Debezium's extractEnumDefault: the quoted value before
// the expression's last cast, when the cast names the enum (schemas
// compared only when both are given).
func enumDefault(typeName, expr string) (string, bool) {
	at := strings.LastIndex(expr, "::")
	if at < 0 {
		return "", false
	}
	_, suffix := typeID(expr[at+2:])
	if suffix != typeName {
		return "", false
	}
	v := expr[:at]
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1], true
	}
	return "", false
}

// typeID is Debezium's TypeId.parse: a type name, maybe schema-qualified,
// double quotes removed ("" for one).
func typeID(s string) (schema, name string) {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			if cur.Len() > 0 {
				parts = append(parts, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		parts = append(parts, cur.String())
	}
	switch len(parts) {
	case 0:
		return "", ""
	case 1:
		return "", parts[0]
	}
	return parts[0], parts[1]
}

// appendRequiredNull appends what Debezium puts for a NULL in a NOT NULL
// column, which only a key-only old row has (pgoutput sends the other
// columns as NULL): the column's default if its schema has one, else its
// converter's fallback (JdbcValueConverters.convertValue;
// RecordsStreamProducerIT.shouldProcessNotNullColumnsFallbacksReplicaIdentity).
func (e *Debezium) appendRequiredNull(b []byte, col *wire.Column) []byte {
	t := e.typeOf(col)
	if out, ok := e.appendDefaultValue(b, col, &t); ok {
		return out
	}
	if t.array {
		return append(b, "[]"...) // an empty list
	}
	switch t.kind {
	case kBool:
		return append(b, "false"...)
	case kInt16, kInt32, kInt64, kDate, kTime, kTimestamp:
		return append(b, '0')
	case kFloat32, kFloat64:
		return append(b, "0.0"...)
	case kInterval:
		if e.opt.Interval == IntervalString {
			return append(b, `"P0Y0M0DT0H0M0S"`...)
		}
		return append(b, '0')
	case kNumeric, kMoney:
		// Zero at the column's scale (money's: money_fraction_digits).
		zero := "0"
		if t.kind == kMoney {
			if e.opt.MoneyFractionDigits > 0 {
				zero = "0." + strings.Repeat("0", e.opt.MoneyFractionDigits)
			}
			t = dbzType{kind: kNumeric, scale: e.opt.MoneyFractionDigits}
		} else if !t.variable && t.scale > 0 {
			zero = "0." + strings.Repeat("0", t.scale)
		}
		out, _ := e.appendNumeric(b, &t, []byte(zero))
		return out
	case kTimestamptz:
		return append(b, `"1970-01-01T00:00:00Z"`...)
	case kTimetz:
		return append(b, `"00:00:00Z"`...)
	case kBytea:
		return e.appendBinaryMode(b, nil)
	case kBits:
		return append(b, `""`...)
	case kPoint:
		out, _ := appendPoint(b, []byte("(0,0)"))
		return out
	case kHstore:
		if e.opt.HStore == HStoreMap {
			return append(b, "{}"...)
		}
		return append(b, `"{}"`...)
	case kGeometry, kGeography:
		// PostgisGeometry.createEmpty: an empty GEOMETRYCOLLECTION.
		return append(b, `{"wkb":"AQcAAAAAAAAA","srid":null}`...)
	case kDoubleVector, kFloatVector:
		return append(b, "[]"...)
	case kSparseVector:
		// Debezium's fallback is an empty list, which its struct schema
		// refuses (the connector fails): the emptiest vector instead.
		return append(b, `{"dimensions":0,"vector":[]}`...)
	}
	return append(b, `""`...)
}
