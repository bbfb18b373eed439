package value

import (
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

	// hstore.handling.mode; text (the hstore's own text) is pgjet's.
	HStoreJSON = "json"
	HStoreMap  = "map"
	HStoreText = "text"
)

// DefaultPlaceholder is what Debezium puts for an unchanged TOAST value.
const DefaultPlaceholder = "__debezium_unavailable_value"

// DebeziumOptions select the encodings, with Debezium's defaults for "".
type DebeziumOptions struct {
	Decimal  string
	Time     string
	Binary   string
	Interval string
	HStore   string
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
	if k, err := one("hstore_handling_mode", o.HStore, HStoreJSON, HStoreMap, HStoreText); err != nil {
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

// Debezium renders values the way Debezium's PostgreSQL connector encodes
// them with the Kafka Connect JSON converter, and their Connect schemas. It
// is not safe for concurrent use.
type Debezium struct {
	d   *Decoder
	opt DebeziumOptions
	ph  []byte // placeholder bytes
	big big.Int
	tmp []byte
	// hstore parsing and its JSON text, reused.
	pairs     []hstorePair
	pairsTmp  []hstorePair // sortHstore's copy
	hstoreDoc []byte
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
	if o.HStore == "" {
		o.HStore = HStoreJSON
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

// AppendValue appends the JSON of v, a value of col. Unchanged TOAST
// values become the placeholder in the form Debezium gives it for the
// column's type; a NULL in a NOT NULL column (the columns a key-only old
// row leaves out) its default or its type's fallback, as Debezium has it.
func (e *Debezium) AppendValue(b []byte, col *wire.Column, v wire.Value) ([]byte, error) {
	switch v.Kind {
	case wire.KindNull:
		if col.NotNull {
			return e.appendRequiredNull(b, col), nil
		}
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
	case kPoint:
		return appendPoint(b, s)
	case kHstore:
		return e.appendHstore(b, s)
	case kGeometry, kGeography:
		return appendPostgis(b, s)
	case kDoubleVector:
		return appendVector(b, s, 64)
	case kFloatVector:
		return appendVector(b, s, 32)
	case kSparseVector:
		return appendSparseVector(b, s)
	case kJSON:
		if !validJSON(s) {
			return b, badText(pgtype.JSONBOID, s)
		}
	}
	return AppendString(b, s), nil
}
