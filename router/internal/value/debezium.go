package value

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgjet/pgjet/shared/wire"
)

// Debezium's handling modes, as its PostgreSQL connector names them
// (decimal.handling.mode, time.precision.mode, binary.handling.mode,
// interval.handling.mode).
const (
	DecimalPrecise = "precise"
	DecimalString  = "string"
	DecimalDouble  = "double"

	TimeAdaptive             = "adaptive"
	TimeAdaptiveMicroseconds = "adaptive_time_microseconds"
	TimeConnect              = "connect"

	BinaryBytes         = "bytes"
	BinaryBase64        = "base64"
	BinaryBase64URLSafe = "base64-url-safe"
	BinaryHex           = "hex"

	IntervalNumeric = "numeric"
	IntervalString  = "string"
)

// DefaultPlaceholder is what Debezium puts for an unchanged TOAST value.
const DefaultPlaceholder = "__debezium_unavailable_value"

// DebeziumOptions select the encodings, with Debezium's defaults for "".
type DebeziumOptions struct {
	Decimal  string
	Time     string
	Binary   string
	Interval string
	// MoneyFractionDigits is the scale of money in precise mode
	// (money.fraction.digits).
	MoneyFractionDigits int
	// Placeholder replaces unchanged TOAST values; "hex:..." gives its
	// bytes in hex, as Debezium's unavailable.value.placeholder does.
	Placeholder string
}

// Check reports the first bad option as the name of its setting and why.
func (o *DebeziumOptions) Check() (key string, err error) {
	one := func(key, v string, ok ...string) (string, error) {
		for _, s := range ok {
			if v == s {
				return "", nil
			}
		}
		return key, fmt.Errorf("%q: use one of %q", v, ok)
	}
	if k, err := one("decimal_handling_mode", o.Decimal, DecimalPrecise, DecimalString, DecimalDouble); err != nil {
		return k, err
	}
	if k, err := one("time_precision_mode", o.Time, TimeAdaptive, TimeAdaptiveMicroseconds, TimeConnect); err != nil {
		return k, err
	}
	if k, err := one("binary_handling_mode", o.Binary, BinaryBytes, BinaryBase64, BinaryBase64URLSafe, BinaryHex); err != nil {
		return k, err
	}
	if k, err := one("interval_handling_mode", o.Interval, IntervalNumeric, IntervalString); err != nil {
		return k, err
	}
	if o.MoneyFractionDigits < 0 || o.MoneyFractionDigits > 1000 {
		return "money_fraction_digits", fmt.Errorf("%d: use 0 to 1000", o.MoneyFractionDigits)
	}
	if _, err := placeholderBytes(o.Placeholder); err != nil {
		return "unavailable_value_placeholder", err
	}
	return "", nil
}

func placeholderBytes(p string) ([]byte, error) {
	if len(p) >= 4 && p[:4] == "hex:" {
		b, err := hex.DecodeString(p[4:])
		if err != nil {
			return nil, fmt.Errorf("%q: not hex after hex:", p)
		}
		return b, nil
	}
	return []byte(p), nil
}

// Debezium renders values the way Debezium's PostgreSQL connector encodes
// them with the Kafka Connect JSON converter, and their Connect schemas. It
// is not safe for concurrent use.
type Debezium struct {
	d   *Decoder
	opt DebeziumOptions
	ph  []byte // placeholder bytes
	big big.Int
	tmp []byte
}

// NewDebezium returns a Debezium encoder; "" options get Debezium's
// defaults (MoneyFractionDigits has none: 0 is a valid scale).
func NewDebezium(o DebeziumOptions) (*Debezium, error) {
	if o.Decimal == "" {
		o.Decimal = DecimalPrecise
	}
	if o.Time == "" {
		o.Time = TimeAdaptive
	}
	if o.Binary == "" {
		o.Binary = BinaryBytes
	}
	if o.Interval == "" {
		o.Interval = IntervalNumeric
	}
	if o.Placeholder == "" {
		o.Placeholder = DefaultPlaceholder
	}
	if _, err := o.Check(); err != nil {
		return nil, err
	}
	ph, _ := placeholderBytes(o.Placeholder)
	return &Debezium{d: NewDecoder(), opt: o, ph: ph}, nil
}

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

// AppendValue appends the JSON of v, a value of col. Unchanged TOAST
// values become the placeholder in the form Debezium gives it for the
// column's type.
func (e *Debezium) AppendValue(b []byte, col *wire.Column, v wire.Value) ([]byte, error) {
	switch v.Kind {
	case wire.KindNull:
		return append(b, "null"...), nil
	case wire.KindText:
	case wire.KindUnchanged:
		return e.appendPlaceholder(b, col), nil
	case wire.KindBinary:
		return b, errors.New("binary-format values have no Debezium encoding here: run the collector in text mode")
	default:
		return b, fmt.Errorf("unknown value kind %q", v.Kind)
	}
	t := e.typeOf(col)
	if !t.array {
		out, err := e.appendScalar(b, &t, v.Data)
		if err != nil {
			return b, err
		}
		return out, nil
	}
	rt := e.d.resolve(col.TypeOID, &col.Type)
	plan, err := e.d.arrayPlan(rt, pgtype.TextFormatCode)
	if err != nil {
		return b, err
	}
	if err := plan.Scan(v.Data, &e.d.arr); err != nil {
		return b, fmt.Errorf("parse array: %w", err)
	}
	elems, dims := e.d.arr.Elements, e.d.arr.Dims
	defer clear(elems)
	if len(elems) == 0 {
		return append(b, "[]"...), nil
	}
	n := 1
	for _, dim := range dims {
		n *= int(dim.Length)
	}
	if len(dims) == 0 || n != len(elems) {
		return b, fmt.Errorf("parse array: dimensions do not match %d elements", len(elems))
	}
	next := 0
	out, err := e.appendDim(b, &t, dims, elems, &next)
	if err != nil {
		return b, err
	}
	return out, nil
}

func (e *Debezium) appendDim(b []byte, t *dbzType, dims []pgtype.ArrayDimension, elems []pgtype.UndecodedBytes, next *int) ([]byte, error) {
	b = append(b, '[')
	for i := range int(dims[0].Length) {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if len(dims) > 1 {
			b, err = e.appendDim(b, t, dims[1:], elems, next)
		} else {
			el := elems[*next]
			*next++
			if el == nil {
				b = append(b, "null"...)
			} else if b, err = e.appendScalar(b, t, el); err != nil {
				err = fmt.Errorf("array element %d: %w", *next, err)
			}
		}
		if err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

func (e *Debezium) appendScalar(b []byte, t *dbzType, s []byte) ([]byte, error) {
	switch t.kind {
	case kBool:
		// bool prints t/f; bit(1), which Debezium also makes a boolean, 1/0.
		if len(s) == 1 {
			switch s[0] {
			case 't', '1':
				return append(b, "true"...), nil
			case 'f', '0':
				return append(b, "false"...), nil
			}
		}
		return b, badText(pgtype.BoolOID, s)
	case kInt16, kInt32, kInt64:
		if !isInteger(s) {
			return b, badText(pgtype.Int8OID, s)
		}
		return append(b, s...), nil
	case kFloat32, kFloat64:
		bits := 64
		if t.kind == kFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(string(s), bits)
		if err != nil && !math.IsInf(f, 0) {
			return b, badText(pgtype.Float8OID, s)
		}
		return appendJavaFloat(b, f, bits), nil
	case kNumeric:
		return e.appendNumeric(b, t, s)
	case kMoney:
		return e.appendMoney(b, s)
	case kDate:
		return e.appendDate(b, s)
	case kTime:
		usec, ok := parseClock(s)
		if !ok {
			return b, badText(pgtype.TimeOID, s)
		}
		if e.opt.Time == TimeConnect || (e.opt.Time == TimeAdaptive && t.prec <= 3) {
			return strconv.AppendInt(b, usec/1000, 10), nil
		}
		return strconv.AppendInt(b, usec, 10), nil
	case kTimetz:
		return appendTimetz(b, s)
	case kTimestamp:
		usec, ok := timestampMicros(s)
		if !ok {
			return b, badText(pgtype.TimestampOID, s)
		}
		// Both adaptive modes keep milliseconds for timestamp(0..3).
		if e.opt.Time == TimeConnect || t.prec <= 3 {
			return strconv.AppendInt(b, floorDiv(usec, 1000), 10), nil
		}
		return strconv.AppendInt(b, usec, 10), nil
	case kTimestamptz:
		return appendZonedTimestamp(b, s, t.prec)
	case kInterval:
		return e.appendInterval(b, s)
	case kBytea:
		raw, ok := decodeBytea(s, e.tmp[:0])
		if !ok {
			return b, badText(pgtype.ByteaOID, s)
		}
		e.tmp = raw
		return e.appendBinaryMode(b, raw), nil
	case kBits:
		return appendBits(b, s)
	case kJSON:
		if !validJSON(s) {
			return b, badText(pgtype.JSONBOID, s)
		}
	}
	return AppendString(b, s), nil
}

// appendBinaryMode renders bytes per binary.handling.mode; bytes is what
// the JSON converter makes of Connect bytes: base64.
func (e *Debezium) appendBinaryMode(b []byte, raw []byte) []byte {
	b = append(b, '"')
	switch e.opt.Binary {
	case BinaryHex:
		b = hex.AppendEncode(b, raw)
	case BinaryBase64URLSafe:
		b = base64.URLEncoding.AppendEncode(b, raw)
	default:
		b = base64.StdEncoding.AppendEncode(b, raw)
	}
	return append(b, '"')
}

// appendPlaceholder renders an unchanged TOAST value as Debezium does:
// the placeholder string, its bytes for bytea, or a one-element (or
// byte-per-element, for integer arrays) list for the arrays Debezium
// knows.
func (e *Debezium) appendPlaceholder(b []byte, col *wire.Column) []byte {
	t := e.typeOf(col)
	if !t.array {
		if t.kind == kBytea && e.opt.Binary == BinaryBytes {
			return e.appendBinaryMode(b, e.ph)
		}
		return AppendString(b, e.ph)
	}
	oid := e.d.resolve(col.TypeOID, &col.Type).oid
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.JSONOID, pgtype.JSONBOID:
		b = append(b, '[')
		b = AppendString(b, e.ph)
		return append(b, ']')
	case pgtype.ByteaOID:
		b = append(b, '[')
		if e.opt.Binary == BinaryBytes {
			b = e.appendBinaryMode(b, e.ph)
		} else {
			b = AppendString(b, e.ph)
		}
		return append(b, ']')
	case pgtype.Int4OID, pgtype.DateOID, pgtype.Int8OID:
		b = append(b, '[')
		for i, c := range e.ph {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(int8(c)), 10)
		}
		return append(b, ']')
	case pgtype.UUIDOID:
		// Java's UUID.nameUUIDFromBytes: an MD5, version 3 name UUID.
		sum := md5.Sum(e.ph)
		sum[6] = sum[6]&0x0f | 0x30
		sum[8] = sum[8]&0x3f | 0x80
		b = append(b, '[')
		b = appendUUID(b, sum[:])
		return append(b, ']')
	}
	return AppendString(b, e.ph)
}

// appendJavaFloat renders f as Java's Float.toString or Double.toString
// does, which the JSON converter writes: the same shortest digits as Go,
// laid out as "1.0", "0.001", "1.0E7" or "1.0E-4". NaN and the infinities
// are strings, as Jackson quotes them.
func appendJavaFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, bits) // -d.ddde±XX
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		b = append(b, '-')
	}
	ePos := 0
	for ePos < len(s) && s[ePos] != 'e' {
		ePos++
	}
	exp, _ := strconv.Atoi(string(s[ePos+1:]))
	var digits [24]byte
	nd := 0
	for _, c := range s[:ePos] {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	ds := digits[:nd]
	abs := math.Abs(f)
	if abs >= 1e-3 && abs < 1e7 {
		if exp >= 0 {
			intLen := exp + 1
			for i := range intLen {
				if i < len(ds) {
					b = append(b, ds[i])
				} else {
					b = append(b, '0')
				}
			}
			b = append(b, '.')
			if intLen < len(ds) {
				b = append(b, ds[intLen:]...)
			} else {
				b = append(b, '0')
			}
			return b
		}
		b = append(b, "0."...)
		for range -exp - 1 {
			b = append(b, '0')
		}
		return append(b, ds...)
	}
	b = append(b, ds[0], '.')
	if len(ds) > 1 {
		b = append(b, ds[1:]...)
	} else {
		b = append(b, '0')
	}
	b = append(b, 'E')
	return strconv.AppendInt(b, int64(exp), 10)
}

// decimalText is a decimal number split as Postgres prints numeric:
// optional '-', digits, optional '.' and digits (no exponent).
type decimalText struct {
	neg        bool
	int, frac  []byte
	nan, inf   bool // inf with neg for -Infinity
	hadDecimal bool
}

func parseDecimalText(s []byte) (d decimalText, ok bool) {
	switch string(s) {
	case "NaN":
		return decimalText{nan: true}, true
	case "Infinity":
		return decimalText{inf: true}, true
	case "-Infinity":
		return decimalText{inf: true, neg: true}, true
	}
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	j := skipDigits(s, i)
	d.int = s[i:j]
	if j < len(s) && s[j] == '.' {
		d.hadDecimal = true
		k := skipDigits(s, j+1)
		d.frac = s[j+1 : k]
		j = k
	}
	if j != len(s) || len(d.int)+len(d.frac) == 0 {
		return d, false
	}
	return d, true
}

// appendNumeric renders numeric per decimal.handling.mode. Precise is a
// Connect Decimal (base64 of the unscaled two's complement, big-endian)
// for numeric(p,s), and Debezium's VariableScaleDecimal struct for numeric
// without a modifier. NaN and the infinities exist only as strings and
// doubles: precise mode fails on them, as Debezium does.
func (e *Debezium) appendNumeric(b []byte, t *dbzType, s []byte) ([]byte, error) {
	d, ok := parseDecimalText(s)
	if !ok {
		return b, badText(pgtype.NumericOID, s)
	}
	switch e.opt.Decimal {
	case DecimalString:
		switch {
		case d.nan:
			return append(b, `"NAN"`...), nil
		case d.inf && d.neg:
			return append(b, `"NEGATIVE_INFINITY"`...), nil
		case d.inf:
			return append(b, `"POSITIVE_INFINITY"`...), nil
		}
		if !t.variable && t.scale > len(d.frac) {
			return e.appendScaledString(b, d, t.scale), nil
		}
		return AppendString(b, s), nil
	case DecimalDouble:
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil && !math.IsInf(f, 0) {
			return b, badText(pgtype.NumericOID, s)
		}
		return appendJavaFloat(b, f, 64), nil
	}
	if d.nan || d.inf {
		return b, fmt.Errorf("numeric %s has no precise Debezium encoding: set decimal_handling_mode to string or double", s)
	}
	if t.variable {
		// stripTrailingZeros, then no negative scale.
		frac := d.frac
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
		b = append(b, `{"scale":`...)
		b = strconv.AppendInt(b, int64(len(frac)), 10)
		b = append(b, `,"value":"`...)
		b = e.appendUnscaled(b, d.neg, d.int, frac, 0)
		return append(b, `"}`...), nil
	}
	if len(d.frac) > t.scale && t.scale >= 0 {
		return b, fmt.Errorf("numeric %s has more than the column's %d decimals", s, t.scale)
	}
	b = append(b, '"')
	b = e.appendUnscaled(b, d.neg, d.int, d.frac, t.scale)
	return append(b, '"'), nil
}

func (e *Debezium) appendScaledString(b []byte, d decimalText, scale int) []byte {
	b = append(b, '"')
	if d.neg {
		b = append(b, '-')
	}
	if len(d.int) == 0 {
		b = append(b, '0')
	}
	b = append(b, d.int...)
	b = append(b, '.')
	b = append(b, d.frac...)
	for range scale - len(d.frac) {
		b = append(b, '0')
	}
	return append(b, '"')
}

// appendUnscaled appends base64 of the unscaled value int.frac at scale
// (frac padded with zeros to it; a negative scale drops integer zeros),
// as Java's BigInteger.toByteArray: the shortest two's complement,
// big-endian.
func (e *Debezium) appendUnscaled(b []byte, neg bool, intPart, frac []byte, scale int) []byte {
	digits := e.tmp[:0]
	digits = append(digits, intPart...)
	digits = append(digits, frac...)
	for i := len(frac); i < scale; i++ {
		digits = append(digits, '0')
	}
	if scale < 0 {
		cut := len(digits) + scale
		if cut < 0 {
			cut = 0
		}
		digits = digits[:cut]
	}
	e.tmp = digits
	var raw [16]byte
	var bs []byte
	if len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		bs = twosComplement64(raw[:0], v)
	} else {
		e.big.SetString(string(digits), 10)
		if neg {
			e.big.Neg(&e.big)
		}
		bs = twosComplementBig(&e.big)
	}
	return base64.StdEncoding.AppendEncode(b, bs)
}

func twosComplement64(b []byte, v int64) []byte {
	n := 8
	for n > 1 {
		top := byte(v >> (8*(n-1) - 0))
		next := byte(v >> (8 * (n - 2)))
		if (top == 0 && next&0x80 == 0) || (top == 0xff && next&0x80 != 0) {
			n--
			continue
		}
		break
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func twosComplementBig(x *big.Int) []byte {
	if x.Sign() >= 0 {
		bs := x.Bytes()
		if len(bs) == 0 || bs[0]&0x80 != 0 {
			bs = append([]byte{0}, bs...)
		}
		return bs
	}
	// -x-1 >= 0; its bytes inverted are x's two's complement.
	y := new(big.Int).Neg(x)
	y.Sub(y, big.NewInt(1))
	bs := y.Bytes()
	if len(bs) == 0 || bs[0]&0x80 != 0 {
		bs = append([]byte{0}, bs...)
	}
	for i := range bs {
		bs[i] = ^bs[i]
	}
	return bs
}

// appendMoney renders money text ("$1,234.56", "-$1.00") as Debezium's
// PostgresMoney reads it: sign, then currency symbol and separators gone.
func (e *Debezium) appendMoney(b []byte, s []byte) ([]byte, error) {
	digits := e.tmp[:0]
	neg := false
	i, end := 0, len(s)
	if end > 0 && s[0] == '-' {
		neg = true
		i++
	}
	if i < end && s[i] == '(' && s[end-1] == ')' {
		neg = true
		i++
		end--
	}
	for i < end && (s[i] < '0' || s[i] > '9') && s[i] != '.' {
		i++ // the currency symbol, of any length in any encoding
	}
	if neg {
		digits = append(digits, '-')
	}
	for ; i < end; i++ {
		if s[i] != ',' {
			digits = append(digits, s[i])
		}
	}
	e.tmp = digits
	d, ok := parseDecimalText(digits)
	if !ok || d.nan || d.inf {
		return b, fmt.Errorf("invalid money text %q", s)
	}
	switch e.opt.Decimal {
	case DecimalString:
		return AppendString(b, digits), nil
	case DecimalDouble:
		f, _ := strconv.ParseFloat(string(digits), 64)
		return appendJavaFloat(b, f, 64), nil
	}
	scale := e.opt.MoneyFractionDigits
	intPart, frac := d.int, d.frac
	if len(frac) > scale {
		// setScale(scale, HALF_UP): round the magnitude half up.
		r := new(big.Rat)
		r.SetString(string(append(append(append([]byte{}, intPart...), '.'), frac...)))
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
		r.Add(r, big.NewRat(1, 2))
		q := new(big.Int).Quo(r.Num(), r.Denom())
		if neg {
			q.Neg(q)
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, twosComplementBig(q))
		return append(b, '"'), nil
	}
	b = append(b, '"')
	b = e.appendUnscaled(b, neg, append([]byte(nil), intPart...), append([]byte(nil), frac...), scale)
	return append(b, '"'), nil
}

// Java's LocalDate for Postgres's ±infinity dates, as the JDBC driver and
// Debezium represent them (year -5877611: both, oddly, far in the past).
var (
	posInfinityDays = daysFromCivil(-5877611, 6, 21)
	negInfinityDays = daysFromCivil(-5877611, 6, 22)
)

// pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY, which Debezium
// turns into the instants it encodes for ±infinity timestamps.
const (
	posInfinityMicros = 9223372036825200000
	negInfinityMicros = -9223372036832400000
)

func (e *Debezium) appendDate(b []byte, s []byte) ([]byte, error) {
	var days int64
	switch string(s) {
	case "infinity":
		days = posInfinityDays
	case "-infinity":
		days = negInfinityDays
	default:
		var p stamp
		i, ok := parseDate(s, &p)
		if !ok {
			return b, badText(pgtype.DateOID, s)
		}
		if i != len(s) {
			if string(s[i:]) != " BC" {
				return b, badText(pgtype.DateOID, s)
			}
			p.bc = true
		}
		days = daysFromCivil(p.properYear(), p.mon, p.day)
	}
	// Date.toEpochDay's int.
	return strconv.AppendInt(b, int64(int32(days)), 10), nil
}

func (p *stamp) properYear() int {
	if p.bc {
		return 1 - p.year
	}
	return p.year
}

// daysFromCivil counts days from 1970-01-01 in the proleptic Gregorian
// calendar, as Java's LocalDate and Postgres both do.
func daysFromCivil(y, m, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := yy / 400
	if yy < 0 && yy%400 != 0 {
		era--
	}
	yoe := yy - era*400
	mp := int64(m+9) % 12
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// parseClock parses "HH:MM:SS[.ffffff]" (24:00:00 included) into
// microseconds.
func parseClock(s []byte) (int64, bool) {
	h, i, ok := digits(s, 0, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return 0, false
	}
	m, i, ok := digits(s, i+1, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return 0, false
	}
	sec, i, ok := digits(s, i+1, 2)
	if !ok {
		return 0, false
	}
	usec, i, ok := parseFraction(s, i)
	if !ok || i != len(s) || m > 59 || sec > 60 || h > 24 {
		return 0, false
	}
	return ((int64(h)*60+int64(m))*60+int64(sec))*1e6 + int64(usec), true
}

// parseFraction parses an optional ".f{1,6}" at s[i:].
func parseFraction(s []byte, i int) (usec, next int, ok bool) {
	if i >= len(s) || s[i] != '.' {
		return 0, i, true
	}
	i++
	n := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n == 6 {
			return 0, i, false
		}
		usec = usec*10 + int(s[i]-'0')
		n++
	}
	if n == 0 {
		return 0, i, false
	}
	for ; n < 6; n++ {
		usec *= 10
	}
	return usec, i, true
}

// parseOffset parses "±HH[:MM[:SS]]" at s[i:] into seconds east of UTC.
func parseOffset(s []byte, i int) (int, int, bool) {
	if i >= len(s) || (s[i] != '+' && s[i] != '-') {
		return 0, i, false
	}
	sign := 1
	if s[i] == '-' {
		sign = -1
	}
	h, i, ok := digits(s, i+1, 2)
	if !ok {
		return 0, i, false
	}
	var m, sec int
	if i < len(s) && s[i] == ':' {
		if m, i, ok = digits(s, i+1, 2); !ok {
			return 0, i, false
		}
		if i < len(s) && s[i] == ':' {
			if sec, i, ok = digits(s, i+1, 2); !ok {
				return 0, i, false
			}
		}
	}
	return sign * (h*3600 + m*60 + sec), i, true
}

// appendTimetz renders timetz as Debezium's ZonedTime: the time moved to
// UTC (wrapping around midnight), ISO-8601 with the fraction's trailing
// zeros dropped, and 'Z'.
func appendTimetz(b []byte, s []byte) ([]byte, error) {
	i := 0
	h, i, ok := digits(s, i, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return b, badText(pgtype.TimetzOID, s)
	}
	m, i, ok := digits(s, i+1, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return b, badText(pgtype.TimetzOID, s)
	}
	sec, i, ok := digits(s, i+1, 2)
	if !ok {
		return b, badText(pgtype.TimetzOID, s)
	}
	usec, i, ok := parseFraction(s, i)
	if !ok {
		return b, badText(pgtype.TimetzOID, s)
	}
	off, i, ok := parseOffset(s, i)
	if !ok || i != len(s) || h > 24 || m > 59 || sec > 60 {
		return b, badText(pgtype.TimetzOID, s)
	}
	const day = 86400
	t := ((h*60+m)*60 + sec - off) % day
	if t < 0 {
		t += day
	}
	b = append(b, '"')
	b = appendPadded(b, t/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, t/60%60, 2)
	b = append(b, ':')
	b = appendPadded(b, t%60, 2)
	b = appendTrimmedFraction(b, usec)
	return append(b, `Z"`...), nil
}

func appendTrimmedFraction(b []byte, usec int) []byte {
	if usec == 0 {
		return b
	}
	b = append(b, '.')
	n := 6
	for usec%10 == 0 {
		usec /= 10
		n--
	}
	return appendPadded(b, usec, n)
}

// timestampMicros parses timestamp text into microseconds since the epoch,
// with Debezium's values for ±infinity.
func timestampMicros(s []byte) (int64, bool) {
	switch string(s) {
	case "infinity":
		return posInfinityMicros, true
	case "-infinity":
		return negInfinityMicros, true
	}
	p, _, ok := parseStamp(s, false)
	if !ok {
		return 0, false
	}
	return stampMicros(&p), true
}

func stampMicros(p *stamp) int64 {
	days := daysFromCivil(p.properYear(), p.mon, p.day)
	return (days*86400+int64(p.hour*3600+p.min*60+p.sec))*1e6 + int64(p.usec)
}

// appendZonedTimestamp renders timestamptz as Debezium's ZonedTimestamp:
// UTC, ISO-8601 as Java prints it (years past 9999 with '+', BC as
// negative years, year 0 for 1 BC), with exactly prec fractional digits,
// or as many as needed when prec is 0; infinity stays a word.
func appendZonedTimestamp(b []byte, s []byte, prec int) ([]byte, error) {
	if isInfinity(s) {
		return AppendString(b, s), nil
	}
	p, offset, ok := parseStamp(s, true)
	if !ok {
		return b, badText(pgtype.TimestamptzOID, s)
	}
	usec := stampMicros(&p) - int64(offset)*1e6
	days := floorDiv(usec, 86400e6)
	rem := usec - days*86400e6
	y, mo, d := civilFromDays(days)
	b = append(b, '"')
	switch {
	case y > 9999:
		b = append(b, '+')
		b = strconv.AppendInt(b, y, 10)
	case y < 0:
		b = append(b, '-')
		b = appendPadded(b, int(-y), 4)
	default:
		b = appendPadded(b, int(y), 4)
	}
	b = append(b, '-')
	b = appendPadded(b, mo, 2)
	b = append(b, '-')
	b = appendPadded(b, d, 2)
	b = append(b, 'T')
	secs := int(rem / 1e6)
	frac := int(rem % 1e6)
	b = appendPadded(b, secs/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, secs/60%60, 2)
	b = append(b, ':')
	b = appendPadded(b, secs%60, 2)
	if prec <= 0 || prec > 9 {
		b = appendTrimmedFraction(b, frac)
	} else {
		b = append(b, '.')
		var buf [9]byte
		f := frac * 1000 // nanoseconds, as Java formats them
		for i := 8; i >= 0; i-- {
			buf[i] = byte('0' + f%10)
			f /= 10
		}
		b = append(b, buf[:prec]...)
	}
	return append(b, `Z"`...), nil
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// interval is an interval as the JDBC driver's PGInterval parses
// Postgres's output: whole fields, seconds as a double rounded to
// microseconds.
type interval struct {
	years, months, days, hours, minutes int
	wholeSec, micros                    int64
}

func (iv *interval) seconds() float64 {
	return float64(iv.wholeSec) + float64(iv.micros)/1e6
}

// parseInterval reads IntervalStyle postgres output the way PGInterval
// does: "<n> <unit>" pairs and an optional "[-]H:MM:SS[.f]".
func parseInterval(s []byte) (iv interval, ok bool) {
	var sec float64
	var pending []byte
	havePending := false
	i, n := 0, 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '+') {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '+' {
			j++
		}
		tok := s[i:j]
		i = j
		n++
		if n%2 == 1 {
			colon := -1
			for k, c := range tok {
				if c == ':' {
					colon = k
					break
				}
			}
			if colon == -1 {
				pending, havePending = tok, true
				continue
			}
			neg := tok[0] == '-'
			off := 0
			if neg {
				off = 1
			}
			h, err := strconv.Atoi(string(tok[off:colon]))
			if err != nil || colon+3 > len(tok) {
				return iv, false
			}
			m, err := strconv.Atoi(string(tok[colon+1 : colon+3]))
			if err != nil {
				return iv, false
			}
			var sv float64
			if colon+3 < len(tok) {
				if tok[colon+3] != ':' {
					return iv, false
				}
				if sv, err = strconv.ParseFloat(string(tok[colon+4:]), 64); err != nil {
					return iv, false
				}
			}
			if neg {
				h, m, sv = -h, -m, -sv
			}
			iv.hours, iv.minutes, sec = h, m, sv
			havePending = false
			continue
		}
		if !havePending {
			return iv, false
		}
		v, err := strconv.Atoi(string(pending))
		var fv float64
		if err != nil {
			if fv, err = strconv.ParseFloat(string(pending), 64); err != nil {
				return iv, false
			}
		}
		switch {
		case hasPrefix(tok, "year"):
			iv.years = v
		case hasPrefix(tok, "mon"):
			iv.months = v
		case hasPrefix(tok, "day"):
			iv.days = v
		case hasPrefix(tok, "hour"):
			iv.hours = v
		case hasPrefix(tok, "min"):
			iv.minutes = v
		case hasPrefix(tok, "sec"):
			if fv == 0 {
				fv = float64(v)
			}
			sec = fv
		default:
			return iv, false
		}
		havePending = false
	}
	if havePending {
		return iv, false
	}
	// PGInterval.setSeconds: Math.round to microseconds, then split.
	total := int64(math.Floor(sec*1e6 + 0.5))
	iv.wholeSec = total / 1e6
	iv.micros = total % 1e6
	return iv, true
}

func hasPrefix(s []byte, p string) bool {
	return len(s) >= len(p) && string(s[:len(p)]) == p
}

// appendInterval renders interval per interval.handling.mode: numeric is
// Debezium's MicroDuration arithmetic in doubles (a month is 365.25/12
// days, truncated to a whole microsecond); string its ISO-8601 period.
func (e *Debezium) appendInterval(b []byte, s []byte) ([]byte, error) {
	iv, ok := parseInterval(s)
	if !ok {
		return b, badText(pgtype.IntervalOID, s)
	}
	if e.opt.Interval == IntervalString {
		b = append(b, "\"P"...)
		b = strconv.AppendInt(b, int64(iv.years), 10)
		b = append(b, 'Y')
		b = strconv.AppendInt(b, int64(iv.months), 10)
		b = append(b, 'M')
		b = strconv.AppendInt(b, int64(iv.days), 10)
		b = append(b, "DT"...)
		b = strconv.AppendInt(b, int64(iv.hours), 10)
		b = append(b, 'H')
		b = strconv.AppendInt(b, int64(iv.minutes), 10)
		b = append(b, 'M')
		b = strconv.AppendFloat(b, iv.seconds(), 'f', -1, 64)
		return append(b, `S"`...), nil
	}
	return strconv.AppendInt(b, DurationMicros(iv.years, iv.months, iv.days, iv.hours, iv.minutes, iv.seconds()), 10), nil
}

// DurationMicros is Debezium's MicroDuration.durationMicros with its
// average month: every step rounded to a double as Java does (the
// explicit conversions keep Go from fusing multiply-adds).
func DurationMicros(years, months, days, hours, minutes int, seconds float64) int64 {
	const daysPerMonth = 365.25 / 12.0
	numberOfDays := float64(float64(years*12+months)*daysPerMonth) + float64(days)
	s := float64(float64(float64(float64(float64(numberOfDays*24)+float64(hours))*60)+float64(minutes))*60) + seconds
	return int64(float64(s * 1e6))
}

// decodeBytea decodes bytea text output: hex ("\x0102") or escape format.
func decodeBytea(s []byte, dst []byte) ([]byte, bool) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		h := s[2:]
		if len(h)%2 != 0 {
			return dst, false
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhex(h[i])
			lo, ok2 := unhex(h[i+1])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			dst = append(dst, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			dst = append(dst, '\\')
			i++
			continue
		}
		if i+3 >= len(s) {
			return dst, false
		}
		v := 0
		for k := 1; k <= 3; k++ {
			c := s[i+k]
			if c < '0' || c > '7' {
				return dst, false
			}
			v = v*8 + int(c-'0')
		}
		if v > 255 {
			return dst, false
		}
		dst = append(dst, byte(v))
		i += 3
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendBits renders bit strings as Debezium's Bits: bytes, little-endian
// (the last bit is bit 0), as short as the highest set bit allows.
func appendBits(b []byte, s []byte) ([]byte, error) {
	var raw [64]byte
	bs := raw[:0]
	n := len(s)
	for i := n - 1; i >= 0; i-- {
		c := s[i]
		if c != '0' && c != '1' {
			return b, badText(pgtype.BitOID, s)
		}
		bit := n - 1 - i
		if c == '1' {
			for len(bs) <= bit/8 {
				bs = append(bs, 0)
			}
			bs[bit/8] |= 1 << (bit % 8)
		}
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, bs)
	return append(b, '"'), nil
}

// AppendSchema appends the Kafka Connect JSON converter's schema of col's
// values, an object left open (no closing brace) so that the caller can
// add "field" last, where the converter puts it. Enum schemas lack the
// "allowed" parameter: the raw record does not carry the labels.
func (e *Debezium) AppendSchema(b []byte, col *wire.Column, optional bool) []byte {
	t := e.typeOf(col)
	if t.array {
		b = append(b, `{"type":"array","items":`...)
		b = e.appendScalarSchema(b, &t, true)
		b = append(b, '}')
		b = append(b, `,"optional":`...)
		return strconv.AppendBool(b, optional)
	}
	return e.appendScalarSchema(b, &t, optional)
}

func (e *Debezium) appendScalarSchema(b []byte, t *dbzType, optional bool) []byte {
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
		name = "io.debezium.data.Enum"
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

// AppendBytes appends raw per binary.handling.mode, as Debezium encodes
// the content of logical decoding messages.
func (e *Debezium) AppendBytes(b []byte, raw []byte) []byte {
	return e.appendBinaryMode(b, raw)
}

// AppendBytesSchema is the schema of AppendBytes's values, left open.
func (e *Debezium) AppendBytesSchema(b []byte, optional bool) []byte {
	b = append(b, `{"type":"`...)
	if e.opt.Binary == BinaryBytes {
		b = append(b, "bytes"...)
	} else {
		b = append(b, "string"...)
	}
	b = append(b, `","optional":`...)
	return strconv.AppendBool(b, optional)
}
